"""The audit loop: the controller's picture of the cluster, a work queue, and the workers that drain it.

kopf feeds events in (``observe_*``); workers evaluate one workload at a time and write only what changed.
Own writes come back as events too: they change no input of the evaluation, so they are not re-queued.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slimguard.controller import annotations as notes
from slimguard.controller.status import policy_status
from slimguard.core.errors import InspectionError, InvalidPolicy
from slimguard.core.evaluation import Context, FactsOrError, applicable_policies, evaluate
from slimguard.core.facts import ImageFacts, Platform
from slimguard.core.matching import selected_containers
from slimguard.core.policy import ImagePolicy
from slimguard.core.verdict import Status, Verdict
from slimguard.core.vulnerabilities import VulnerabilityReport
from slimguard.core.workload import Workload, WorkloadKey, normalise
from slimguard.kube.gateway import KubeGateway
from slimguard.registry.credentials import Credential, decode_secret_data
from slimguard.registry.inspector import ImageInspector

log = logging.getLogger(__name__)

API_VERSIONS = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Pod": "v1",
}
EVENT_REASON = "ImagePolicyViolation"


@dataclass
class WorkloadRecord:
    workload: Workload
    uid: str | None
    annotations: dict[str, str]
    fingerprint: str


@dataclass
class PolicyRecord:
    name: str
    generation: int
    policy: ImagePolicy | None
    error: str | None = None


@dataclass
class Counters:
    evaluations: int = 0
    skipped_unchanged: int = 0
    annotation_writes: int = 0
    events: int = 0
    status_writes: int = 0


def _fingerprint(workload: Workload) -> str:
    """A digest of everything about a workload that evaluation reads; our own annotations are not in it."""
    payload = json.dumps(
        [
            workload.labels,
            [(c.type, c.name, c.image, c.run_as_user, c.run_as_non_root) for c in workload.containers],
            workload.pull_secrets,
            workload.service_account,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class AuditController:
    inspector: ImageInspector
    kube: KubeGateway
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    workers: int = 8
    status_interval: float = 1.0

    def __post_init__(self) -> None:
        self.policies: dict[str, PolicyRecord] = {}
        self.workloads: dict[WorkloadKey, WorkloadRecord] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self.reports: dict[tuple[str, str], VulnerabilityReport] = {}
        self.replicasets: dict[tuple[str, str], tuple[str, int]] = {}
        self.verdicts: dict[WorkloadKey, Verdict] = {}
        self.counters = Counters()
        self._queue: asyncio.Queue[WorkloadKey] = asyncio.Queue()
        self._queued: set[WorkloadKey] = set()
        self._status_dirty = asyncio.Event()
        self._written_status: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_audit: datetime | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        for body in await self.kube.list_policies():
            self.observe_policy(body, enqueue=False)
        self._tasks = [asyncio.create_task(self._work(), name=f"slimguard-worker-{n}") for n in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._write_statuses(), name="slimguard-status"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # --- observations (from kopf) --------------------------------------------------------------------------

    def observe_workload(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        workload = normalise(kind, body)
        key = workload.key
        if kind == "ReplicaSet":
            self._observe_replicaset(workload, body, deleted)
        if deleted:
            self.workloads.pop(key, None)
            if self.verdicts.pop(key, None) is not None:
                self._status_dirty.set()
            return
        if workload.controlled:
            # Reported on its owner (a Deployment's ReplicaSets, a Job's Pods): never twice.
            return
        metadata = body.get("metadata") or {}
        fingerprint = _fingerprint(workload)
        previous = self.workloads.get(key)
        self.workloads[key] = WorkloadRecord(
            workload=workload,
            uid=metadata.get("uid"),
            annotations=dict(metadata.get("annotations") or {}),
            fingerprint=fingerprint,
        )
        if previous is None or previous.fingerprint != fingerprint:
            self.enqueue(key)

    def _observe_replicaset(self, workload: Workload, body: Mapping[str, Any], deleted: bool) -> None:
        owner = next((name for kind, name in workload.owners if kind == "Deployment"), None)
        if owner is None:
            return
        rs_key = (workload.namespace, workload.name)
        if deleted:
            self.replicasets.pop(rs_key, None)
            return
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        revision = str(annotations.get("deployment.kubernetes.io/revision") or "0")
        before = self.replicasets.get(rs_key)
        self.replicasets[rs_key] = (owner, int(revision) if revision.isdigit() else 0)
        if before != self.replicasets[rs_key]:
            self.enqueue(WorkloadKey("Deployment", workload.namespace, owner))

    def observe_policy(self, body: Mapping[str, Any], *, deleted: bool = False, enqueue: bool = True) -> None:
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name"))
        generation = int(metadata.get("generation") or 0)
        previous = self.policies.get(name)
        if deleted:
            self.policies.pop(name, None)
            self._written_status.pop(name, None)
        elif previous is None or previous.generation != generation:
            try:
                policy = ImagePolicy.from_resource(name, body.get("spec") or {}, generation)
                self.policies[name] = PolicyRecord(name, generation, policy)
            except InvalidPolicy as error:
                log.warning("%s", error)
                self.policies[name] = PolicyRecord(name, generation, None, str(error))
        else:
            return  # a status write of ours, or metadata only
        self._status_dirty.set()
        if enqueue:
            self.enqueue_all()

    def observe_namespace(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name"))
        labels = dict(metadata.get("labels") or {})
        if deleted:
            self.namespaces.pop(name, None)
            return
        if self.namespaces.get(name) != labels:
            known = name in self.namespaces
            self.namespaces[name] = labels
            if known:
                self.enqueue_all(namespace=name)

    def observe_report(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        report = VulnerabilityReport.from_resource(body)
        key = (str((body.get("metadata") or {}).get("namespace")), report.name)
        if deleted:
            self.reports.pop(key, None)
        else:
            if self.reports.get(key) == report:
                return
            self.reports[key] = report
        kind, name = report.resource_kind, report.resource_name
        if kind == "ReplicaSet" and (report.namespace, name) in self.replicasets:
            kind, name = "Deployment", self.replicasets[(report.namespace, name)][0]
        self.enqueue(WorkloadKey(kind, report.namespace, name))

    # --- queue ---------------------------------------------------------------------------------------------

    def enqueue(self, key: WorkloadKey) -> None:
        if key in self._queued:
            return
        self._queued.add(key)
        self._idle.clear()
        self._queue.put_nowait(key)

    def enqueue_all(self, *, namespace: str | None = None) -> None:
        for key in list(self.workloads):
            if namespace is None or key.namespace == namespace:
                self.enqueue(key)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One workload's failure must not stop the audit of the others; it is retried on the next pass.
                log.exception("audit of %s failed", key)
            finally:
                self._queue.task_done()
                if self._queue.empty() and not self._queued:
                    self._last_audit = self.clock()
                    self._idle.set()
                    self._status_dirty.set()

    # --- one workload ------------------------------------------------------------------------------------

    @property
    def active_policies(self) -> list[ImagePolicy]:
        return [record.policy for record in self.policies.values() if record.policy is not None]

    def _report_owners(self, workload: Workload) -> tuple[tuple[str, str], ...]:
        if workload.kind != "Deployment":
            return ()
        mine = [
            (revision, name)
            for (namespace, name), (owner, revision) in self.replicasets.items()
            if namespace == workload.namespace and owner == workload.name
        ]
        return tuple(("ReplicaSet", name) for _, name in sorted(mine, reverse=True)[:1])

    async def reconcile(self, key: WorkloadKey) -> Verdict | None:
        record = self.workloads.get(key)
        if record is None:
            return None
        workload = record.workload
        namespace_labels = self.namespaces.get(workload.namespace, {})
        policies = applicable_policies(self.active_policies, workload, namespace_labels)
        verdict: Verdict | None = None
        if policies:
            self.counters.evaluations += 1
            facts, bases = await self._gather_facts(policies, workload, namespace_labels)
            context = Context(
                now=self.clock(),
                facts=facts,
                base_candidates=bases,
                namespace_labels=namespace_labels,
                reports=[r for (ns, _), r in self.reports.items() if ns == workload.namespace],
                report_owners=self._report_owners(workload),
            )
            verdict = evaluate(policies=policies, workload=workload, context=context)
            self.verdicts[key] = verdict
        elif self.verdicts.pop(key, None) is None and not any(k in record.annotations for k in notes.OURS):
            return None
        self._status_dirty.set()
        await self._write(record, verdict)
        return verdict

    async def _gather_facts(
        self, policies: tuple[ImagePolicy, ...], workload: Workload, namespace_labels: Mapping[str, str]
    ) -> tuple[dict[str, FactsOrError], dict[str, ImageFacts]]:
        platforms: dict[str, set[Platform]] = {}
        uncompressed: dict[str, bool] = {}
        for policy in policies:
            for container in selected_containers(policy, workload, namespace_labels):
                platforms.setdefault(container.image, set()).update(policy.spec.rules.required_platforms)
                uncompressed[container.image] = (
                    uncompressed.get(container.image, False) or policy.spec.rules.uncompressed_limit is not None
                )
        credentials = await self._credentials(workload)
        images = list(platforms)

        async def inspect(image: str) -> FactsOrError:
            try:
                return await self.inspector.inspect(
                    image, credentials=credentials, platforms=platforms[image], uncompressed=uncompressed[image]
                )
            except InspectionError as error:
                return error

        results = await asyncio.gather(*(inspect(image) for image in images))
        facts = dict(zip(images, results, strict=True))
        all_platforms = set().union(*platforms.values()) if platforms else set()
        candidates = list(dict.fromkeys(ref for p in policies for ref in p.base_image_candidates))
        bases: dict[str, ImageFacts] = {}
        for reference in candidates:
            try:
                bases[reference] = await self.inspector.inspect(
                    reference, credentials=credentials, platforms=all_platforms
                )
            except InspectionError as error:
                log.info("base image %s cannot be read to match layers: %s", reference, error)
        return facts, bases

    async def _credentials(self, workload: Workload) -> list[Credential]:
        names = list(workload.pull_secrets)
        names += await self.kube.service_account_pull_secrets(workload.namespace, workload.service_account)
        if not names:
            return []
        secrets = await self.kube.pull_secrets(workload.namespace, list(dict.fromkeys(names)))
        return [credential for data in secrets for credential in decode_secret_data(data)]

    async def _write(self, record: WorkloadRecord, verdict: Verdict | None) -> None:
        workload = record.workload
        wanted = notes.desired(verdict, self.clock())
        patch = notes.patch_for(record.annotations, wanted)
        if patch is None:
            self.counters.skipped_unchanged += 1
            return
        found = await self.kube.patch_annotations(workload.kind, workload.namespace, workload.name, patch)
        if not found:
            return
        self.counters.annotation_writes += 1
        before = record.annotations.get(notes.VIOLATIONS)
        for key, value in patch.items():
            if value is None:
                record.annotations.pop(key, None)
            else:
                record.annotations[key] = value
        if verdict is not None and verdict.status is Status.NONCOMPLIANT and before != patch.get(notes.VIOLATIONS):
            self.counters.events += 1
            first = verdict.violations[0].message
            more = len(verdict.violations) - 1
            await self.kube.emit_event(
                kind=workload.kind,
                namespace=workload.namespace,
                name=workload.name,
                uid=record.uid,
                api_version=API_VERSIONS[workload.kind],
                reason=EVENT_REASON,
                message=first + (f" (and {more} more violations)" if more else ""),
            )

    # --- policy status -----------------------------------------------------------------------------------

    async def _write_statuses(self) -> None:
        while True:
            await self._status_dirty.wait()
            await asyncio.sleep(self.status_interval)  # debounce: one write per policy per interval at most
            self._status_dirty.clear()
            try:
                await self.flush_statuses()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing ImagePolicy status failed; will retry")
                self._status_dirty.set()

    async def flush_statuses(self) -> None:
        for name, record in list(self.policies.items()):
            status = policy_status(
                record.name,
                record.generation,
                record.error,
                [v for v in self.verdicts.values() if name in v.policies],
                last_audit=self._last_audit,
                previous=self._written_status.get(name),
                now=self.clock(),
            )
            if self._written_status.get(name) == status:
                continue
            await self.kube.patch_policy_status(name, status)
            self.counters.status_writes += 1
            self._written_status[name] = status
