"""ImagePolicy status: counts, conditions and the worst offenders, from the current verdicts.

Conditions: ``Ready`` for the observed generation (False with reason InvalidPolicy when it cannot be applied,
the message saying which generation applies instead), ``Enforcing`` (whether its rules decide, or onUnknown
does: False with reason FactsUnavailable when nothing could be read from some registry,
``core.evaluation.enforcement``), ``BaseDetection`` when the policy has base image rules (False when some of
its globs can only match by annotation), and ``Platforms``: which platforms the rules measure and why (False when
the policy lists none and no Ready node is known, so linux/amd64 is judged by default); ``judgedPlatforms`` lists
those the last verdicts judged.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from slimguard.core.evaluation import enforcement
from slimguard.core.evaluation.plan import needs_of
from slimguard.core.evaluation.verdict import Status, Verdict
from slimguard.core.model.placement import ANYWHERE, judged_platforms
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import Decision, ImagePolicy, Mode

MAX_OFFENDERS = 10
MAX_JUDGED_PLATFORMS = 32  # the CRD's maxItems
ENFORCING = "Enforcing"
NO_FACTS_NEEDED = "NoFactsNeeded"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    kind: str,
    *,
    true: bool | None,
    reason: str,
    message: str,
    generation: int,
    previous: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": "Unknown" if true is None else "True" if true else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }
    old = next((c for c in (previous or {}).get("conditions", []) if c.get("type") == kind), None)
    same = old is not None and old.get("status") == condition["status"]
    kept = old.get("lastTransitionTime") if same and old else None
    condition["lastTransitionTime"] = kept or _timestamp(now)
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
    node_platforms: Collection[Platform] = (),
) -> dict[str, Any]:
    """The status for ``generation``; ``policy`` is what applies (that generation, or the last valid one);
    ``node_platforms`` those the cluster's Ready nodes run, as the controller's watch knows them."""
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
    judged: list[str] = []
    if policy is not None:
        said = policy  # the loaded policy, narrowed for the closure: each condition below is at its generation

        def add(kind: str, true: bool | None, reason: str, message: str) -> None:
            conditions.append(
                _condition(
                    kind,
                    true=true,
                    reason=reason,
                    message=message,
                    generation=said.generation,
                    previous=previous,
                    now=now,
                )
            )

        add(ENFORCING, *enforcing(policy, verdicts))
        if policy.spec.rules.base_image_globs:
            warning = policy.base_detection_warning
            add(
                "BaseDetection",
                warning is None,
                "LayersAndAnnotations" if warning is None else "AnnotationOnly",
                warning
                or "every base image glob matches a concrete reference slimguard fetches, so base images are "
                "found by shared layers as well as by the OCI base-image annotations",
            )
        if needs_of(policy.spec.rules) is not None:  # rules that read no image judge no platform
            judged, judgement = platforms(policy, verdicts, frozenset(node_platforms))
            add("Platforms", *judgement)
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
    if judged:
        status["judgedPlatforms"] = judged
    if last_audit is not None:
        status["lastAuditTime"] = _timestamp(last_audit)
    return status


def platforms(
    policy: ImagePolicy, verdicts: Sequence[Verdict], nodes: frozenset[Platform]
) -> tuple[list[str], tuple[bool, str, str]]:
    """The platforms the policy's rules measured in these verdicts, and the Platforms condition: its status,
    reason and message."""
    listed = policy.spec.rules.platforms
    if listed:
        return list(listed[:MAX_JUDGED_PLATFORMS]), (True, "PolicyPlatforms", "judged on the platforms it lists")
    # Verdicts share a few JudgedPlatforms objects (core.model.placement caches them): each is read once.
    seen = {id(verdict.platforms): verdict.platforms for verdict in verdicts}
    found = {str(p) for judged in seen.values() for p in judged.platforms}
    if not found:  # nothing evaluated yet: what the next decision would judge
        found = {str(p) for p in judged_platforms(ANYWHERE, nodes).platforms}
    judged = sorted(found)[:MAX_JUDGED_PLATFORMS]
    if not nodes:
        return judged, (
            False,
            "NoReadyNodes",
            "it lists no platforms and no Ready node is known, so linux/amd64 is judged by default (a workload "
            "pinned by nodeSelector or required node affinity on the platforms it names); list spec.rules.platforms "
            "to judge others",
        )
    running = ", ".join(sorted(str(p) for p in nodes))
    return judged, (
        True,
        "NodePlatforms",
        f"it lists no platforms: judged on those the cluster's Ready nodes run ({running}); a workload pinned by "
        "nodeSelector or required node affinity on those its pin admits",
    )


def _by_default(policy: ImagePolicy) -> str:
    """What onUnknown does with an image this policy cannot read."""
    if policy.spec.mode is Mode.AUDIT:
        return "recorded as errors"
    if policy.spec.on_unknown is Decision.DENY and policy.spec.mode is Mode.ENFORCE:
        return "denied (onUnknown: Deny)"
    return "admitted unchecked (onUnknown: Allow)"


def enforcing(policy: ImagePolicy, verdicts: Sequence[Verdict]) -> tuple[bool | None, str, str]:
    """The Enforcing condition's status (None: Unknown), reason and message: whether the policy's rules decide the
    images it checks, or its onUnknown does because their registries could not be read."""
    if needs_of(policy.spec.rules) is None:
        return True, NO_FACTS_NEEDED, "the rules read nothing from registries: they decide every image"
    counted = enforcement.tally(d for verdict in verdicts for d in enforcement.decisions(verdict, policy.name))
    reason = counted.reason
    if reason == enforcement.NO_IMAGES_CHECKED:
        return None, reason, "no image checked yet: no workload this policy applies to has been evaluated"
    if reason == enforcement.FACTS_READ:
        return True, reason, f"the rules decide: {counted.describe()}"
    if reason == enforcement.SOME_FACTS_UNAVAILABLE:
        return True, reason, f"the rules decide, but not for every image: {counted.describe()}; {_by_default(policy)}"
    unenforced = [tally.registry for tally in counted.unenforced]
    where = f"registr{'y' if len(unenforced) == 1 else 'ies'} {', '.join(unenforced)}"
    done = "checked" if policy.spec.mode is Mode.AUDIT else "enforced"
    return False, reason, f"nothing from {where} is {done}: {counted.describe()}; {_by_default(policy)}"
