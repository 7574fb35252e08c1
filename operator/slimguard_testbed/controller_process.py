"""`slimguard controller` in its own process, as it is deployed, for tests about the process itself: that it
stays up, and how much memory it takes (the kernel's own accounting, /proc/PID/status).

It runs the slimguard package this test bed sits beside (`python -m slimguard.cli.main` with that source
tree first on PYTHONPATH), so a worktree tests its own code, never the virtualenv's editable install.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from slimguard_testbed.lifecycle import Service
from slimguard_testbed.process import SOURCE_ROOT, ManagedProcess, TestbedError, as_uid, wait_until

_STARTED = "slimguard controller started"


@dataclass(frozen=True)
class Memory:
    rss_bytes: int
    """VmRSS: resident now."""
    peak_rss_bytes: int
    """VmHWM: the most it has ever been resident, as the kernel counted (no sampling can miss a spike)."""
    peak_address_space_bytes: int
    """VmPeak: the most address space it has ever held (what ``ulimit -v`` caps)."""


def process_memory(pid: int) -> Memory:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmPeak"):
            values[key] = int(rest.split()[0]) * 1024
    return Memory(values["VmRSS"], values["VmHWM"], values["VmPeak"])


class ControllerProcess(Service):
    """`slimguard controller --kubeconfig K --allow-loopback-registries --ca-file CA ...` on 127.0.0.1 only.

    ``registry_ca_file`` None: no ``--ca-file``, as a fresh install without the registry's CA runs.

    ``address_space`` caps it as ``ulimit -v`` does (prlimit execs it, so the pid is the controller's own).
    ``as_uid`` runs it under that UID with no user name known to it (``process.as_uid``); ``python`` is then an
    interpreter that UID can execute.

    It elects itself leader as a deployed controller does (``--leader-elect`` is the default), on a Lease in its
    kubeconfig's namespace named ``lease``: by default one of its own, so a controller killed by one test never
    keeps another test's waiting; replicas of one test name the same. ``env`` adds to its environment (``POD_ID``:
    the name its leader identity starts with).
    """

    def __init__(
        self,
        *,
        kubeconfig: str | Path,
        registry_ca_file: str | Path | None,
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 60.0,
        address_space: int | None = None,
        as_uid: int | None = None,
        python: str = sys.executable,
        lease: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.registry_ca_file = None if registry_ca_file is None else Path(registry_ca_file)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="slimguard-controller-"))
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.address_space = address_space
        self.as_uid = as_uid
        self.python = python
        self.lease = lease or f"slimguard-controller-{secrets.token_hex(4)}"
        self.env = dict(env or {})
        self._process: ManagedProcess | None = None

    @property
    def log_file(self) -> Path:
        return self.workdir / "controller.log"

    @property
    def pid(self) -> int:
        if self._process is None or self._process.pid is None:
            raise TestbedError("the controller process is not running")
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    def memory(self) -> Memory:
        return process_memory(self.pid)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    def _start(self) -> None:
        process = self.launch()
        wait_until(
            lambda: _STARTED in self.log(),
            timeout=self.start_timeout,
            what="slimguard controller to start",
            watch=[process],
            interval=0.2,
        )

    def launch(self) -> ManagedProcess:
        """Start the process without waiting for it to say it started (it may not live that long)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cap = ["prlimit", f"--as={self.address_space}", "--"] if self.address_space else []
        python_path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1", **self.env}
        as_user: list[str] = []
        if self.as_uid is not None:
            as_user, env = as_uid(self.as_uid, home=self.workdir, env=env)
        argv = [
            *cap,
            *as_user,
            self.python,
            "-m",
            "slimguard.cli.main",
            "controller",
            f"--kubeconfig={self.kubeconfig}",
            "--allow-loopback-registries",
            *([f"--ca-file={self.registry_ca_file}"] if self.registry_ca_file is not None else []),
            "--metrics-port=0",  # its default (9090, every interface) would clash with other runs
            f"--leader-elect-resource-name={self.lease}",
            *self.extra_args,
        ]
        self._process = ManagedProcess("slimguard-controller", argv, log_file=self.log_file, env=env, cwd=self.workdir)
        self._process.start()
        return self._process

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a node failure does: no cleanup handler runs."""
        process = self._process
        if process is None or process.pid is None:
            raise TestbedError("the controller process is not running")
        os.killpg(process.pid, signal.SIGKILL)
        wait_until(lambda: not process.alive(), timeout=10, what="the killed controller to exit")
        process.stop()

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM, as the kubelet sends; returns the exit code (None if it had to be killed after ``timeout``)."""
        process = self._process
        if process is None or process.pid is None:
            raise TestbedError("the controller process is not running")
        os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(TestbedError):
            wait_until(lambda: not process.alive(), timeout=timeout, what="the controller to exit after SIGTERM")
        code = process.returncode
        self.stop()
        return code

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None


__all__ = ["SOURCE_ROOT", "ControllerProcess", "Memory", "process_memory"]
