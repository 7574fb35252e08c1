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

from slimguard import metrics
from slimguard.controller import annotations as notes
from slimguard.controller.status import policy_status
from slimguard.core.evaluation import applicable_policies
from slimguard.core.policy import ImagePolicy
from slimguard.core.verdict import Status, Verdict
from slimguard.core.workload import Workload, WorkloadKey, normalise
from slimguard.engine.credentials import PullCredentials
from slimguard.engine.facts import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.kube.gateway import KubeGateway
from slimguard.kube.resources import api_version
from slimguard.registry.inspector import ImageInspector

log = logging.getLogger(__name__)

EVENT_REASON = "ImagePolicyViolation"


@dataclass
class WorkloadRecord:
    workload: Workload
    uid: str | None
    annotations: dict[str, str]
    fingerprint: str


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
    trusted_report_namespaces: frozenset[str] | None = None

    def __post_init__(self) -> None:
        self.view = ClusterView(trusted_report_namespaces=self.trusted_report_namespaces)
        self.evaluator = Evaluator(
            inspector=self.inspector, view=self.view, credentials=PullCredentials(self.kube).for_workload
        )
        self.workloads: dict[WorkloadKey, WorkloadRecord] = {}
        self.verdicts: dict[WorkloadKey, Verdict] = {}
        self._queue: asyncio.Queue[WorkloadKey] = asyncio.Queue()
        self._queued: set[WorkloadKey] = set()
        self._status_dirty = asyncio.Event()
        self._written_status: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_audit: datetime | None = None
        self._wakeups: dict[WorkloadKey, asyncio.TimerHandle] = {}
        # Which workloads' verdicts read the reports of which digest: a report names one workload, but speaks
        # for every workload running its digest.
        self._scanned: dict[WorkloadKey, tuple[str, ...]] = {}
        self._scanned_by: dict[str, set[WorkloadKey]] = {}

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.view.sync_policies(self.kube)
        self._tasks = [asyncio.create_task(self._work(), name=f"slimguard-worker-{n}") for n in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._write_statuses(), name="slimguard-status"))

    async def stop(self) -> None:
        for handle in self._wakeups.values():
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # --- observations (from kopf) --------------------------------------------------------------------------

    def observe_workload(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        workload = normalise(kind, body)
        key = workload.key
        if kind == "ReplicaSet" and (owner := self.view.observe_replicaset(workload, body, deleted=deleted)):
            self.enqueue(owner)
        if deleted:
            self.workloads.pop(key, None)
            if (wakeup := self._wakeups.pop(key, None)) is not None:
                wakeup.cancel()
            self._note_scanned(key, ())
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

    def observe_policy(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        if self.view.observe_policy(body, deleted=deleted):
            if deleted:
                self._written_status.pop(str((body.get("metadata") or {}).get("name")), None)
            self._status_dirty.set()
            self.enqueue_all()

    def observe_namespace(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        if self.view.observe_namespace(body, deleted=deleted):
            self.enqueue_all(namespace=str((body.get("metadata") or {}).get("name")))

    def observe_report(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        change = self.view.observe_report(body, deleted=deleted)
        if change is None:
            return
        self.enqueue(change.owner)
        for digest in change.digests:
            for key in list(self._scanned_by.get(digest, ())):
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

    # --- queue ---------------------------------------------------------------------------------------------

    def enqueue(self, key: WorkloadKey) -> None:
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.put_nowait(key)

    def enqueue_all(self, *, namespace: str | None = None) -> None:
        for key in list(self.workloads):
            if namespace is None or key.namespace == namespace:
                self.enqueue(key)

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
                    self._status_dirty.set()

    # --- one workload ------------------------------------------------------------------------------------

    async def reconcile(self, key: WorkloadKey) -> Verdict | None:
        record = self.workloads.get(key)
        if record is None:
            return None
        workload = record.workload
        policies = applicable_policies(
            self.view.active_policies, workload, self.view.namespace_labels(workload.namespace)
        )
        verdict: Verdict | None = None
        if policies:
            with metrics.EVALUATION_SECONDS.time():
                verdict = await self.evaluator.verdict(workload, policies, now=self.clock())
            metrics.EVALUATIONS.labels(status=verdict.status.value).inc()
            self.verdicts[key] = verdict
            self._note_scanned(key, verdict.scanned_digests)
            self._wake_when_exemptions_expire(key, policies)
        elif self.verdicts.pop(key, None) is None and not any(k in record.annotations for k in notes.OURS):
            return None
        else:
            self._note_scanned(key, ())
        self._status_dirty.set()
        await self._write(record, verdict)
        return verdict

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
        self._wakeups[key] = asyncio.get_running_loop().call_later(delay, self.enqueue, key)

    async def _write(self, record: WorkloadRecord, verdict: Verdict | None) -> None:
        workload = record.workload
        wanted = notes.desired(verdict, self.clock())
        patch = notes.patch_for(record.annotations, wanted)
        if patch is None:
            return
        found = await self.kube.patch_annotations(workload.kind, workload.namespace, workload.name, patch)
        if not found:
            return
        before = record.annotations.get(notes.VIOLATIONS)
        for key, value in patch.items():
            if value is None:
                record.annotations.pop(key, None)
            else:
                record.annotations[key] = value
        if verdict is not None and verdict.status is Status.NONCOMPLIANT and before != patch.get(notes.VIOLATIONS):
            first = verdict.violations[0].message
            more = len(verdict.violations) - 1
            await self.kube.emit_event(
                kind=workload.kind,
                namespace=workload.namespace,
                name=workload.name,
                uid=record.uid,
                api_version=api_version(workload.kind),
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
            )
            if self._written_status.get(name) == status:
                continue
            await self.kube.patch_policy_status(name, status)
            self._written_status[name] = status
