"""The audit loop with an in-memory gateway and inspector: what it writes, announces and retries, and when.

No cluster and no sleeping: the inspector is held at a gate the test opens, and timers go to a fake scheduler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from core.builders import NOW, facts, layers, platform_image

from slimguard.controller import annotations as notes
from slimguard.controller.audit import AuditController
from slimguard.controller.replica import enforcement_summary
from slimguard.core.errors import InspectionError
from slimguard.core.facts.image_facts import ImageFacts
from slimguard.core.model.workload import STATUS_LABEL, WorkloadKey
from slimguard.engine.credentials import PullCredentials
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.registry.settings import RegistrySettings

IMAGE = "registry.example.com/shop/api:1.0"
KEY = WorkloadKey("Deployment", "shop", "api")


class FakeKube:
    """Records writes; every call yields once, as a round trip to the apiserver does."""

    def __init__(self) -> None:
        self.patches: list[dict[str, dict[str, str | None]]] = []
        self.patched: list[tuple[str, str]] = []  # (kind, name) of each patch, in order
        self.events: list[str] = []
        self.event_names: list[str | None] = []
        self.event_fields: list[dict[str, Any]] = []
        self.statuses: list[tuple[str, dict[str, Any]]] = []
        self.writes: list[str] = []

    async def list_policies(self) -> list[dict[str, Any]]:
        return []

    async def patch_metadata(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str | None] | None = None,
        annotations: dict[str, str | None] | None = None,
    ) -> bool:
        await asyncio.sleep(0)
        self.patches.append({"labels": labels or {}, "annotations": annotations or {}})
        self.patched.append((kind, name))
        self.writes.append("metadata")
        return True

    async def emit_event(self, **fields: Any) -> None:
        await asyncio.sleep(0)
        self.events.append(str(fields["message"]))
        self.event_names.append(fields.get("event_name"))
        self.event_fields.append(fields)
        self.writes.append("event")

    async def service_account_pull_secrets(self, namespace: str, name: str) -> tuple[str, ...]:
        return ()

    async def pull_secrets(self, namespace: str, names: list[str]) -> list[dict[str, str]]:
        return []

    async def patch_policy_status(self, name: str, status: dict[str, Any]) -> None:
        self.statuses.append((name, status))
        self.writes.append("status")


class GatedInspector:
    """Answers only once ``gate`` is open; ``answer`` is what every inspection gives (facts, or an error)."""

    def __init__(self, answer: ImageFacts | InspectionError) -> None:
        self.answer = answer
        self.gate = asyncio.Event()
        self.calls = 0
        self.waiting = 0

    def cached(self, image: str, *_: Any, **__: Any) -> None:
        return None

    async def inspect(self, image: str, *_: Any, **__: Any) -> ImageFacts:
        self.calls += 1
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        if isinstance(self.answer, InspectionError):
            raise self.answer
        return self.answer


def policy_body(name: str = "slim", rules: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"mode": "Audit", "match": {"namespaces": ["shop"]}, "rules": rules or {"maxLayers": 1}, **spec},
    }


def deployment_body(
    image: str = IMAGE, *, labels: dict[str, Any] | None = None, annotations: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Deployment as the watch shows it, with whatever labels and annotations it carries."""
    pod = {"spec": {"containers": [{"name": "api", "image": image}]}}
    metadata = {"name": "api", "namespace": "shop", "uid": "u-1", "labels": {"app": "api", **(labels or {})}}
    return {"metadata": {**metadata, "annotations": annotations or {}}, "spec": {"template": pod}}


