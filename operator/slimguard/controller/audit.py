"""The audit loop: the controller's picture of the cluster, a work queue, and the workers that drain it.

The workload informer and kopf (policies, namespaces, reports) feed events in (``observe_*``); workers evaluate
one workload at a time and write only what changed. Own writes come back as events too: they change no input
of the evaluation, so they are not re-queued.

Only the leader writes (kube/leader.py). A standby observes as the leader does, so its picture of the cluster is
warm, but runs no workers: what it is asked to evaluate waits in the queue. ``lead`` starts the workers on it and
a full re-audit; ``follow`` stops them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slimguard import metrics
from slimguard.controller import annotations as notes
from slimguard.controller.policy_reports import PolicyReports
from slimguard.controller.queue import WorkQueue
from slimguard.controller.status import ENFORCING, policy_status
from slimguard.controller.timers import Backoff, Scheduler, Timer, loop_scheduler
from slimguard.core.evaluation.plan import Plan, plan
from slimguard.core.evaluation.verdict import FindingKind, Status, Verdict
from slimguard.core.model.placement import judged_platforms
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Workload, WorkloadKey, normalise
from slimguard.core.text import shorten
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.exhaustion import exit_exhausted, is_exhaustion
from slimguard.kube.gateway import KubeGateway, NotLeader
from slimguard.kube.resources import POLICY_API_VERSION, api_version
from slimguard.registry.settings import RegistrySettings

log = logging.getLogger(__name__)

EVENT_REASON = "ImagePolicyViolation"
NOTHING_ENFORCED = "NothingEnforced"
"""The Event on an ImagePolicy whose Enforcing condition turns False: once a transition, never per audit."""
EVENT_MESSAGE_LENGTH = 1024  # what the gateway sends at most; cut here, in the middle, the reason survives


@dataclass(slots=True)
class WorkloadRecord:
    workload: Workload
    uid: str | None
    marks: notes.Marks
    """What slimguard has said on it: as the watch last showed it, or as slimguard last wrote it."""
    fingerprint: bytes


def _plain(value: object) -> object:
    """A mapping view (kopf hands bodies as views over the raw dicts) as a dict; anything else as its text."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def _condition_of(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    found = (status or {}).get("conditions") or ()
    return next((c for c in found if isinstance(c, Mapping) and c.get("type") == kind), None)


