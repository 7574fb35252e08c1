"""kopf wiring: thin handlers that hand every event to the AuditController, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpcore
import kopf
from prometheus_client import start_http_server

from slimguard import metrics
from slimguard.controller.audit import AuditController
from slimguard.controller.settings import ControllerSettings
from slimguard.controller.timers import Backoff
from slimguard.engine.view import ClusterView
from slimguard.engine.wiring import Engine, build_engine
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.kopf_tuning import is_deletion, tune
from slimguard.kube.login import connection_info
from slimguard.kube.resources import (
    NAMESPACE_RESOURCE,
    POLICY_RESOURCE,
    VULNERABILITY_REPORT_RESOURCE,
    WORKLOAD_RESOURCES,
)

log = logging.getLogger(__name__)

EventHandler = Callable[..., Awaitable[None]]


def build_registry(
    settings: ControllerSettings, *, network_backend: httpcore.AsyncNetworkBackend | None = None
) -> kopf.OperatorRegistry:
    """All handlers of the controller. ``network_backend`` replaces the registry connector (tests instrument it)."""
    registry = kopf.OperatorRegistry()
    operator_settings = settings  # kopf passes its own `settings` to startup handlers, by that name

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(settings.kubeconfig)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        tune(settings)
        engine, controller = await _start_controller(operator_settings, network_backend)
        memo["engine"], memo["controller"] = engine, controller
        memo["reaudit"] = asyncio.create_task(_reaudit(controller, operator_settings.audit_interval_seconds))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        task = memo.get("reaudit")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        controller: AuditController | None = memo.get("controller")
        if controller is not None:
            await controller.stop()
        engine: Engine | None = memo.get("engine")
        if engine is not None:
            await engine.aclose()

    def workload_handler(kind: str) -> EventHandler:
        async def handle(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
            memo["controller"].observe_workload(kind, body, deleted=is_deletion(event))

        return handle

    for kind, (group, version, plural) in WORKLOAD_RESOURCES.items():
        kopf.on.event(group, version, plural, registry=registry, id=f"observe-{kind.lower()}")(workload_handler(kind))

    @kopf.on.event(*POLICY_RESOURCE, registry=registry)
    async def observe_policy(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["controller"].observe_policy(body, deleted=is_deletion(event))

    @kopf.on.event(*NAMESPACE_RESOURCE, registry=registry)
    async def observe_namespace(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["controller"].observe_namespace(body, deleted=is_deletion(event))

    @kopf.on.event(*VULNERABILITY_REPORT_RESOURCE, registry=registry)
    async def observe_report(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["controller"].observe_report(body, deleted=is_deletion(event))

    return registry


async def _start_controller(
    settings: ControllerSettings, network_backend: httpcore.AsyncNetworkBackend | None
) -> tuple[Engine, AuditController]:
    kube = KubeGateway(load_api_client(settings.kubeconfig), dry_run=settings.dry_run, component="slimguard-controller")
    engine = build_engine(
        registry=settings.registry,
        kube=kube,
        view=ClusterView(trusted_report_namespaces=settings.trusted_report_namespaces),
        network_backend=network_backend,
    )
    controller = AuditController(
        evaluator=engine.evaluator,
        kube=kube,
        workers=settings.workers,
        error_backoff=Backoff.after_failure_cache(settings.registry.failure_ttl_seconds),
    )
    await controller.start()
    if settings.metrics_port:
        metrics.register_compliance(controller.compliance)
        start_http_server(settings.metrics_port)
    log.info("slimguard controller started: %s", settings.describe())
    return engine, controller


async def _reaudit(controller: AuditController, interval: float) -> None:
    """Tags move: re-evaluate everything now and then; unchanged verdicts cost no write."""
    while True:
        await asyncio.sleep(interval)
        controller.enqueue_all()


def run(settings: ControllerSettings) -> None:
    kopf.run(
        registry=build_registry(settings),
        standalone=True,
        clusterwide=True,
        liveness_endpoint=settings.liveness_endpoint,
    )
