"""From an AdmissionReview to an answer: evaluate the object as the controller would, then let modes decide.

Enforce violations deny (every one listed, each with its fix); Warn violations become admission warnings,
which kubectl prints; Audit admits silently and leaves the record to the controller. An image whose facts
cannot be had in time is decided by the policy's ``onUnknown`` (Allow by default, with a warning).

Objects made by a workload controller (a Deployment's ReplicaSet, a ReplicaSet's Pods, a CronJob's Jobs)
are checked by the same rules, so a policy tightened after the owner was admitted still holds; their
warnings are not repeated, since nobody reads warnings sent to a controller and the owner already had them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slimguard import metrics
from slimguard.admission.costs import CostMeter, DecisionCosts
from slimguard.core.evaluation.enforcement import RecentDecisions, decisions
from slimguard.core.evaluation.outcome import ALLOWED, outcome_of
from slimguard.core.evaluation.plan import plan
from slimguard.core.model.kinds import WORKLOAD_KINDS
from slimguard.core.model.placement import PlatformPin, platform_pin
from slimguard.core.model.workload import Workload, normalise, pod_spec_of
from slimguard.core.text import shorten
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.view import ClusterView

log = logging.getLogger(__name__)

MAX_WARNING_LENGTH = 256
MAX_WARNINGS = 20


@dataclass
class Answer:
    allowed: bool
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    code: int = 200
    decision: str = "allowed"
    """For the metrics: allowed, warned, unknown (admitted by onUnknown without facts) or denied."""
    stage: str = "evaluated"
    """Where the decision ended: ignored (not a kind or operation slimguard reviews), unchanged (an update that
    changed no image nor platform pin), unsynced (policies not loaded yet), unmatched (no policy applies),
    evaluated, or failed."""
    kind: str = ""
    """The reviewed object's kind as the metrics label it (``metrics.kind_label``); set by ``Reviewer.review``."""
    started_ns: int = 0
    took_ns: int = 0
    """When the review began (the reviewer's clock, CLOCK_MONOTONIC) and the decision time the
    `slimguard_admission_decision_seconds` histogram observed for it; set by ``Reviewer.review``."""
    costs: DecisionCosts | None = None
    """Where ``took_ns`` went (CPU, garbage collection), measured only under ``--decision-times``."""

    def response(self, uid: str) -> dict[str, Any]:
        body: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            body["status"] = {"code": self.code, "reason": "Forbidden", "message": self.message or ""}
        if self.warnings:
            body["warnings"] = self.warnings[:MAX_WARNINGS]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": body}


def _judged(kind: str, body: Mapping[str, Any] | None) -> tuple[list[tuple[str, str]], PlatformPin]:
    """What an update must change to be judged again: an image, or the platforms its pods are pinned to."""
    spec = pod_spec_of(kind, body or {})
    images = [
        (group, str(container.get("image")))
        for group in ("initContainers", "containers", "ephemeralContainers")
        for container in spec.get(group) or ()
    ]
    return images, platform_pin(spec)


def _warning(text: str) -> str:
    # Cut in the middle: the end says why, and what happened (e.g. "admitted unchecked").
    return shorten(f"slimguard: {text}", MAX_WARNING_LENGTH)


def _subject(workload: Workload) -> str:
    return f"{workload.kind} {workload.namespace}/{workload.name}".rstrip("/")


class Reviewer:
    def __init__(
        self,
        *,
        evaluator: Evaluator,
        view: ClusterView,
        deadline: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        timer: Callable[[], int] = time.monotonic_ns,
        meter: CostMeter | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.view = view
        self.deadline = deadline
        self.clock = clock
        self.monotonic = monotonic
        self.timer = timer
        """The decision's clock in ns: one reading each side feeds both the histogram and ``Answer.took_ns``."""
        self.meter = meter
        """Set under ``--decision-times``: each answer says how much of its time was CPU and garbage collection."""
        self.recent = RecentDecisions()
        """The images reviewed in the last minutes, read from their facts or decided by default: /readyz says."""

    async def review(self, request: Mapping[str, Any]) -> Answer:
        costs_before = self.meter.reading() if self.meter is not None else None
        started = self.timer()
        # Outside the try below, so it must not raise: {"kind": "Pod"} (a string) was a 500 (tests/unit/fuzz).
        kind_field = request.get("kind")
        kind = str(kind_field.get("kind") or "") if isinstance(kind_field, Mapping) else ""
        try:
            answer = await self._decide(kind, request)
        except Exception:  # never brick the cluster over a bug of ours: admit, say so, and count it
            log.exception("admission review of %s failed", kind)
            metrics.ADMISSION_FAILURES.inc()
            answer = Answer(
                True,
                warnings=[_warning("could not evaluate this object; admitted (see its logs)")],
                decision="failed",
                stage="failed",
            )
        answer.kind = metrics.kind_label(kind)
        metrics.ADMISSION_REVIEWS.labels(kind=answer.kind, decision=answer.decision).inc()
        answer.started_ns, answer.took_ns = started, self.timer() - started
        if costs_before is not None and self.meter is not None:
            answer.costs = self.meter.since(costs_before)
        metrics.ADMISSION_SECONDS.observe(answer.took_ns / 1e9)
        return answer

    async def _decide(self, kind: str, request: Mapping[str, Any]) -> Answer:
        operation = request.get("operation")
        body = request.get("object")
        if kind not in WORKLOAD_KINDS or operation not in ("CREATE", "UPDATE") or not isinstance(body, dict):
            return Answer(True, stage="ignored")
        if operation == "UPDATE" and _judged(kind, body) == _judged(kind, request.get("oldObject")):
            return Answer(True, stage="unchanged")  # no image nor platform pin changed: nothing of ours to decide
        metadata = dict(body.get("metadata") or {})
        metadata.setdefault("namespace", request.get("namespace") or "")
        metadata["name"] = metadata.get("name") or request.get("name") or metadata.get("generateName") or ""
        workload = normalise(kind, {**body, "metadata": metadata})
        if not self.view.policies_synced:
            unchecked = _warning("policies are not loaded yet; admitted unchecked")
            return Answer(True, warnings=[unchecked], stage="unsynced")
        chosen = plan(
            self.view.active_policies,
            workload,
            self.view.namespace_labels(workload.namespace),
            node_platforms=self.view.node_platforms,
        )
        policies = chosen.policies
        if not policies:
            return Answer(True, stage="unmatched")
        verdict = await self.evaluator.verdict(chosen, now=self.clock(), deadline=self.deadline)
        self.recent.record(decisions(verdict), now=self.monotonic())
        decided = outcome_of(
            verdict,
            on_unknown={policy.name: policy.spec.on_unknown for policy in policies},
            # Nobody reads warnings sent to a workload controller, and its owner already had them.
            warn=not workload.controlled,
        )
        for finding in decided.unknown:
            metrics.ADMISSION_UNKNOWN.labels(policy=finding.policy).inc()
        kind_label = metrics.kind_label(kind)
        for policy in policies:
            metrics.ADMISSION_POLICY_DECISIONS.labels(
                policy=policy.name,
                mode=policy.spec.mode.value,
                kind=kind_label,
                decision=decided.policy_decisions.get(policy.name, ALLOWED),
            ).inc()
        warnings = [_warning(text) for text in decided.warnings]
        if not decided.allowed:
            message = decided.denial_message(_subject(workload))
            return Answer(False, message=message, warnings=warnings, code=403, decision=decided.decision)
        return Answer(True, warnings=warnings, decision=decided.decision)
