"""Out of memory or threads: say so in one line and exit 3, rather than hang or print a page of traceback.

A Python process that hits its memory limit (a cgroup or ``ulimit -v``) sees MemoryError, or "can't start new
thread" when the kubernetes client needs a worker thread. Carrying on would leave a controller alive but doing
nothing, with stale verdicts for hours; exiting lets the kubelet restart it and shows the cause in the Pod's
last state. Where it is checked: the controller's audit workers; every error logged with its exception
(kopf logs a watcher that failed on MemoryError and shuts down in order, which would end the process
without the line); uncaught exceptions of threads; and around each component's main loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

EXIT_CODE = 3
MIN_ADDRESS_SPACE = 512 << 20
"""Below this ``ulimit -v``, CPython itself fails at random places (MemoryError deep in a library, or SIGSEGV
in the interpreter, both seen at 160 MiB), so a component refuses to start rather than fail unclearly later.
A 300-workload audit peaked at 773 MiB of address space (125 MiB resident): threads reserve more than they use."""


def is_exhaustion(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "can't start new thread" in str(error)
    )


def exhaustion_in(error: BaseException | None) -> BaseException | None:
    """The memory or thread exhaustion ``error`` is, or was caused by (its chain, followed a bounded way)."""
    seen = 0
    while error is not None and seen < 16:
        if is_exhaustion(error):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def message(component: str, error: BaseException | None = None) -> str:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    cap = "no address-space limit" if limit == resource.RLIM_INFINITY else f"address-space limit {limit >> 20} MiB"
    cause = f": {error}" if error is not None and str(error) else ""
    return f"slimguard {component}: out of memory ({cap}){cause}; give it more memory (resources.limits.memory)"


def exit_exhausted(component: str, error: BaseException) -> NoReturn:
    """Exit now: shutting down cleanly needs the memory and threads that just ran out."""
    logging.shutdown()
    sys.stderr.write(message(component, error) + "\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)


class _LoggedExhaustion(logging.Handler):
    """Exits as soon as any logger reports an exception that is (or came from) exhaustion."""

    def __init__(self, component: str) -> None:
        super().__init__(level=logging.ERROR)
        self.component = component

    def emit(self, record: logging.LogRecord) -> None:
        found = exhaustion_in(record.exc_info[1] if record.exc_info else None)
        if found is not None:
            exit_exhausted(self.component, found)


def address_space_problem() -> str | None:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY or limit >= MIN_ADDRESS_SPACE:
        return None
    return f"it needs at least {MIN_ADDRESS_SPACE >> 20} MiB of address space"


@contextlib.contextmanager
def exit_when_exhausted(component: str) -> Iterator[None]:
    """Around a component's main loop: exhaustion anywhere (raised, logged, or in a thread) ends it so.

    A limit too small to run at all is said before anything starts.
    """
    if (problem := address_space_problem()) is not None:
        sys.stderr.write(message(component, RuntimeError(problem)) + "\n")
        raise SystemExit(EXIT_CODE)
    watch = _LoggedExhaustion(component)
    root = logging.getLogger()
    root.addHandler(watch)
    previous = threading.excepthook

    def thread_failed(args: threading.ExceptHookArgs) -> None:
        found = exhaustion_in(args.exc_value)
        if found is not None:
            exit_exhausted(component, found)
        previous(args)

    threading.excepthook = thread_failed
    try:
        yield
    except BaseException as error:
        found = exhaustion_in(error)
        if found is not None:
            exit_exhausted(component, found)
        raise
    finally:
        root.removeHandler(watch)
        threading.excepthook = previous
