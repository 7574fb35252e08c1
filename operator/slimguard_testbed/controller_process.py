"""``slimguard controller`` as a real process: what a fault test kills, restarts or starves of memory."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx

from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError, wait_until


class ControllerProcess:
    """One controller process with its metrics on loopback; ``address_space`` caps it as ``ulimit -v`` does."""

    def __init__(
        self,
        *,
        kubeconfig: str,
        registry_ca_file: str,
        workdir: Path,
        address_space: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.metrics_port = free_port()
        limit = ["prlimit", f"--as={address_space}", "--"] if address_space else []
        self.process = ManagedProcess(
            "controller",
            [
                *limit,
                sys.executable,
                "-m",
                "slimguard.cli.main",
                "controller",
                "--kubeconfig",
                kubeconfig,
                "--allow-loopback-registries",
                "--ca-file",
                registry_ca_file,
                "--metrics-port",
                str(self.metrics_port),
                *extra_args,
            ],
            log_file=workdir / "controller.log",
        )

    def start(self, timeout: float = 60) -> ControllerProcess:
        self.process.start()
        wait_until(self._serving, timeout=timeout, what="the controller's /metrics", watch=[self.process])
        return self

    def _serving(self) -> bool:
        try:
            return "slimguard_build_info{" in self.metrics()
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a node failure does: no cleanup handler runs."""
        pid = self.process.pid
        if pid is None:
            raise TestbedError("the controller is not running")
        os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: not self.process.alive(), timeout=10, what="the killed controller to exit")
        self.process.stop()

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> ControllerProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
