"""`slimguard controller` in its own process, as it is deployed, for tests about the process itself: that it
stays up, and how much memory it takes (the kernel's own accounting, /proc/PID/status).

It runs the slimguard package this test bed sits beside (`python -m slimguard.cli.main` with that source
tree first on PYTHONPATH), so a worktree tests its own code, never the virtualenv's editable install.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slimguard_testbed.lifecycle import Service
from slimguard_testbed.process import ManagedProcess, TestbedError, wait_until

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # operator/: slimguard and slimguard_testbed
_STARTED = "slimguard controller started"


@dataclass(frozen=True)
class Memory:
    rss_bytes: int
    """VmRSS: resident now."""
    peak_rss_bytes: int
    """VmHWM: the most it has ever been resident, as the kernel counted (no sampling can miss a spike)."""


def process_memory(pid: int) -> Memory:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return Memory(values["VmRSS"], values["VmHWM"])


class ControllerProcess(Service):
    """`slimguard controller --kubeconfig K --allow-loopback-registries --ca-file CA ...` on 127.0.0.1 only."""

    def __init__(
        self,
        *,
        kubeconfig: str | Path,
        registry_ca_file: str | Path,
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 60.0,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.registry_ca_file = Path(registry_ca_file)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="slimguard-controller-"))
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
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

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "slimguard.cli.main",
            "controller",
            f"--kubeconfig={self.kubeconfig}",
            "--allow-loopback-registries",
            f"--ca-file={self.registry_ca_file}",
            "--metrics-port=0",  # its default (9090, every interface) would clash with other runs
            *self.extra_args,
        ]
        python_path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
        self._process = ManagedProcess("slimguard-controller", argv, log_file=self.log_file, env=env, cwd=self.workdir)
        self._process.start()
        wait_until(
            lambda: _STARTED in self.log(),
            timeout=self.start_timeout,
            what="slimguard controller to start",
            watch=[self._process],
            interval=0.2,
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None


__all__ = ["ControllerProcess", "Memory", "process_memory"]