def _fingerprint(workload: Workload) -> bytes:
    """A digest of everything about a workload that evaluation reads; our own label and annotations are not in
    it (normalise keeps the status label out of ``labels``)."""
    payload = json.dumps(
        [
            workload.labels,
            [(c.type, c.name, c.image, c.run_as_user, c.run_as_non_root) for c in workload.containers],
            workload.pull_secrets,
            workload.service_account,
            workload.platform_pin,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).digest()


@dataclass
class AuditController:
    evaluator: Evaluator
    """Built by engine.wiring, as the webhook's is, over ``view``."""
    view: ClusterView
    """The cluster as this controller's watches show it; the evaluator reads it."""
    kube: KubeGateway
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    workers: int = 8
    status_interval: float = 1.0
    status_cpu_share: float = 0.05
    """At most this share of the event loop goes to recomputing policy statuses: each recompute reads every
    verdict, so at 10,000 workloads one per second would cost more and more of the audit it reports on."""
    cpu_clock: Callable[[], float] = time.thread_time
    scheduler: Scheduler = loop_scheduler
    error_backoff: Backoff = field(
        default_factory=lambda: Backoff.after_failure_cache(RegistrySettings().failure_ttl_seconds)
    )
    """How soon a workload whose verdict holds errors is evaluated again: after the inspector's failure cache
    has let go of the failure (the wiring passes the registry settings' own TTL)."""
    reports: PolicyReports | None = None
    """Writes each verdict as a PolicyReport too; None: no reports (``--policy-reports none``)."""
    evaluated: Callable[[Plan, Verdict], None] | None = None
    """Told every verdict with the plan it was made by (the wiring passes the slimmer-base hints on to the
    ImageReports from it)."""

    annotate: Callable[[Verdict], Verdict] | None = None
    """Adds to each verdict what the controller alone knows (the wiring passes the pull costs: how often the
    image was pulled cold and what a slim version would save, in its violation message)."""

    def __post_init__(self) -> None:
        self.workloads: dict[WorkloadKey, WorkloadRecord] = {}
        self.verdicts: dict[WorkloadKey, Verdict] = {}
        self._queue: WorkQueue[WorkloadKey] = WorkQueue()
        # Each workload's violations annotation as we last wrote it (or found it, when first seen). Events are
        # decided against this, not the body kopf last showed: a watch event made before our write can arrive
        # after it, and would make the same violations look new.
        self._announced: dict[WorkloadKey, str] = {}
        self._status_dirty = asyncio.Event()
        # Each policy's status as last written, or as the cluster held it when first seen: a restarted controller
        # keeps the conditions' transition times, and says nothing again about a transition already announced.
        self._written_status: dict[str, dict[str, Any]] = {}
        self._policy_uids: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_audit: datetime | None = None
        # Two kinds of timer per workload, kept apart so that setting one never cancels the other.
        self._wakeups: dict[WorkloadKey, Timer] = {}  # the next exemption to expire
        self._retries: dict[WorkloadKey, Timer] = {}  # the next retry of a verdict with errors
        self._error_attempts: dict[WorkloadKey, int] = {}
        self._backoff = self.error_backoff
        # Which workloads' verdicts read the reports of which digest: a report names one workload, but speaks
        # for every workload running its digest.
        self._scanned: dict[WorkloadKey, tuple[str, ...]] = {}
        self._awaiting_reports: set[WorkloadKey] = set()
        """Evaluated while the VulnerabilityReports were being listed, by policies that read them."""
        self._scanned_by: dict[str, set[WorkloadKey]] = {}
        # Our annotations as the Deployment controller copied them onto ReplicaSets (only those that carry any),
        # with the Deployment each copied from. It never removes a copy: once the Deployment no longer carries
        # one (fixed, migrated from the annotation-only format, no policy any more), slimguard removes it.
        self._copies: dict[WorkloadKey, tuple[WorkloadKey, frozenset[str]]] = {}
        self._copies_by_owner: dict[WorkloadKey, set[WorkloadKey]] = {}
        # Each policy's status as the watch last showed it: what a new leader takes as written, so it writes only
        # what differs and keeps the conditions' transition times.
        self._seen_status: dict[str, dict[str, Any]] = {}
        self.leading = False
        """Workers running, writes made: this replica leads (or leader election is off)."""

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self, *, lead: bool = True) -> None:
        """Read the policies; then lead at once, unless a leader election decides when (``lead``/``follow``)."""
        await self.view.sync_policies(self.kube)
        if lead:
            await self.lead()

    async def lead(self) -> None:
        """Start writing: the workers, the status writer, and a full re-audit of everything seen so far.

        What this replica remembers of its own writes is taken afresh from what the cluster shows, as at a
        restart: while it stood by, another replica wrote.
        """
        if self.leading:
            return
        self.leading = True
        self._announced = {
            key: said
            for key, record in self.workloads.items()
            if (said := record.marks.annotations.get(notes.VIOLATIONS)) is not None
        }
        self._written_status = {name: dict(status) for name, status in self._seen_status.items()}
        if self.reports is not None:
            await self.reports.start()
        self._tasks = [asyncio.create_task(self._work(), name=f"slimguard-worker-{n}") for n in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._write_statuses(), name="slimguard-status"))
        self.enqueue_all()
        self._status_dirty.set()

    async def follow(self) -> None:
        """Stop writing: cancel the workers and the status writer and wait for them. Observations go on."""
        self.leading = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        for timers in (self._wakeups, self._retries):
            for timer in timers.values():
                timer.cancel()
            timers.clear()
        await self.follow()

    @property
    def idle(self) -> bool:
        """Every workload asked for has been evaluated and written (tests wait on this instead of sleeping)."""
        return self._queue.idle

    # --- observations (from the informer and kopf) -----------------------------------------------------------

    def observe_workload(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        workload = normalise(kind, body)
        key = workload.key
        if kind == "ReplicaSet":
            if owner := self.view.observe_replicaset(workload, deleted=deleted):
                self.enqueue(owner)
            self._note_copies(workload, deleted=deleted)
        if deleted:
            self.workloads.pop(key, None)
            self._announced.pop(key, None)
            if self.reports is not None:
                self.reports.forget(key.namespace, workload.uid)
            for timers in (self._wakeups, self._retries):
                if (timer := timers.pop(key, None)) is not None:
                    timer.cancel()
            self._error_attempts.pop(key, None)
            self._note_scanned(key, ())
            if self.verdicts.pop(key, None) is not None:
                self._status_dirty.set()
            return
        if workload.controlled:
            # Reported on its owner (a Deployment's ReplicaSets, a Job's Pods): never twice.
            return
        fingerprint = _fingerprint(workload)
        previous = self.workloads.get(key)
        record = WorkloadRecord(
            workload=workload,
            uid=workload.uid,
            marks=notes.Marks.of(workload),
            fingerprint=fingerprint,
        )
        self.workloads[key] = record
        if previous is None and (said := record.marks.annotations.get(notes.VIOLATIONS)) is not None:
            self._announced.setdefault(key, said)  # a restarted controller does not repeat itself
        if previous is None or previous.fingerprint != fingerprint:
            self.enqueue(key)
        self._check_copies_of(key)

    def observe_policy(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name"))
        if deleted:
            self._seen_status.pop(name, None)
        else:
            if uid := metadata.get("uid"):
                self._policy_uids[name] = str(uid)
            if isinstance(stored := body.get("status"), Mapping):
                seen = json.loads(json.dumps(stored, default=_plain))
                self._seen_status[name] = seen
                self._written_status.setdefault(name, seen)
        if self.view.observe_policy(body, deleted=deleted):
            if deleted:
                self._written_status.pop(name, None)
                self._policy_uids.pop(name, None)
            self._status_dirty.set()
            self.enqueue_all()

    def observe_namespace(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        if self.view.observe_namespace(body, deleted=deleted):
            self.enqueue_all(namespace=str((body.get("metadata") or {}).get("name")))

    def observe_node(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A platform the Ready nodes run appeared or went: the workloads it changes are judged again."""
        if not self.view.observe_node(body, deleted=deleted):
            return
        self._status_dirty.set()
        nodes = self.view.node_platforms
        for key, verdict in list(self.verdicts.items()):
            record = self.workloads.get(key)
            if record is None or not self._judges_node_platforms(verdict):
                continue
            if judged_platforms(record.workload.platform_pin, nodes) != verdict.platforms:
                self.enqueue(key)

    def _judges_node_platforms(self, verdict: Verdict) -> bool:
        """Whether one of the verdict's policies lists no ``platforms`` (and so judges the nodes')."""
        records = (self.view.policies.get(name) for name in verdict.policies)
        return any(r is not None and r.policy is not None and not r.policy.spec.rules.platforms for r in records)

    def observe_report(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        change = self.view.observe_report(body, deleted=deleted)
        if change is None:
            return
        self.enqueue(change.owner)
        for digest in change.digests:
            for key in list(self._scanned_by.get(digest, ())):
                self.enqueue(key)

    def images_pulled(self, digests: set[str]) -> None:
        """The kubelets pulled these digests: the workloads running them are judged again (their violation
        messages say the pull costs)."""
        for key, verdict in list(self.verdicts.items()):
            if any(digest in digests for size in verdict.image_sizes for digest in size.digests):
                self.enqueue(key)

    def reports_listed(self) -> None:
        """The VulnerabilityReports are listed: evaluate again every workload evaluated without them (its
        vulnerability rule undecided, its stale-base finding without Trivy's counts)."""
        awaiting, self._awaiting_reports = self._awaiting_reports, set()
        for key in awaiting:
            self.enqueue(key)

    def _note_scanned(self, key: WorkloadKey, digests: tuple[str, ...]) -> None:
        for digest in self._scanned.pop(key, ()):
            keys = self._scanned_by.get(digest)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._scanned_by[digest]
        if digests:
            self._scanned[key] = digests
            for digest in digests:
                self._scanned_by.setdefault(digest, set()).add(key)

    # --- our annotations copied onto ReplicaSets ------------------------------------------------------------

    def _note_copies(self, replicaset: Workload, *, deleted: bool) -> None:
        key = replicaset.key
        self._forget_copies(key)
        owner = next((name for kind, name in replicaset.owners if kind == "Deployment"), None)
        copied = frozenset(name for name in replicaset.annotations if name in notes.OURS)
        if deleted or owner is None or not copied:
            return
        self._remember_copies(key, WorkloadKey("Deployment", replicaset.namespace, owner), copied)
        if self._stale_copies(key):
            self.enqueue(key)

    def _remember_copies(self, key: WorkloadKey, owner: WorkloadKey, copied: frozenset[str]) -> None:
        self._copies[key] = (owner, copied)
        self._copies_by_owner.setdefault(owner, set()).add(key)

    def _forget_copies(self, key: WorkloadKey) -> None:
        entry = self._copies.pop(key, None)
        if entry is not None and (siblings := self._copies_by_owner.get(entry[0])) is not None:
            siblings.discard(key)
            if not siblings:
                del self._copies_by_owner[entry[0]]

    def _stale_copies(self, key: WorkloadKey) -> dict[str, str | None]:
        """The copies on a ReplicaSet that its Deployment does not carry (none while the Deployment is unseen)."""
        entry = self._copies.get(key)
        owner = self.workloads.get(entry[0]) if entry is not None else None
        if entry is None or owner is None:
            return {}
        return {name: None for name in sorted(entry[1]) if name not in owner.marks.annotations}

    def _check_copies_of(self, owner: WorkloadKey) -> None:
        for key in list(self._copies_by_owner.get(owner, ())):
            if self._stale_copies(key):
                self.enqueue(key)

    async def _remove_stale_copies(self, key: WorkloadKey) -> None:
        stale = self._stale_copies(key)
        if not stale:
            return
        await self.kube.patch_metadata(key.kind, key.namespace, key.name, annotations=stale)
        entry = self._copies.get(key)
        if entry is not None:  # until the watch shows it: a second look before then writes nothing again
            self._forget_copies(key)
            if left := entry[1] - stale.keys():
                self._remember_copies(key, entry[0], left)

    # --- queue ---------------------------------------------------------------------------------------------

    def enqueue(self, key: WorkloadKey) -> None:
        self._queue.add(key)

    def enqueue_all(self, *, namespace: str | None = None) -> None:
        for key in list(self.workloads):
            if namespace is None or key.namespace == namespace:
                self.enqueue(key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except NotLeader:  # leadership lapsed under it: the workers are being stopped; the next leader does it
                log.debug("audit of %s stopped: not the leader", key)
            except Exception as error:
                if is_exhaustion(error):  # every workload after this one would fail the same way, or hang
                    exit_exhausted("controller", error)
                # One workload's failure must not stop the audit of the others; it is retried on the next pass.
                log.exception("audit of %s failed", key)
            finally:
                self._queue.done(key)
                if self._queue.idle:
                    self._last_audit = self.clock()
                    self._status_dirty.set()

    # --- one workload ------------------------------------------------------------------------------------

    async def reconcile(self, key: WorkloadKey) -> Verdict | None:
        if key in self._copies:  # a Deployment's ReplicaSet: only copies of our annotations are written there
            await self._remove_stale_copies(key)
            return None
        record = self.workloads.get(key)
        if record is None:
            return None
        workload = record.workload
        chosen = plan(
            self.view.active_policies,
            workload,
            self.view.namespace_labels(workload.namespace),
            node_platforms=self.view.node_platforms,
        )
        policies = chosen.policies
        verdict: Verdict | None = None
        if policies:
            # Evaluated while the VulnerabilityReports are being listed: made again once they are.
            waited = self.view.reports_pending and chosen.reads.vulnerability_reports
            with metrics.EVALUATION_SECONDS.time():
                verdict = await self.evaluator.verdict(chosen, now=self.clock())
            if self.annotate is not None:
                verdict = self.annotate(verdict)
            if waited and self.view.reports_pending:
                self._awaiting_reports.add(key)
            elif waited:  # listed while it was evaluated
                self.enqueue(key)
            metrics.EVALUATIONS.labels(status=verdict.status.value).inc()
            self.verdicts[key] = verdict
            if self.evaluated is not None:
                self.evaluated(chosen, verdict)
            self._note_scanned(key, verdict.scanned_digests)
            self._wake_when_exemptions_expire(key, policies)
            self._retry_while_erroring(key, verdict)
        else:
            self._retry_while_erroring(key, None)
            self._note_scanned(key, ())
            if self.verdicts.pop(key, None) is None and record.marks.empty:
                await self._report(record, None, ())
                return None
        self._status_dirty.set()
        await self._write(record, verdict)
        await self._report(record, verdict, policies)
        return verdict

    async def _report(self, record: WorkloadRecord, verdict: Verdict | None, policies: tuple[ImagePolicy, ...]) -> None:
        if self.reports is not None:
            await self.reports.update(record.workload, record.uid, verdict, policies)

    def _wake_when_exemptions_expire(self, key: WorkloadKey, policies: tuple[ImagePolicy, ...]) -> None:
        """An expired exemption stops applying by itself: re-evaluate the moment the next one runs out."""
        now = self.clock()
        upcoming = [
            exemption.expires
            for policy in policies
            for exemption in policy.spec.exemptions
            if exemption.expires is not None and exemption.expires > now
        ]
        if not upcoming:
            return
        delay = (min(upcoming) - now).total_seconds() + 0.5
        previous = self._wakeups.pop(key, None)
        if previous is not None:
            previous.cancel()
        self._wakeups[key] = self.scheduler(delay, functools.partial(self.enqueue, key))

    def _retry_while_erroring(self, key: WorkloadKey, verdict: Verdict | None) -> None:
        """A registry error is retried with backoff, not left until the next full re-audit (10 min by default).

        Reset once the verdict holds no error. A retry already due is left as it is: evaluations in between
        (a watch event) neither push it back nor add another.
        """
        if verdict is None or not verdict.errors:
            self._error_attempts.pop(key, None)
            if (timer := self._retries.pop(key, None)) is not None:
                timer.cancel()
            return
        if key in self._retries:
            return
        attempt = self._error_attempts.get(key, 0)
        self._error_attempts[key] = attempt + 1
        self._retries[key] = self.scheduler(self._backoff.delay(attempt), functools.partial(self._retry, key))

    def _retry(self, key: WorkloadKey) -> None:
        self._retries.pop(key, None)
        self.enqueue(key)

    async def _write(self, record: WorkloadRecord, verdict: Verdict | None) -> None:
        workload = record.workload
        key = workload.key
        wanted = notes.desired(verdict, self.clock())
        patch = notes.patch_for(record.marks, wanted)
        if patch is None:
            return
        annotations = patch.get("annotations", {})
        said = annotations.get(notes.VIOLATIONS)
        if said is not None and self._announced.get(key) != said:
            # The Event goes first, under a name fixed by what changed: killed between the two writes, the
            # controller finds the old annotation again, writes the same Event again, and the apiserver keeps
            # one. Annotation first would lose the Event for good, as the restarted controller sees no change.
            self._announced[key] = said  # before the await: a concurrent write of the same verdict says nothing
            previous = record.marks.annotations.get(notes.VIOLATIONS)
            await self._announce(record, verdict, previous=previous, said=said)
        found = await self.kube.patch_metadata(workload.kind, workload.namespace, workload.name, **patch)
        if not found:
            return
        record.marks = notes.applied(record.marks, patch)
        current = self.workloads.get(key)
        if current is not None and current is not record:
            # A watch event replaced the record while the patch was on its way; ours is the newer write.
            current.marks = notes.applied(current.marks, patch)
        if notes.VIOLATIONS in annotations and said is None:  # gone: the next violations, whatever, are news
            self._announced.pop(key, None)
        self._check_copies_of(key)

    async def _announce(
        self, record: WorkloadRecord, verdict: Verdict | None, *, previous: str | None, said: str
    ) -> None:
        if verdict is None or verdict.status is not Status.NONCOMPLIANT:
            return
        workload = record.workload
        told = [f for f in verdict.distinct_findings if f.kind is FindingKind.VIOLATION]
        more = f" (and {len(told) - 1} more violations)" if len(told) > 1 else ""
        hint = next((h.text for h in verdict.hints if h.text not in told[0].message), None)
        if hint is not None:  # the first violation is not a size one: the cure is still worth saying
            more += f"; slimmer base: {hint}"
        await self.kube.emit_event(
            kind=workload.kind,
            namespace=workload.namespace,
            name=workload.name,
            uid=record.uid,
            api_version=api_version(workload.kind),
            reason=EVENT_REASON,
            message=shorten(told[0].message, EVENT_MESSAGE_LENGTH - len(more)) + more,
            event_name=notes.event_name(workload.name, record.uid, previous, said),
        )

    # --- policy status -----------------------------------------------------------------------------------

    def status_delay(self, recompute_seconds: float) -> float:
        """The pause before the next status recompute: the debounce interval, or longer when the last one was
        expensive enough to take more than `status_cpu_share` of the loop."""
        return max(self.status_interval, recompute_seconds * (1 - self.status_cpu_share) / self.status_cpu_share)

    async def _write_statuses(self) -> None:
        recompute_seconds = 0.0
        while True:
            await self._status_dirty.wait()
            # Debounce: one write per policy per interval at most.
            await asyncio.sleep(self.status_delay(recompute_seconds))
            self._status_dirty.clear()
            try:
                recompute_seconds = await self.flush_statuses()
            except asyncio.CancelledError:
                raise
            except NotLeader:
                log.debug("ImagePolicy status not written: not the leader")
            except Exception:
                log.exception("writing ImagePolicy status failed; will retry")
                self._status_dirty.set()

    async def flush_statuses(self) -> float:
        """Write every policy's status that changed; returns the CPU seconds the recomputation took."""
        started = self.cpu_clock()
        changed: list[tuple[str, dict[str, Any]]] = []
        for name, record in list(self.view.policies.items()):
            status = policy_status(
                record.name,
                record.generation,
                record.error,
                [v for v in self.verdicts.values() if name in v.policies],
                last_audit=self._last_audit,
                previous=self._written_status.get(name),
                now=self.clock(),
                policy=record.policy,
                node_platforms=self.view.node_platforms,
            )
            if self._written_status.get(name) != status:
                changed.append((name, status))
        spent = self.cpu_clock() - started
        for name, status in changed:
            await self._announce_enforcement(name, self._written_status.get(name), status)
            await self.kube.patch_policy_status(name, status)
            self._written_status[name] = status
        return spent

    async def _announce_enforcement(self, name: str, previous: dict[str, Any] | None, status: dict[str, Any]) -> None:
        """A Warning Event when the Enforcing condition turns False, once per transition: first, under a name
        fixed by the transition, so a controller killed before the status write posts the same one again (the
        apiserver keeps one) and one restarted after it finds the transition written and says nothing."""
        now = _condition_of(status, ENFORCING)
        before = _condition_of(previous, ENFORCING)
        if now is None or now.get("status") != "False" or (before is not None and before.get("status") == "False"):
            return
        uid = self._policy_uids.get(name)
        change = hashlib.sha256(f"{uid or name}\0{now.get('lastTransitionTime')}".encode()).hexdigest()[:16]
        suffix = f".slimguard-{change}"
        await self.kube.emit_event(
            kind="ImagePolicy",
            namespace=None,
            name=name,
            uid=uid,
            api_version=POLICY_API_VERSION,
            reason=NOTHING_ENFORCED,
            message=shorten(str(now.get("message") or ""), EVENT_MESSAGE_LENGTH),
            event_name=name[: 253 - len(suffix)].rstrip("-.") + suffix,
        )
