"""Child processes of the test bed: own process group, log file, clean stop, death with the parent."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # operator/: slimguard and slimguard_testbed


class TestbedError(RuntimeError):
    """A part of the test bed failed to start or to answer; the message carries its log tail."""

    __test__ = False  # not a pytest test class despite the name


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if pytest is killed outright, its servers go too.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ("" if there is none)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One server process, started in its own process group with its output in `log_file`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = True,
        stderr_file: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_file = log_file
        self.stderr_file = stderr_file  # None: stderr goes to log_file too
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # Appended: a process started again (a restart in a fault test) keeps its earlier lines.
        self._log = self.log_file.open("ab")
        if self.stderr_file is not None:
            self._stderr = self.stderr_file.open("ab")
        # PDEATHSIG fires when the *thread* that forked exits, so only ask for it from the main thread.
        pdeathsig = self.die_with_parent and threading.current_thread() is threading.main_thread()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._stderr if self._stderr is not None else subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent if pdeathsig else None,
            )
        except OSError as error:
            self._close_logs()
            raise TestbedError(f"cannot start {self.name} ({self.argv[0]}): {error}") from error

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited (None while it runs, or before it started)."""
        return self._popen.poll() if self._popen is not None else None

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def failure(self, *, tail_lines: int = 10) -> str | None:
        """Why this process is gone if it exited on its own, else None. A deliberate ``stop()`` (or never having
        started) is not a failure: ``stop()`` forgets the process, so only an unasked-for exit is reported."""
        if self._popen is None or self._popen.poll() is None:
            return None
        code, last_lines = self._popen.returncode, self.tail(tail_lines)
        return f"{self.name} exited with code {code}; last lines of {self.log_file}:\n{last_lines}"

    def check_alive(self) -> None:
        """Raise with the log tail if the process has exited."""
        if self._popen is not None and self._popen.poll() is not None:
            raise TestbedError(
                f"{self.name} exited with code {self._popen.returncode}; last lines of {self.log_file}:\n{self.tail()}"
            )

    def tail(self, lines: int = 40) -> str:
        tail = log_tail(self.log_file, lines)
        if self.stderr_file is not None:
            tail += f"\n--- stderr ({self.stderr_file}):\n{log_tail(self.stderr_file, lines)}"
        return tail

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after `timeout` seconds."""
        popen = self._popen
        if popen is not None:
            terminate_group(popen.pid, timeout=timeout, wait=popen.wait)
            self._popen = None
        self._close_logs()

    def _close_logs(self) -> None:
        for handle in (self._log, self._stderr):
            if handle is not None:
                handle.close()
        self._log = self._stderr = None


def terminate_group(pid: int, *, timeout: float, wait: Callable[[float], object] | None = None) -> None:
    """Stop process `pid` and its process group (it leads one: started with start_new_session)."""
    _signal(pid, signal.SIGTERM, fallback_to_pid=True)
    if wait is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            wait(timeout)
    else:
        wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"pid {pid} to exit", fail=False)
    # Whatever ignored SIGTERM, and stray children left in the group.
    _signal(pid, signal.SIGKILL, fallback_to_pid=pid_alive(pid))
    if wait is not None:
        wait(timeout)
    else:
        wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"pid {pid} to exit", fail=False)


def _signal(pid: int, sig: signal.Signals, *, fallback_to_pid: bool) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        # Not a group leader (or the group is empty): signal the process alone, if it is still ours.
        if fallback_to_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def pid_alive(pid: int) -> bool:
    """True if `pid` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    watch: Sequence[ManagedProcess] = (),
    fail: bool = True,
) -> bool:
    """Poll `predicate` until it holds; fail early with a log tail if a watched process dies."""
    deadline = time.monotonic() + timeout
    while True:
        for process in watch:
            process.check_alive()
        if predicate():
            return True
        if time.monotonic() >= deadline:
            if not fail:
                return False
            tails = "".join(f"\n--- {p.name} ({p.log_file}):\n{p.tail()}" for p in watch)
            raise TestbedError(f"timed out after {timeout:.0f}s waiting for {what}{tails}")
        time.sleep(interval)


def as_uid(uid: int, *, home: Path, env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv prefix and environment that run a Python command as ``uid``, as a Pod under an arbitrary UID
    runs: setpriv (as root) takes that UID and GID with no supplementary groups; the user-name variables that
    ``getpass.getuser()`` reads before the passwd file are gone; the slimguard beside this test bed and this
    interpreter's packages are on PYTHONPATH, for an interpreter that UID can execute (an editable install's
    .pth file is not read from PYTHONPATH)."""
    changed = {key: value for key, value in env.items() if key not in ("LOGNAME", "USER", "LNAME", "USERNAME")}
    paths = [str(SOURCE_ROOT), changed.get("PYTHONPATH", ""), sysconfig.get_paths()["purelib"]]
    changed["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    changed["HOME"] = str(home)
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"], changed
