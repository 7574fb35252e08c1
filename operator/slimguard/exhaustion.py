"""Out of memory or threads: say so in one line and exit 3, rather than hang or print a page of traceback.

A Python process that hits its memory limit (a cgroup or ``ulimit -v``) sees MemoryError, or "can't start new
thread" when the kubernetes client needs a worker thread. Carrying on would leave a controller alive but doing
nothing, with stale verdicts for hours; exiting lets the kubelet restart it and shows the cause in the Pod's
last state. Where it is checked: the controller's audit workers, and around each component's main loop.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from typing import NoReturn

EXIT_CODE = 3


def is_exhaustion(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and "can't start new thread" in str(error)
    )


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
