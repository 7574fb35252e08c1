"""kopf wiring: thin handlers that hand every event to the AuditController, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpcore
import kopf
from kubernetes.client import ApiClient
from prometheus_client import REGISTRY, start_http_server

from slimguard import metrics
from slimguard.controller.audit import AuditController
from slimguard.controller.image_reports import ReportKeeper, digests_in_use
from slimguard.controller.policy_reports import PolicyReports
from slimguard.controller.settings import ControllerSettings
from slimguard.controller.timers import Backoff
from slimguard.core.evaluation import enforcement
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.facts.vulnerabilities import SeverityCounts
from slimguard.core.model.workload import made_by_a_workload
from slimguard.core.reports.policy_report import REPORT_APIS
from slimguard.engine.view import ClusterView
from slimguard.engine.wiring import Engine, build_engine
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.image_reports import ImageReports
from slimguard.kube.informer import WorkloadInformer
from slimguard.kube.kopf_tuning import is_deletion, own_identity, tune
from slimguard.kube.leader import LeaderElector
from slimguard.kube.lease import LeaseClient
from slimguard.kube.login import connection_info
from slimguard.kube.policy_reports import PolicyReportWriter
from slimguard.kube.resources import (
    IMAGE_REPORT_RESOURCE,
    NAMESPACE_RESOURCE,
    POLICY_RESOURCE,
    VULNERABILITY_REPORT_RESOURCE,
    WORKLOAD_RESOURCES,
)

log = logging.getLogger(__name__)

COMPONENT = "slimguard-controller"


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
        api = load_api_client(operator_settings.kubeconfig, user_agent=_user_agent(operator_settings))
        elector = _elector(operator_settings, api, memo)
        engine, controller, keeper = await _start_controller(
            operator_settings, network_backend, api=api, may_write=elector.holds if elector else None
        )
        memo["engine"], memo["controller"], memo["reports"] = engine, controller, keeper
        memo["workloads"] = _watch_workloads(operator_settings, controller)
        if operator_settings.metrics_port:
            memo["metrics"] = _MetricsServer(operator_settings, controller)
        memo["reaudit"] = asyncio.create_task(_reaudit(controller, operator_settings.audit_interval_seconds))
        if elector is None:
            await lead(memo)
        else:  # Ready now, as a standby: the election decides when this replica writes
            metrics.LEADER.set(0)
            memo["leader"] = elector
            elector.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await shut_down(memo)

    @kopf.on.probe(id="enforcing", registry=registry)
    async def enforcing(memo: kopf.Memo, **_: Any) -> str:
        # In the body of kopf's liveness endpoint (--liveness), which answers 200 whatever this says: restarting
        # a controller that cannot read a registry mends nothing, and a probe that raised would have it
        # restarted. The ImagePolicies' Enforcing conditions say the same per policy. In the loop, not a thread:
        # the verdicts change under it otherwise.
        controller: AuditController | None = memo.get("controller")
        try:
            return "starting" if controller is None else enforcement_summary(controller)
        except Exception as error:
            log.exception("the enforcing probe failed")
            return f"unknown: {error!r}"

    @kopf.on.event(*POLICY_RESOURCE, registry=registry)
    async def observe_policy(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["controller"].observe_policy(body, deleted=is_deletion(event))
        if is_deletion(event) and (name := (body.get("metadata") or {}).get("name")):
            memo["reports"].policy_gone(str(name))

    @kopf.on.event(*NAMESPACE_RESOURCE, registry=registry)
    async def observe_namespace(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["controller"].observe_namespace(body, deleted=is_deletion(event))

    @kopf.on.event(*VULNERABILITY_REPORT_RESOURCE, registry=registry)
    async def observe_report(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["controller"].observe_report(body, deleted=is_deletion(event))

    @kopf.on.event(*IMAGE_REPORT_RESOURCE, registry=registry)
    async def observe_image_report(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["reports"].reports.observe(body, deleted=is_deletion(event))

    return registry


def _user_agent(settings: ControllerSettings) -> str:
    """``slimguard-controller/VERSION (IDENTITY)``: the apiserver's audit log names the replica that wrote."""
    election = settings.leader_election
    identity = election.identity if election is not None else own_identity(COMPONENT)
    return f"{COMPONENT}/{metrics.VERSION} ({identity})"


