"""A verdict as PolicyReport results: what Kyverno's users already watch (Policy Reporter, kubectl get polr).

Laid out as Kyverno 1.19 lays out its own reports: one report per workload, its ``scope`` the workload, one
result per policy and rule of that policy (``source: slimguard``), and a summary of the results. The report is
owned by the workload, so Kubernetes' garbage collector removes it with the workload. The API is
``wgpolicyk8s.io/v1alpha2`` (what Kyverno 1.19 writes unless told ``--openreportsEnabled``) or
``openreports.io/v1alpha1``; Policy Reporter reads both, and the results are the same in each.

Pure: the controller's effect (controller/policy_reports.py) builds the body here and writes it only when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from slimguard.core.evaluation.rules import DECIDED_WITHOUT_FACTS, IMAGE_WIDE, set_in
from slimguard.core.evaluation.verdict import REFERENCE, Finding, FindingKind, Verdict
from slimguard.core.model.policy import ImagePolicy, Mode, Rules
from slimguard.core.text import shorten

SOURCE = "slimguard"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "slimguard"
OMITTED_ANNOTATION = "slimguard.dev/omitted-results"
"""Set when a report holds fewer results than the verdict has (``MAX_RESULTS``): how many were left out."""

MAX_RESULTS = 100
"""Results in one report at most (the worst are kept). One workload has (policies x rules) results, so this
bounds a report to about 150 KiB whatever the fleet: far below etcd's 1.5 MiB object limit."""
MAX_MESSAGE = 1024
"""Characters in one result's message at most, cut in the middle (core.text.shorten) so the fix survives."""
MAX_PROPERTY = 256
"""Characters in one property value at most."""


@dataclass(frozen=True, slots=True)
class ReportApi:
    """Where reports live: group, version, kinds and plural, as the upstream CRDs define them."""

    group: str
    version: str
    kind: str
    plural: str
    report_level_source: bool
    """openreports.io has a report-level ``source``; wgpolicyk8s.io/v1alpha2 has none (its schema refuses it)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


WGPOLICY = ReportApi("wgpolicyk8s.io", "v1alpha2", "PolicyReport", "policyreports", report_level_source=False)
OPENREPORTS = ReportApi("openreports.io", "v1alpha1", "Report", "reports", report_level_source=True)
REPORT_APIS: Mapping[str, ReportApi] = {WGPOLICY.group: WGPOLICY, OPENREPORTS.group: OPENREPORTS}


class Result(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    ERROR = "error"
    SKIP = "skip"


_WORST_FIRST = (Result.FAIL, Result.ERROR, Result.WARN, Result.SKIP, Result.PASS)
_IMAGE_WIDE = frozenset(rule.name for rule in IMAGE_WIDE)
"""Findings about the whole image (it could not be read, its reference is invalid): every rule that reads the
image is undecided by them; ``reference`` also leaves ``requireDigest`` undecided."""


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """The workload a report is about: its ``scope`` and its owner."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def as_scope(self) -> dict[str, str]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


def report_name(uid: str) -> str:
    """Named by the workload's uid like Kyverno's, prefixed so the two never share a name."""
    return f"slimguard-{uid}"


def rules_of(rules: Rules) -> tuple[str, ...]:
    """The rules a policy sets, by their CRD field names (``core.evaluation.rules``): one result each per workload."""
    return tuple(rule.name for rule in set_in(rules))


def _rule_of(finding: Finding) -> str:
    """``vulnerabilities.maxCritical`` is the ``vulnerabilities`` rule's finding."""
    return finding.rule.split(".", 1)[0]


def _violation_result(mode: Mode) -> Result:
    # As Kyverno reports an Audit policy's failures: `fail`; Warn mode is what `warn` is for.
    return Result.WARN if mode is Mode.WARN else Result.FAIL


def results_for(verdict: Verdict, policies: Sequence[ImagePolicy]) -> list[dict[str, Any]]:
    """One result per policy the verdict applied and rule that policy sets; no timestamps (see ``report``).

    - a violation: ``fail`` (Enforce, Audit) or ``warn`` (Warn); the worst mode of the policy decides;
    - else an error (the rule or the whole image could not be checked): ``error``;
    - else a violation an exemption waives: ``skip``; an image whose facts are not read yet: ``skip``;
    - else ``pass``.
    """
    applied = [p for p in sorted(policies, key=lambda p: p.name) if p.name in verdict.policies]
    results: list[dict[str, Any]] = []
    for policy in applied:
        own = verdict.for_policy(policy.name)
        waived = tuple(f for f in verdict.exempted if f.policy == policy.name)
        for rule in rules_of(policy.spec.rules):
            results.append(_result(policy, rule, own, waived, pending=verdict.pending_images))
    return results


