"""ImagePolicy status: counts, a Ready condition and the worst offenders, from the current verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slimguard.core.verdict import Status, Verdict

MAX_OFFENDERS = 10


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def policy_status(
    name: str,
    generation: int,
    error: str | None,
    verdicts: Sequence[Verdict],
    *,
    last_audit: datetime | None,
    previous: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
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
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "Evaluating" if ready else "InvalidPolicy",
        "message": "policy is loaded and applied" if ready else error,
        "observedGeneration": generation,
    }
    old = next((c for c in (previous or {}).get("conditions", []) if c.get("type") == "Ready"), None)
    same = old is not None and old.get("status") == condition["status"]
    condition["lastTransitionTime"] = old["lastTransitionTime"] if same and old else _timestamp(now)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [condition],
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
