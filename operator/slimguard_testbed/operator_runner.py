"""The controller run in-process on a thread, as kopf's own KopfRunner does, for end-to-end tests.

In-process so a test can hand the registry client an instrumented connector: the guard still decides, and a
last line of defence refuses every address outside 127.0.0.0/8, so no test can ever reach beyond this machine.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import kopf

from slimguard.controller.audit import AuditController
from slimguard.controller.handlers import build_registry
from slimguard.controller.replica import ControllerReplica
from slimguard.controller.settings import ControllerSettings
from slimguard.kube.kopf_tuning import run_operator


@dataclass
class LoopbackOnlyBackend(httpcore.AsyncNetworkBackend):
    """Connects only to loopback (127.0.0.0/8) and records every address it was asked for."""

    attempts: list[tuple[str, int]] = field(default_factory=list)
    inner: httpcore.AsyncNetworkBackend = field(default_factory=httpcore.AnyIOBackend)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test safety net: a connection to {host}:{port} was attempted")
        return await self.inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class InProcessOperator:
    def __init__(self, settings: ControllerSettings) -> None:
        self.settings = settings
        self.backend = LoopbackOnlyBackend()
        self.memo = kopf.Memo()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            run_operator(  # as `slimguard controller` runs it
                kopf.operator(
                    registry=build_registry(self.settings, network_backend=self.backend),
                    standalone=True,
                    clusterwide=True,
                    stop_flag=self._stop,
                    ready_flag=self._ready,
                    memo=self.memo,
                )
            )
        except BaseException as error:  # surfaced to the test by stop()
            self.error = error

    def start(self, timeout: float = 30) -> InProcessOperator:
        self._thread = threading.Thread(target=self._run, name="slimguard-operator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the operator did not start within {timeout}s: {self.error!r}")
        return self

    @property
    def controller(self) -> AuditController:
        replica: ControllerReplica | None = self.memo.get("replica")
        if replica is None or not replica.started:
            raise RuntimeError("the controller has not started")
        return replica.audit

    def failure(self) -> str | None:
        """Why this controller is not running (its thread ended: it crashed, or a stop or restart left it
        stopped), else None. Cheap: a test bed checks it before every test that uses the controller."""
        if self._thread is None or self._thread.is_alive():
            return None
        if self.error is not None:
            return f"it stopped with {self.error!r}"
        return "it has stopped" if self._stop.is_set() else "its thread ended without an error"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error

    def restart(self, settings: ControllerSettings | None = None, timeout: float = 30) -> InProcessOperator:
        """Stop, then start a new controller in this process (a pod restart: nothing kept in memory)."""
        self.stop()
        self.settings = settings or self.settings
        self.memo = kopf.Memo()
        self._stop, self._ready = threading.Event(), threading.Event()
        return self.start(timeout)

    def __enter__(self) -> InProcessOperator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