def _elector(settings: ControllerSettings, api: ApiClient, memo: kopf.Memo) -> LeaderElector | None:
    election = settings.leader_election
    if election is None:
        return None
    lease = LeaseClient(api, namespace=election.namespace, name=election.name, timeout=election.renew_deadline / 2)
    return LeaderElector(election, lease, lead=lambda: lead(memo), follow=lambda: follow(memo))


async def lead(memo: Mapping[str, Any]) -> None:
    """This replica writes from now on: the ImageReports' writer and sweeper, the workers and a full re-audit."""
    controller: AuditController = memo["controller"]
    if controller.leading:
        return
    keeper: ReportKeeper = memo["reports"]
    await keeper.start()
    await controller.lead()
    metrics.LEADER.set(1)


async def follow(memo: Mapping[str, Any]) -> None:
    """Leadership lost (its writes are already refused): stop what writes, keep watching, stand by."""
    metrics.LEADER.set(0)
    controller: AuditController = memo["controller"]
    await controller.follow()
    keeper: ReportKeeper = memo["reports"]
    await keeper.stop()


async def shut_down(memo: Mapping[str, Any]) -> None:
    """Stop in the order work flows, so nothing runs on what is already closed: what brings work (the re-audit
    timer, the informer), what does it (the workers), what it started on its own (the engine's reads), then the
    last reports are written, the leader lease is released (a standby takes over at once), and only then are
    the registry connections and /metrics closed. The lease is renewed until then, and taken by no standby that
    is shutting down."""
    elector: LeaderElector | None = memo.get("leader")
    if elector is not None:
        await elector.retire()
    task: asyncio.Task[None] | None = memo.get("reaudit")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    informer: WorkloadInformer | None = memo.get("workloads")
    if informer is not None:
        await informer.stop()
    controller: AuditController | None = memo.get("controller")
    if controller is not None:
        await controller.stop()
    engine: Engine | None = memo.get("engine")
    if engine is not None:
        await engine.stop_background()
    keeper: ReportKeeper | None = memo.get("reports")
    if keeper is not None:
        await keeper.stop()
        # What was learned last is written before the process goes, so the next one need not read it again
        # (by the leader: a standby has nothing to write, and may not).
        try:
            if elector is None or elector.holds():
                await asyncio.wait_for(keeper.flush(), timeout=5)
        except Exception as error:  # a report is a cache: shutdown goes on, and says so
            log.warning("the last ImageReports were not all written at shutdown: %r", error)
    if elector is not None:
        await elector.close()
    metrics.LEADER.set(0)
    if engine is not None:
        await engine.aclose()
    served: _MetricsServer | None = memo.get("metrics")
    if served is not None:
        served.stop()