def _result(
    policy: ImagePolicy,
    rule: str,
    findings: Sequence[Finding],
    waived: Sequence[Finding],
    *,
    pending: Sequence[str],
) -> dict[str, Any]:
    mode = policy.spec.mode
    reads_image = rule not in DECIDED_WITHOUT_FACTS
    violations = [f for f in findings if f.kind is FindingKind.VIOLATION and _rule_of(f) == rule]
    errors = [
        f
        for f in findings
        if f.kind is FindingKind.ERROR
        and (_rule_of(f) == rule or (f.rule in _IMAGE_WIDE and (reads_image or f.rule == REFERENCE)))
    ]
    exempted = [f for f in waived if _rule_of(f) == rule]
    properties: dict[str, str] = {"mode": mode.value}
    if violations:
        outcome, said = _violation_result(mode), violations
    elif errors:
        outcome, said = Result.ERROR, errors
        properties["reason"] = ",".join(dict.fromkeys(f.reason or "Unknown" for f in errors))
    elif exempted:
        outcome, said = Result.SKIP, exempted
        properties["exempted"] = "true"
    elif pending and reads_image:
        outcome, said = Result.SKIP, []
        properties["pending"] = ",".join(pending)
    else:
        outcome, said = Result.PASS, []
    if said:
        message = "; ".join(dict.fromkeys(f.message for f in said))
        if outcome is Result.SKIP:
            message = f"exempted: {message}"
        properties["containers"] = ",".join(dict.fromkeys(f.container for f in said))
        if len(said) == 1 and said[0].limit is not None and said[0].actual is not None:
            properties["limit"], properties["actual"] = said[0].limit, said[0].actual
    elif outcome is Result.SKIP:
        message = f"not checked yet: the facts of {', '.join(pending)} are being read"
    else:
        message = f"every container complies with {rule}"
    return {
        "source": SOURCE,
        "policy": policy.name,
        "rule": rule,
        "result": outcome.value,
        "message": shorten(message, MAX_MESSAGE),
        "scored": True,
        "properties": {name: shorten(value, MAX_PROPERTY) for name, value in properties.items()},
    }


def _bounded(results: Sequence[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], int]:
    """The worst ``limit`` results (fail, error, warn, skip, pass), each kind in policy and rule order."""
    ranked = sorted(results, key=lambda r: (_WORST_FIRST.index(Result(r["result"])), r["policy"], r["rule"]))
    kept = ranked[:limit]
    kept.sort(key=lambda r: (r["policy"], r["rule"]))
    return kept, len(results) - len(kept)


def _same_result(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "timestamp"} == {k: v for k, v in b.items() if k != "timestamp"}


def _timestamped(
    results: Sequence[dict[str, Any]], previous: Sequence[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Each result keeps the time it was first said as it is now; a changed result gets ``now``.

    So an unchanged verdict gives the same report to the byte, and nothing is written.
    """
    before = {(r.get("policy"), r.get("rule")): r for r in previous}
    stamped = []
    for result in results:
        old = before.get((result["policy"], result["rule"]))
        if old is not None and _same_result(old, result) and isinstance(old.get("timestamp"), Mapping):
            timestamp = dict(old["timestamp"])
        else:
            timestamp = {"seconds": int(now.timestamp()), "nanos": 0}
        stamped.append({**result, "timestamp": timestamp})
    return stamped


def summary(results: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = {outcome.value: 0 for outcome in Result}
    for result in results:
        counts[result["result"]] += 1
    return counts


def report(
    *,
    api: ReportApi,
    resource: ResourceRef,
    results: Sequence[dict[str, Any]],
    previous: Mapping[str, Any] | None,
    now: datetime,
    limit: int = MAX_RESULTS,
) -> dict[str, Any]:
    """The report's content (labels, annotations, scope, results, summary) as it should be now.

    ``previous`` is the content as last written (or read back): its unchanged results keep their
    timestamps. Compare the answer with ``previous`` by ``content_of`` to know whether to write.
    """
    kept, omitted = _bounded(results, limit)
    stamped = _timestamped(kept, (previous or {}).get("results") or (), now)
    body: dict[str, Any] = {
        "apiVersion": api.api_version,
        "kind": api.kind,
        "metadata": {
            "name": report_name(resource.uid),
            "namespace": resource.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": {OMITTED_ANNOTATION: str(omitted)} if omitted else {},
            "ownerReferences": [
                {
                    "apiVersion": resource.api_version,
                    "kind": resource.kind,
                    "name": resource.name,
                    "uid": resource.uid,
                }
            ],
        },
        "scope": resource.as_scope(),
        "results": stamped,
        "summary": summary(stamped),
    }
    if api.report_level_source:
        body["source"] = SOURCE
    return body


def content_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """What slimguard decides in a report, from one it wrote or one read back from the apiserver.

    Only our own label and annotation count: others' (a GitOps tool's) are not ours to compare or undo.
    """
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    content: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if k == MANAGED_BY_LABEL},
        "annotations": {k: v for k, v in annotations.items() if k == OMITTED_ANNOTATION},
        "owners": [
            {k: ref.get(k) for k in ("apiVersion", "kind", "name", "uid")}
            for ref in metadata.get("ownerReferences") or ()
        ],
        "scope": body.get("scope"),
        "results": [dict(r) for r in body.get("results") or ()],
        "summary": body.get("summary"),
    }
    if "source" in body:
        content["source"] = body["source"]
    return content
