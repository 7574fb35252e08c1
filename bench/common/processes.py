"""The benchmarks' own process handling: the log line, the work directory, py-spy profiles of a running process.

The test bed (`slimguard_testbed.process.ManagedProcess`) starts and stops the processes themselves: process
groups, SIGTERM then SIGKILL, nothing left behind.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from slimguard_testbed import TestbedError
from slimguard_testbed.process import ManagedProcess


def log(message: str) -> None:
    """Progress goes to stderr with the time; stdout holds the report alone."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_serving(
    process: ManagedProcess, ready: Callable[[], bool], *, timeout: float, every: float, failure: str
) -> None:
    """Until ``ready()`` (an HTTP probe; its connection errors count as not yet) while the process lives; else
    ``failure`` with the tail of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return
        time.sleep(every)
    raise TestbedError(f"{failure}:\n{process.tail()}")


@contextlib.contextmanager
def workdir(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A fresh directory for every process's data and logs: removed at the end, kept with ``keep`` or when the
    run fails (what each process logged is then the first thing to read)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    except BaseException:
        log(f"failed: kept {path} (the logs of every process the run started are in it)")
        raise
    if keep:
        log(f"kept {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def profiled(
    pid: int | None, output: Path | None, *, rate: int, gil: bool = False, stop_timeout: float = 60.0
) -> Iterator[None]:
    """py-spy samples the process meanwhile (collapsed stacks for flamegraph.pl, one line per stack); a no-op
    without a path. ``gil``: only samples that hold the GIL, i.e. the one core Python code can use.

    Profiled runs are for where the time goes, not for timings: blocking sampling (py-spy pauses the process per
    sample) slows the process down, and --nonblocking reads torn stacks under a benchmark's load.
    """
    if output is None or pid is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), *(["--gil"] if gil else []), "--format", "raw"]
    process = subprocess.Popen([*command, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=stop_timeout)
        if not output.exists():
            log(f"py-spy wrote no profile: {stderr.decode(errors='replace')[-500:]}")
        else:
            log(f"profile of pid {pid}: {output}")
