"""ImagePolicy status: counts, conditions and the worst offenders, from the current verdicts.

Conditions: ``Ready`` for the observed generation (False with reason InvalidPolicy when it cannot be applied,
the message saying which generation applies instead), and ``BaseDetection`` when the policy has base image
rules (False when some of its globs can only match by annotation).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slimguard.core.policy import ImagePolicy
from slimguard.core.verdict import Status, Verdict

MAX_OFFENDERS = 10


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    kind: str,
    *,
    true: bool,
    reason: str,
    message: str,
    generation: int,
    previous: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": "True" if true else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }
    old = next((c for c in (previous or {}).get("conditions", []) if c.get("type") == kind), None)
    same = old is not None and old.get("status") == condition["status"]
    condition["lastTransitionTime"] = old["lastTransitionTime"] if same and old else _timestamp(now)
    return condition


def policy_status(
    name: str,
    generation: int,
    error: str | None,
    verdicts: Sequence[Verdict],
    *,
    last_audit: datetime | None,
    previous: dict[str, Any] | None,
    now: datetime,
    policy: ImagePolicy | None = None,
) -> dict[str, Any]:
    """The status for ``generation``; ``policy`` is what applies (that generation, or the last valid one)."""
    counts = {status: 0 for status in Status}
    offenders: list[tuple[int, str, dict[str, Any]]] = []
    for verdict in verdicts:
        mine = verdict.for_policy(name)
        counts[verdict.status_for(name)] += 1
        if mine:
            key = verdict.workload
            offenders.append(
                (
                    len(mine),
                    str(key),
                    {
                        "namespace": key.namespace,
                        "kind": key.kind,
                        "name": key.name,
                        "violations": len(mine),
                        "message": mine[0].message[:512],
                    },
                )
            )
    offenders.sort(key=lambda item: (-item[0], item[1]))
    ready = error is None
    conditions = [
        _condition(
            "Ready",
            true=ready,
            reason="Evaluating" if ready else "InvalidPolicy",
            message="policy is loaded and applied" if error is None else error,
            generation=generation,
            previous=previous,
            now=now,
        )
    ]
    if policy is not None and policy.spec.rules.base_image_globs:
        warning = policy.base_detection_warning
        conditions.append(
            _condition(
                "BaseDetection",
                true=warning is None,
                reason="LayersAndAnnotations" if warning is None else "AnnotationOnly",
                message=warning
                or "every base image glob matches a concrete reference slimguard fetches, so base images are "
                "found by shared layers as well as by the OCI base-image annotations",
                generation=policy.generation,
                previous=previous,
                now=now,
            )
        )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions,
        "matchedWorkloads": len(verdicts),
        "evaluated": len(verdicts) - counts[Status.PENDING],
        "compliant": counts[Status.COMPLIANT],
        "noncompliant": counts[Status.NONCOMPLIANT],
        "errors": counts[Status.ERROR],
        "worstOffenders": [item[2] for item in offenders[:MAX_OFFENDERS]],
    }
    if last_audit is not None:
        status["lastAuditTime"] = _timestamp(last_audit)
    return status