def replicaset_body(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The Deployment's ReplicaSet, with the annotations the Deployment controller copied onto it."""
    return {
        "metadata": {
            "name": "api-5d9c8b7f4",
            "namespace": "shop",
            "annotations": {"deployment.kubernetes.io/revision": "1", **(annotations or {})},
            "ownerReferences": [{"kind": "Deployment", "name": "api", "controller": True}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": IMAGE}]}}},
    }


def fat() -> ImageFacts:
    return facts(platform_image(*layers("fat", 3)))


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds; a bounded number of turns, never a wall-clock wait."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


@dataclass
class FakeTimer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False
    fired: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """Records the timers the controller sets; the test fires them, so no test waits for one."""

    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled and not t.fired]

    def fire(self, timer: FakeTimer) -> None:
        assert timer in self.pending()
        timer.fired = True
        timer.callback()


async def started(
    inspector: GatedInspector, kube: FakeKube, policy: dict[str, Any] | None = None, **options: Any
) -> AuditController:
    view = ClusterView()
    evaluator = Evaluator(
        inspector=inspector,  # type: ignore[arg-type]
        view=view,
        credentials=PullCredentials(kube).for_workload,  # type: ignore[arg-type]
    )
    options.setdefault("clock", lambda: NOW)
    controller = AuditController(evaluator=evaluator, view=view, kube=kube, **options)  # type: ignore[arg-type]
    await controller.start()
    controller.observe_policy(policy or policy_body())
    return controller


async def test_a_workload_queued_again_while_it_is_evaluated_is_evaluated_once_at_a_time_and_announced_once() -> None:
    inspector, kube = GatedInspector(fat()), FakeKube()
    controller = await started(inspector, kube, workers=2)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await until(lambda: inspector.waiting == 1)
        # While the first evaluation waits on the registry, the Deployment's status is updated (a new body,
        # still without our annotations) and its ReplicaSet appears, which asks for the Deployment again.
        controller.observe_workload("Deployment", deployment_body())
        controller.observe_workload("ReplicaSet", replicaset_body())
        for _ in range(50):  # a second worker is free: give it every chance to take the Deployment
            await asyncio.sleep(0)
        assert inspector.waiting == 1, "one workload is never evaluated by two workers at once"
        inspector.gate.set()
        await controller._queue.join()
    finally:
        await controller.stop()
    assert len(kube.events) == 1, kube.events
    assert len(kube.patches) == 1
    assert kube.patches[0]["labels"] == {STATUS_LABEL: "noncompliant"}
    # The request made meanwhile was not dropped: it ran after the first pass and found nothing to change.
    assert inspector.calls == 2


async def test_a_controller_killed_between_the_event_and_the_annotation_posts_the_same_event_again() -> None:
    """The Event goes first under a name fixed by the change; the apiserver keeps one Event of a name."""
    first_kube = FakeKube()
    inspector = GatedInspector(fat())
    inspector.gate.set()
    first = await started(inspector, first_kube)
    try:
        first.observe_workload("Deployment", deployment_body())
        await first._queue.join()
    finally:
        await first.stop()
    assert first_kube.writes == ["event", "metadata"]
    # Killed before the annotation landed: the restarted controller finds the workload as it was.
    again = FakeKube()
    restarted = await started(inspector, again)
    try:
        restarted.observe_workload("Deployment", deployment_body())
        await restarted._queue.join()
    finally:
        await restarted.stop()
    assert again.event_names == first_kube.event_names
    assert first_kube.event_names[0] is not None


def test_an_event_name_is_the_same_for_the_same_change_and_differs_when_violations_come_back() -> None:
    once = notes.event_name("api", "u-1", None, '["A"]')
    assert notes.event_name("api", "u-1", None, '["A"]') == once
    assert notes.event_name("api", "u-1", '["B"]', '["A"]') != once  # A, then B, then A again: news each time
    assert notes.event_name("api", "u-2", None, '["A"]') != once  # a new object of the same name
    assert len(notes.event_name("x" * 253, "u-1", None, "[]")) <= 253
    assert notes.event_name("x" * 225 + "-y" * 10, "u-1", None, "[]").startswith("x" * 225 + ".slimguard-")


async def test_a_stale_body_seen_after_our_write_does_not_announce_the_same_violations_again() -> None:
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        assert len(kube.events) == 1
        # A status update made before our write reaches the watch after it: its body lacks our annotations.
        controller.observe_workload("Deployment", deployment_body())
        controller.observe_workload("ReplicaSet", replicaset_body())
        await controller._queue.join()
    finally:
        await controller.stop()
    assert len(kube.events) == 1, kube.events


async def test_violations_already_on_the_workload_when_first_seen_are_not_announced_again() -> None:
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        (written,) = kube.patches
    finally:
        await controller.stop()
    # A restarted controller finds its own label and annotations on the workload: nothing changed, nothing is said.
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body(**written))
        await controller._queue.join()
    finally:
        await controller.stop()
    assert kube.events == []
    assert kube.patches == []


async def test_the_label_and_annotations_slimguard_wrote_coming_back_from_the_watch_are_not_evaluated_again() -> None:
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        (written,) = kube.patches
        controller.observe_workload("Deployment", deployment_body(**written))  # the echo of our own PATCH
        await controller._queue.join()
    finally:
        await controller.stop()
    assert inspector.calls == 1
    assert len(kube.patches) == 1


async def test_a_fixed_workload_loses_its_findings_in_one_patch_and_violations_coming_back_are_news() -> None:
    slim = facts(platform_image(*layers("slim", 1)), seed="slim")
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        noncompliant = kube.patches[0]
        inspector.answer = slim  # rebuilt on one layer and rolled out: the new image on the annotated workload
        controller.observe_workload("Deployment", deployment_body(image=IMAGE.replace("1.0", "1.1"), **noncompliant))
        await controller._queue.join()
        inspector.answer = fat()  # and rolled back
        controller.observe_workload("Deployment", deployment_body(labels={STATUS_LABEL: "compliant"}))
        await controller._queue.join()
    finally:
        await controller.stop()
    fixed = kube.patches[1]
    assert fixed == {
        "labels": {STATUS_LABEL: "compliant"},
        "annotations": {notes.VIOLATIONS: None, notes.CHECKED_AT: None},
    }
    assert len(kube.patches) == 3
    assert len(kube.events) == 2, "the same violations again after a fix are announced again"


async def test_a_workload_in_the_annotation_only_format_is_migrated_by_one_patch_without_a_new_event() -> None:
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        findings = {k: v for k, v in kube.patches[0]["annotations"].items() if v is not None}
    finally:
        await controller.stop()
    # What an earlier version wrote for the same verdict: the status as an annotation beside the findings.
    legacy = {notes.LEGACY_STATUS: "noncompliant", **findings}
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    upgraded = await started(inspector, kube)
    try:
        upgraded.observe_workload("Deployment", deployment_body(annotations=legacy))
        await upgraded._queue.join()
        (migration,) = kube.patches
        upgraded.observe_workload(
            "Deployment", deployment_body(labels={STATUS_LABEL: "noncompliant"}, annotations=findings)
        )
        upgraded.enqueue(KEY)  # a re-audit
        await upgraded._queue.join()
    finally:
        await upgraded.stop()
    assert migration == {"labels": {STATUS_LABEL: "noncompliant"}, "annotations": {notes.LEGACY_STATUS: None}}
    assert kube.events == []
    assert len(kube.patches) == 1, "migrated once"


async def test_a_replicaset_loses_the_copies_of_findings_its_deployment_no_longer_carries() -> None:
    """The Deployment controller copies annotations onto a ReplicaSet and never removes one it copied."""
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        (noncompliant,) = kube.patches
        findings = {k: v for k, v in noncompliant["annotations"].items() if v is not None}
        controller.observe_workload("ReplicaSet", replicaset_body(findings))  # copied: its Deployment says the same
        await controller._queue.join()
        assert kube.patched == [("Deployment", "api")], "a copy of what the Deployment says is left alone"

        inspector.answer = facts(platform_image(*layers("slim", 1)), seed="slim")
        controller.observe_workload("Deployment", deployment_body(image=IMAGE.replace("1.0", "1.1"), **noncompliant))
        await controller._queue.join()
    finally:
        await controller.stop()
    assert kube.patched == [("Deployment", "api"), ("Deployment", "api"), ("ReplicaSet", "api-5d9c8b7f4")]
    assert kube.patches[-1] == {"labels": {}, "annotations": {notes.VIOLATIONS: None, notes.CHECKED_AT: None}}


async def test_replicasets_lose_the_copies_of_the_annotation_only_format_once_their_deployment_is_migrated() -> None:
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await started(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        findings = {k: v for k, v in kube.patches[0]["annotations"].items() if v is not None}
    finally:
        await controller.stop()
    legacy = {notes.LEGACY_STATUS: "noncompliant", **findings}
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    upgraded = await started(inspector, kube)
    try:
        # The ReplicaSets are listed before their Deployment: nothing is known yet about what it will carry.
        upgraded.observe_workload("ReplicaSet", replicaset_body(legacy))
        upgraded.observe_workload("Deployment", deployment_body(annotations=legacy))
        await upgraded._queue.join()
        upgraded.observe_workload("ReplicaSet", replicaset_body(findings))  # the echo of the cleanup
        await upgraded._queue.join()
    finally:
        await upgraded.stop()
    assert kube.patched == [("Deployment", "api"), ("ReplicaSet", "api-5d9c8b7f4")]
    assert kube.patches[-1] == {"labels": {}, "annotations": {notes.LEGACY_STATUS: None}}
    assert kube.events == []


UNREACHABLE = InspectionError("registry registry.example.com is unreachable (connection refused)", reason="Unreachable")


async def test_an_error_is_retried_with_backoff_once_the_failure_cache_expires_and_the_backoff_resets_after() -> None:
    inspector, kube, scheduler = GatedInspector(UNREACHABLE), FakeKube(), FakeScheduler()
    inspector.gate.set()
    controller = await started(inspector, kube, scheduler=scheduler)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        assert controller.verdicts[KEY].status.value == "error"
        delays = []
        for _ in range(6):
            (retry,) = scheduler.pending()
            delays.append(retry.delay)
            scheduler.fire(retry)
            await controller._queue.join()
        # Never before the inspector forgets the failure (it would only answer from that cache), then doubling,
        # capped so that a registry still down is asked a few times an hour.
        assert RegistrySettings().failure_ttl_seconds < delays[0]
        assert delays == [20.0, 40.0, 80.0, 160.0, 240.0, 240.0]
        assert inspector.calls == 7

        inspector.answer = fat()  # the registry is back
        (retry,) = scheduler.pending()
        scheduler.fire(retry)
        await controller._queue.join()
        assert controller.verdicts[KEY].status.value == "noncompliant"
        assert scheduler.pending() == []

        inspector.answer = UNREACHABLE  # down again: the backoff starts over
        controller.enqueue(KEY)
        await controller._queue.join()
        assert [t.delay for t in scheduler.pending()] == [20.0]
    finally:
        await controller.stop()
    assert [t for t in scheduler.timers if not t.fired and not t.cancelled] == []


async def test_an_evaluation_while_a_retry_is_due_does_not_push_it_back() -> None:
    inspector, kube, scheduler = GatedInspector(UNREACHABLE), FakeKube(), FakeScheduler()
    inspector.gate.set()
    controller = await started(inspector, kube, scheduler=scheduler)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        (first,) = scheduler.pending()
        controller.enqueue(KEY)  # e.g. its ReplicaSet appeared
        await controller._queue.join()
        assert scheduler.pending() == [first]
    finally:
        await controller.stop()


async def test_the_retry_and_the_exemption_timers_are_kept_apart_and_both_are_cancelled_on_deletion() -> None:
    inspector, kube, scheduler = GatedInspector(UNREACHABLE), FakeKube(), FakeScheduler()
    inspector.gate.set()
    exemption = {
        "workloads": [{"namespace": "shop", "name": "api"}],
        "reason": "moving to distroless by Q3",
        "expires": "2026-11-27T13:00:00Z",
    }
    controller = await started(inspector, kube, policy_body(exemptions=[exemption]), scheduler=scheduler)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        assert sorted(t.delay for t in scheduler.pending()) == [20.0, 3600.5]
        retry = next(t for t in scheduler.pending() if t.delay == 20.0)
        scheduler.fire(retry)
        await controller._queue.join()
        # The pass re-armed the exemption timer and set the next retry; neither cancelled the other.
        assert sorted(t.delay for t in scheduler.pending()) == [40.0, 3600.5]
        controller.observe_workload("Deployment", deployment_body(), deleted=True)
        assert scheduler.pending() == []
    finally:
        await controller.stop()


async def test_policy_status_recomputes_take_a_bounded_share_of_the_loop_however_many_verdicts() -> None:
    # Each recompute reads every verdict: once a second is fine for 200 workloads, not for 10,000.
    spent = iter([10.0, 10.4])  # the CPU clock before and after the recompute: it took 0.4 s
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    # A long debounce keeps the background writer out of the way: this test calls the recompute itself.
    controller = await started(inspector, kube, cpu_clock=lambda: next(spent), status_interval=3600)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        assert await controller.flush_statuses() == pytest.approx(0.4)
    finally:
        await controller.stop()
    controller.status_interval = 1.0
    assert controller.status_delay(0.0) == 1.0, "cheap: the plain debounce"
    assert controller.status_delay(0.4) == pytest.approx(7.6), "0.4 s of CPU is 5 % of 8 s"


UNTRUSTED = InspectionError(
    "registry registry.example.com presents a certificate slimguard does not trust (certificate verify failed: "
    "unable to get local issuer certificate); give slimguard the CA that signed it with --ca-file",
    reason="RegistryUntrusted",
)


async def audited(controller: AuditController) -> None:
    """Every workload evaluated again (a re-audit), then the statuses written."""
    controller.enqueue_all()
    await controller._queue.join()
    await controller.flush_statuses()


async def test_a_policy_enforcing_nothing_gets_one_warning_event_when_it_turns_and_none_on_later_audits() -> None:
    inspector, kube = GatedInspector(UNTRUSTED), FakeKube()
    inspector.gate.set()
    body = policy_body()
    body["metadata"]["uid"] = "policy-uid"
    minutes = iter(range(1000))
    clock = {"clock": lambda: NOW + timedelta(minutes=next(minutes))}
    controller = await started(inspector, kube, body, scheduler=FakeScheduler(), status_interval=3600, **clock)
    try:
        controller.observe_workload("Deployment", deployment_body())
        for _ in range(3):
            await audited(controller)
        first = [fields for fields in kube.event_fields if fields["reason"] == "NothingEnforced"]
        assert len(first) == 1, kube.event_fields
        (event,) = first
        assert (event["kind"], event["namespace"], event["name"], event["uid"]) == (
            "ImagePolicy", None, "slim", "policy-uid"
        )  # fmt: skip
        assert event["api_version"] == "slimguard.dev/v1alpha1"
        assert event["message"].startswith("nothing from registry registry.example.com is checked: 1 of 1 images")
        assert "RegistryUntrusted" in event["message"]
        assert kube.writes.index("event") < kube.writes.index("status"), "the Event first, named by the transition"
        written = kube.statuses[-1][1]
        # The controller's health probe says it too (in the body of kopf's liveness endpoint).
        assert enforcement_summary(controller).startswith(
            "degraded: 1 of 1 images in use decided by onUnknown, not by their facts: registry registry.example.com"
        )

        # The registry's CA is mounted: the rules decide again. Then it fails once more: that is news again.
        inspector.answer = fat()
        await audited(controller)
        enforcing = next(c for c in kube.statuses[-1][1]["conditions"] if c["type"] == "Enforcing")
        assert (enforcing["status"], enforcing["reason"]) == ("True", "FactsRead")
        assert enforcement_summary(controller) == "ok: all 1 images in use decided by their facts"
        inspector.answer = UNTRUSTED
        await audited(controller)
    finally:
        await controller.stop()
    names = [fields["event_name"] for fields in kube.event_fields if fields["reason"] == "NothingEnforced"]
    assert len(names) == 2
    assert names[0] != names[1], "a second transition is a second Event, not the first one again"

    # A restarted controller sees the status the cluster holds (the transition written): it says nothing again.
    again = FakeKube()
    restarted = await started(
        inspector, again, {**body, "status": written}, scheduler=FakeScheduler(), status_interval=3600, **clock
    )
    try:
        restarted.observe_workload("Deployment", deployment_body())
        await audited(restarted)
    finally:
        await restarted.stop()
    assert [fields for fields in again.event_fields if fields["reason"] == "NothingEnforced"] == []
    enforcing = next(c for c in again.statuses[-1][1]["conditions"] if c["type"] == "Enforcing")
    was = next(c for c in written["conditions"] if c["type"] == "Enforcing")
    assert enforcing["lastTransitionTime"] == was["lastTransitionTime"]


async def test_verdicts_that_waited_for_the_vulnerability_reports_are_made_again_once_they_are_listed() -> None:
    """A workload evaluated while the reports were being listed has its vulnerability rule undecided; once the LIST
    is in it is evaluated again, even when no report of its digest arrived to ask for it (none exists). One whose
    policies read no report is not."""
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    scans = policy_body(rules={"vulnerabilities": {"maxCritical": 0, "onMissingReport": "Deny"}})
    controller = await started(inspector, kube, policy=scans, scheduler=FakeScheduler())
    try:
        controller.observe_policy(policy_body("sizes", {"maxLayers": 100}, match={"namespaces": ["team"]}))
        controller.view.reports_pending = True
        controller.observe_workload("Deployment", deployment_body())
        controller.observe_workload("Deployment", {**deployment_body(), "metadata": TEAM_METADATA})
        await controller._queue.join()
        assert [f.reason for f in controller.verdicts[KEY].errors] == ["ReportsPending"]
        assert controller.verdicts[WorkloadKey("Deployment", "team", "web")].status.value == "compliant"
        calls = inspector.calls

        controller.view.reports_pending = False
        controller.reports_listed()
        await controller._queue.join()
        assert [f.rule for f in controller.verdicts[KEY].violations] == ["vulnerabilities.onMissingReport"]
        assert inspector.calls == calls + 1, "only the verdict that waited is made again"
        controller.reports_listed()
        await controller._queue.join()
        assert inspector.calls == calls + 1, "once"
    finally:
        await controller.stop()


TEAM_METADATA = {"name": "web", "namespace": "team", "uid": "u-2", "labels": {"app": "web"}, "annotations": {}}