def _watch_workloads(settings: ControllerSettings, controller: AuditController) -> WorkloadInformer:
    """Workloads come from slimguard's own paged LIST and WATCH, not kopf's (kube/informer.py says why)."""

    def observe(kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        controller.observe_workload(kind, body, deleted=deleted)

    informer = WorkloadInformer(
        WORKLOAD_RESOURCES,
        lambda: connection_info(settings.kubeconfig),
        observe,
        # The kinds nearly always made by another workload: their bodies are read only where one is not.
        needs_body={kind: _made_by_hand for kind in ("ReplicaSet", "Pod", "Job")},
    )
    informer.start()
    return informer


def _made_by_hand(body: Mapping[str, Any]) -> bool:
    return not made_by_a_workload(body)


async def _start_controller(
    settings: ControllerSettings,
    network_backend: httpcore.AsyncNetworkBackend | None,
    *,
    api: ApiClient,
    may_write: Callable[[], bool] | None,
) -> tuple[Engine, AuditController, ReportKeeper]:
    """Everything that reads, started; what writes is started by ``lead`` (at once without leader election)."""
    kube = KubeGateway(api, dry_run=settings.dry_run, component=COMPONENT, may_write=may_write)
    reports = ImageReports()
    await reports.sync(kube)  # before the first evaluation: what is reported is not read from registries again
    view = ClusterView(trusted_report_namespaces=settings.trusted_report_namespaces)

    def in_use() -> set[str]:  # asked by the keeper's sweeps, once the controller below exists
        workloads = [record.workload for record in controller.workloads.values()]
        return digests_in_use(workloads, view.active_policies, keeper.resolved)

    keeper = ReportKeeper(
        reports=reports,
        kube=kube,
        in_use=in_use,
        clock=lambda: datetime.now(UTC),
        grace_seconds=settings.report_grace_seconds,
    )
    engine = build_engine(
        registry=settings.registry,
        kube=kube,
        view=view,
        store=keeper,
        network_backend=network_backend,
    )

    controller = AuditController(
        evaluator=engine.evaluator,
        view=engine.view,
        kube=kube,
        workers=settings.workers,
        error_backoff=Backoff.after_failure_cache(settings.registry.failure_ttl_seconds),
        reports=(
            PolicyReports(PolicyReportWriter(kube, REPORT_APIS[settings.policy_reports]))
            if settings.policy_reports
            else None
        ),
        evaluated=keeper.evaluated,
    )
    await controller.start(lead=False)
    log.info("slimguard controller started: %s; %d ImageReports read", settings.describe(), len(reports))
    return engine, controller, keeper


def enforcement_summary(controller: AuditController) -> str:
    """``ok: all 40 images in use decided by their facts``, or ``degraded: 12 of 12 images in use decided by
    onUnknown, not by their facts: registry ...`` when nothing from some registry is enforced; on a standby,
    which judges nothing, that it stands by."""
    if not controller.leading:
        return "standby: the leading replica judges the images in use"
    decided = enforcement.tally(
        d for verdict in list(controller.verdicts.values()) for d in enforcement.decisions(verdict)
    )
    return f"{'degraded' if decided.degraded else 'ok'}: {decided.describe(within='in use')}"


def fleet_snapshot(controller: AuditController) -> metrics.FleetSnapshot:
    """The controller's verdicts and policies as they are now, read from the scrape's thread; nothing on a
    standby, so a Prometheus that sums over replicas counts each workload once.

    Copying a dict another thread mutates can fail mid-way ("changed size during iteration"): try again, it
    is a matter of microseconds.
    """
    if not controller.leading:
        return metrics.FleetSnapshot(verdicts=(), policies=(), now=controller.clock())
    for _ in range(10):
        try:
            verdicts = tuple(controller.verdicts.values())
            records = tuple(controller.view.policies.values())
            vulnerabilities = _vulnerabilities_in_use(controller.view, verdicts)
            break
        except (RuntimeError, KeyError, IndexError):  # a report indexed or dropped while read: read again
            continue
    else:
        verdicts, records, vulnerabilities = (), (), {}
    policies = tuple(record.policy for record in records if record.policy is not None)
    return metrics.FleetSnapshot(
        verdicts=verdicts, policies=policies, now=controller.clock(), vulnerabilities=vulnerabilities
    )


def _vulnerabilities_in_use(view: ClusterView, verdicts: tuple[Verdict, ...]) -> dict[tuple[str, str], SeverityCounts]:
    """Each distinct image in use, per namespace: the worst report for its digests, as the view holds them."""
    found: dict[tuple[str, str], SeverityCounts] = {}
    for verdict in verdicts:
        namespace = verdict.workload.namespace
        for size in verdict.image_sizes:
            key = (namespace, size.image)
            if key in found or not size.digests:
                continue
            counts = view.image_vulnerabilities(namespace, size.digests)
            if counts is not None:
                found[key] = counts
    return found


class _MetricsServer:
    """/metrics with the fleet collector; stopped and unregistered at cleanup, so an operator can run again."""

    def __init__(self, settings: ControllerSettings, controller: AuditController) -> None:
        self.collector = metrics.register_fleet(
            lambda: fleet_snapshot(controller), per_image_limit=settings.image_metrics
        )
        metrics.BUILD_INFO.labels(component="controller", version=metrics.VERSION).set(1)
        self.server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_address)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        REGISTRY.unregister(self.collector)


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
        identity=own_identity(COMPONENT),
    )
