"""Scan results from Trivy Operator's VulnerabilityReports, and which report speaks for a running container."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KIND_LABEL = "trivy-operator.resource.kind"
NAME_LABEL = "trivy-operator.resource.name"
NAMESPACE_LABEL = "trivy-operator.resource.namespace"
CONTAINER_LABEL = "trivy-operator.container.name"


@dataclass(frozen=True, slots=True)
class SeverityCounts:
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0


@dataclass(frozen=True, slots=True)
class VulnerabilityReport:
    namespace: str
    name: str
    resource_kind: str
    resource_name: str
    container: str
    repository: str
    tag: str | None
    digest: str | None
    updated: datetime | None
    summary: SeverityCounts
    fixable: SeverityCounts | None

    @classmethod
    def from_resource(cls, body: Mapping[str, Any]) -> VulnerabilityReport:
        metadata = body.get("metadata") or {}
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        report = body.get("report") or {}
        artifact = report.get("artifact") or {}
        summary = report.get("summary") or {}
        vulnerabilities = report.get("vulnerabilities")
        return cls(
            namespace=str(labels.get(NAMESPACE_LABEL) or metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
            resource_kind=str(labels.get(KIND_LABEL) or ""),
            # A name that is no valid label value (over 63 characters: a 59-character Deployment's ReplicaSet)
            # is written by Trivy Operator to an annotation of the same key, with only its hash as a label.
            resource_name=str(labels.get(NAME_LABEL) or annotations.get(NAME_LABEL) or ""),
            container=str(labels.get(CONTAINER_LABEL) or ""),
            repository=str(artifact.get("repository") or ""),
            tag=artifact.get("tag") or None,
            digest=artifact.get("digest") or None,
            updated=_timestamp(report.get("updateTimestamp")),
            summary=SeverityCounts(
                critical=int(summary.get("criticalCount") or 0),
                high=int(summary.get("highCount") or 0),
                medium=int(summary.get("mediumCount") or 0),
                low=int(summary.get("lowCount") or 0),
            ),
            fixable=None if vulnerabilities is None else _count_fixable(vulnerabilities),
        )

    def counts(self, *, ignore_unfixed: bool) -> SeverityCounts:
        """Findings by severity; with ``ignore_unfixed`` only those with a fixed version count."""
        if ignore_unfixed and self.fixable is not None:
            return self.fixable
        return self.summary


def _count_fixable(vulnerabilities: Iterable[Mapping[str, Any]]) -> SeverityCounts:
    counts = {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0}
    for vulnerability in vulnerabilities:
        severity = str(vulnerability.get("severity") or "").upper()
        if vulnerability.get("fixedVersion") and severity in counts:
            counts[severity] += 1
    return SeverityCounts(counts["CRITICAL"], counts["HIGH"], counts["MEDIUM"], counts["LOW"])


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ReportLookup:
    """The outcome of looking for a container's report: the one to use, or why there is none."""

    report: VulnerabilityReport | None
    stale: VulnerabilityReport | None = None


def select_report(
    reports: Iterable[VulnerabilityReport],
    *,
    namespace: str,
    resources: Iterable[tuple[str, str]],
    container: str,
    digests: frozenset[str],
) -> ReportLookup:
    """The newest report for this container of these resources (a Deployment's is its ReplicaSet's).

    A report whose artifact digest differs from the digest running now describes another image: it is
    stale and never used. A report without a digest cannot be proven stale and is used.
    """
    wanted = set(resources)
    candidates = [
        report
        for report in reports
        if report.namespace == namespace
        and (report.resource_kind, report.resource_name) in wanted
        and report.container == container
    ]
    candidates.sort(key=lambda r: r.updated or _EPOCH, reverse=True)
    current = [r for r in candidates if not digests or r.digest is None or r.digest in digests]
    stale = next((r for r in candidates if r not in current), None)
    return ReportLookup(report=current[0] if current else None, stale=stale)
