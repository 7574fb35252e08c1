"""One controller replica, wired once: its parts, who tells whom, and the order they start, lead, follow and stop.

Each part is handed what it calls at construction, and nothing reaches into another's insides:
- the ``ReportKeeper`` is the inspector's digest store (``engine.wiring``): it answers from the ``ImageReports``,
  and is told what each image resolved to and what was learned of it; the audit tells it each verdict
  (``evaluated``: the slimmer bases found); its sweeps ask the replica which digests are in use;
- the ``AuditController`` evaluates with the engine's ``Evaluator`` over the engine's ``ClusterView``;
- the Nodes' watch feeds the platforms the Ready nodes run (engine.node_watch); the ImageReports' watch feeds the
  ``ImageReports``; the ``VulnerabilityReportFeed`` watches Trivy Operator's
  reports while a policy reads them, handing each to the audit (``observe_report``), and is told of every policy
  change (``observe_policy``);
- the kubelets' ``Pulled`` Events (watched while this replica leads) feed the ``PullLedger``, which folds them
  into the keeper's ``pulls`` (written into each digest's ImageReport), counts them in the metrics, and has the
  audit judge again the workloads running a digest pulled (their violations say what a slim version would save);
- the ``LeaderElector`` calls ``lead`` and ``follow``; every write goes through the ``KubeGateway`` it fences.
kopf's handlers (controller/handlers.py) only hand events to these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpcore

from slimguard import metrics
from slimguard.controller.audit import AuditController
from slimguard.controller.fleet import MetricsServer
from slimguard.controller.image_reports import ReportKeeper, digests_in_use
from slimguard.controller.policy_reports import PolicyReports
from slimguard.controller.settings import ControllerSettings
from slimguard.controller.timers import Backoff
from slimguard.core.evaluation import enforcement
from slimguard.core.evaluation.pull_costs import with_pull_costs
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.facts.pulls import ImagePulls, PullEvent
from slimguard.core.model.kinds import WORKLOADS
from slimguard.core.model.workload import made_by_a_workload
from slimguard.core.reports.policy_report import REPORT_APIS
from slimguard.engine.node_watch import watch_nodes
from slimguard.engine.pull_ledger import PullLedger
from slimguard.engine.report_feed import VulnerabilityReportFeed, watch_image_reports
from slimguard.engine.view import ClusterView
from slimguard.engine.wiring import build_engine
from slimguard.heap import set_aside_start_up_objects
from slimguard.kube.gateway import ApiClient, KubeGateway
from slimguard.kube.image_reports import ImageReports
from slimguard.kube.informer import KindWatch, WorkloadInformer
from slimguard.kube.leader import LeaderElector
from slimguard.kube.lease import LeaseClient
from slimguard.kube.login import connection_info
from slimguard.kube.policy_reports import PolicyReportWriter
from slimguard.kube.pull_events import container_image_ids, watch_pulled_events
from slimguard.kube.resources import WORKLOAD_RESOURCES

log = logging.getLogger(__name__)

COMPONENT = "slimguard-controller"
REJUDGE_SECONDS = 2.0
"""How long after a pull the workloads running the image are judged again (a burst of pulls: once)."""


class ControllerReplica:
    """Built without I/O; ``start`` reads (the ImageReports, the policies) and starts watching; what writes is
    started by ``lead`` (at once without leader election, else when the election says)."""

    def __init__(
        self, settings: ControllerSettings, api: ApiClient, *, network_backend: httpcore.AsyncNetworkBackend | None
    ) -> None:
        self.settings = settings
        election = settings.leader_election
        self.elector = (
            None
            if election is None
            else LeaderElector(
                election,
                LeaseClient(api, namespace=election.namespace, name=election.name, timeout=election.renew_deadline / 2),
                lead=self.lead,
                follow=self.follow,
            )
        )
        self.kube = KubeGateway(
            api,
            dry_run=settings.dry_run,
            component=COMPONENT,
            may_write=self.elector.holds if self.elector is not None else None,
        )
        self.reports = ImageReports()
        self.reports.read_from(self.kube.get_image_report)  # a report the watch shows, read when asked for
        self.keeper = ReportKeeper(
            reports=self.reports,
            kube=self.kube,
            in_use=self.digests_in_use,
            clock=lambda: datetime.now(UTC),
            grace_seconds=settings.report_grace_seconds,
        )
        self.engine = build_engine(
            registry=settings.registry,
            kube=self.kube,
            view=ClusterView(trusted_report_namespaces=settings.trusted_report_namespaces),
            store=self.keeper,
            network_backend=network_backend,
        )
        self.audit = AuditController(
            evaluator=self.engine.evaluator,
            view=self.engine.view,
            kube=self.kube,
            workers=settings.workers,
            error_backoff=Backoff.after_failure_cache(settings.registry.failure_ttl_seconds),
            reports=(
                PolicyReports(PolicyReportWriter(self.kube, REPORT_APIS[settings.policy_reports]))
                if settings.policy_reports
                else None
            ),
            evaluated=self.keeper.evaluated,
            annotate=self.with_pull_costs,
        )
        credentials = partial(connection_info, settings.kubeconfig)
        self._credentials = credentials
        self.pull_label = metrics.PullImageLabel(settings.image_metrics)
        self.pulls = PullLedger(
            pulls=self.keeper.pulls,
            pod_image_ids=partial(container_image_ids, self.kube),
            load=self.keeper.stored_pulls,
            resolved=self.keeper.resolved,
            changed=self._pulled,
            counted=self._count_pull,
        )
        self.pull_events: KindWatch | None = None
        self._pulled_digests: set[str] = set()
        self._rejudge: asyncio.TimerHandle | None = None
        self.image_reports = watch_image_reports(
            self.reports, credentials, page_size=settings.report_page_size, component="controller"
        )
        self.vulnerability_reports = VulnerabilityReportFeed(
            self.engine.view,
            credentials,
            observe=lambda body, deleted: self.audit.observe_report(body, deleted=deleted),
            listed=self.audit.reports_listed,
            page_size=settings.report_page_size,
            component="controller",
        )
        # Each node's platform (for the audit) and runtime (which sizes its kubelet's pulls report).
        self.nodes = watch_nodes(
            lambda body, deleted: self.observe_node(body, deleted=deleted), credentials, component="controller"
        )
        self.started = False
        """The reports and policies are read: the audit judges (or stands by) from here on."""
        self.informer: WorkloadInformer | None = None
        self.metrics: MetricsServer | None = None
        self._reaudit: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Everything that reads, started; then lead at once, or stand by for the election."""
        # Both report kinds are listed before the first evaluation: what is reported is not read again, and no
        # vulnerability rule is decided on part of the reports.
        self.image_reports.start()
        self.nodes.start()
        await self.audit.start(lead=False)
        self.vulnerability_reports.follow_policies()
        await self.image_reports.wait_listed()
        await self.vulnerability_reports.wait_listed()
        await self.nodes.wait_listed()  # the first verdicts judge the platforms the nodes run
        if self.settings.own_process:  # what is loaded and listed so far: no collection walks it again
            set_aside_start_up_objects("controller")
        self.started = True
        log.info("slimguard controller started: %s; %d ImageReports read", self.settings.describe(), len(self.reports))
        self.informer = _watch_workloads(self.settings, self.audit)
        if self.settings.metrics_port:
            self.metrics = MetricsServer(self.settings, self.audit, self.keeper.pulls)
        self._reaudit = asyncio.create_task(_reaudit(self.audit, self.settings.audit_interval_seconds))
        if self.elector is None:
            await self.lead()
        else:  # Ready now, as a standby: the election decides when this replica writes
            metrics.LEADER.set(0)
            self.elector.start()

    async def lead(self) -> None:
        """This replica writes from now on: the ImageReports' writer and sweeper, the workers and a full re-audit."""
        if self.audit.leading:
            return
        await self.keeper.start()
        await self.audit.lead()
        self._watch_pulls()
        metrics.LEADER.set(1)

    async def follow(self) -> None:
        """Leadership lost (its writes are already refused): stop what writes, keep watching, stand by."""
        metrics.LEADER.set(0)
        await self._stop_pulls()
        # The next leader folds on from the reports: leading again, this replica starts from them too, not from
        # what it held, which the other may have added to meanwhile.
        self.keeper.pulls.clear()
        await self.audit.follow()
        await self.keeper.stop()

    async def stop(self) -> None:
        """Stop in the order work flows, so nothing runs on what is already closed: what brings work (the
        re-audit timer, the informer), what does it (the workers), what it started on its own (the engine's
        reads), then the last reports are written, the leader lease is released (a standby takes over at once),
        and only then are the registry connections and /metrics closed. The lease is renewed until then, and
        taken by no standby that is shutting down. Safe on a replica whose ``start`` did not finish."""
        if self.elector is not None:
            await self.elector.retire()
        if self._reaudit is not None:
            self._reaudit.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaudit
        if self.informer is not None:
            await self.informer.stop()
        await self._stop_pulls()
        await self.vulnerability_reports.stop()
        await self.image_reports.stop()
        await self.nodes.stop()
        await self.audit.stop()
        await self.engine.stop_background()
        await self.keeper.stop()
        # What was learned last is written before the process goes, so the next one need not read it again
        # (by the leader: a standby has nothing to write, and may not).
        try:
            if self.elector is None or self.elector.holds():
                await asyncio.wait_for(self.keeper.flush(), timeout=5)
        except Exception as error:  # a report is a cache: shutdown goes on, and says so
            log.warning("the last ImageReports were not all written at shutdown: %r", error)
        if self.elector is not None:
            await self.elector.close()
        metrics.LEADER.set(0)
        await self.engine.aclose()
        if self.metrics is not None:
            self.metrics.stop()

    # --- what the parts ask of each other --------------------------------------------------------------------

    def digests_in_use(self) -> set[str]:
        """For the keeper's sweeps: the digests the workloads' containers and the policies' named bases last
        resolved to (and pinned ones)."""
        workloads = [record.workload for record in self.audit.workloads.values()]
        return digests_in_use(workloads, self.audit.view.active_policies, self.keeper.resolved)

    def observe_policy(self, body: Mapping[str, Any], *, deleted: bool) -> None:
        self.audit.observe_policy(body, deleted=deleted)
        if deleted and (name := (body.get("metadata") or {}).get("name")):
            self.keeper.policy_gone(str(name))
        self.vulnerability_reports.follow_policies()

    def observe_node(self, body: Mapping[str, Any], *, deleted: bool) -> None:
        self.audit.observe_node(body, deleted=deleted)
        self.pulls.observe_node(body, deleted=deleted)

    # --- the kubelets' pulls ------------------------------------------------------------------------------------

    def _watch_pulls(self) -> None:
        """The leader folds the pulls (and counts them once in the metrics); a standby's ledger is idle."""
        if self.pull_events is None:
            self.pulls.start()
            self.pull_events = watch_pulled_events(self._credentials, self.pulls.observe_event)
            self.pull_events.start()

    async def _stop_pulls(self) -> None:
        watch, self.pull_events = self.pull_events, None
        if watch is not None:
            await watch.stop()
        await self.pulls.stop()
        if self._rejudge is not None:
            self._rejudge.cancel()
            self._rejudge = None

    def _pulled(self, digest: str, pulls: ImagePulls) -> None:
        self.keeper.pulled(digest, pulls)
        self._pulled_digests.add(digest)
        if self._rejudge is None:  # a burst of pulls (a scale-up) re-judges its workloads once
            self._rejudge = asyncio.get_running_loop().call_later(REJUDGE_SECONDS, self._judge_pulled_again)

    def _judge_pulled_again(self) -> None:
        digests, self._pulled_digests, self._rejudge = self._pulled_digests, set(), None
        self.audit.images_pulled(digests)

    def _count_pull(self, event: PullEvent, digest: str, times: int) -> None:
        pulled = event.pulled
        metrics.image_pulled(
            event.namespace,
            self.pull_label(pulled.image),
            cold=pulled.cold,
            times=times,
            seconds=pulled.seconds,
            size=pulled.size,
        )

    def with_pull_costs(self, verdict: Verdict) -> Verdict:
        return with_pull_costs(verdict, self.keeper.pulls)

    def enforcing(self) -> str:
        """What kopf's health probe says (``enforcement_summary``), or that the replica is still starting."""
        return enforcement_summary(self.audit) if self.started else "starting"


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


def _watch_workloads(settings: ControllerSettings, controller: AuditController) -> WorkloadInformer:
    """Workloads come from slimguard's own paged LIST and WATCH, not kopf's (kube/informer.py says why)."""

    def observe(kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        controller.observe_workload(kind, body, deleted=deleted)

    informer = WorkloadInformer(
        WORKLOAD_RESOURCES,
        lambda: connection_info(settings.kubeconfig),
        observe,
        # The kinds nearly always made by another workload: their bodies are read only where one is not.
        needs_body={entry.kind: _made_by_hand for entry in WORKLOADS if entry.usually_owned},
    )
    informer.start()
    return informer


def _made_by_hand(body: Mapping[str, Any]) -> bool:
    return not made_by_a_workload(body)


async def _reaudit(controller: AuditController, interval: float) -> None:
    """Tags move: re-evaluate everything now and then; unchanged verdicts cost no write."""
    while True:
        await asyncio.sleep(interval)
        controller.enqueue_all()
