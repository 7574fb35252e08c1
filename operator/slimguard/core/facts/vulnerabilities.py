"""Scan results from Trivy Operator's VulnerabilityReports, and which report speaks for a running container."""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterable, Iterator, Mapping
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
            namespace=_shared(labels.get(NAMESPACE_LABEL) or metadata.get("namespace")),
            name=str(metadata.get("name") or ""),
            resource_kind=_shared(labels.get(KIND_LABEL)),
            # A name that is no valid label value (over 63 characters: a 59-character Deployment's ReplicaSet)
            # is written by Trivy Operator to an annotation of the same key, with only its hash as a label.
            resource_name=str(labels.get(NAME_LABEL) or annotations.get(NAME_LABEL) or ""),
            container=_shared(labels.get(CONTAINER_LABEL)),
            repository=_shared(artifact.get("repository")),
            tag=_shared(artifact.get("tag")) or None,
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


def _shared(value: Any) -> str:
    """One copy of a string thousands of reports repeat (a namespace, a kind, a container, a repository)."""
    return sys.intern(str(value or ""))


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

ReportKey = tuple[str, str]
"""Where a report lives: (namespace, name) of the VulnerabilityReport object."""


def severity_rank(report: VulnerabilityReport, *, ignore_unfixed: bool) -> tuple[int, int, int, int]:
    """How bad a report is: most criticals first, then highs, mediums, lows (counted as the policy counts)."""
    counts = report.counts(ignore_unfixed=ignore_unfixed)
    return (counts.critical, counts.high, counts.medium, counts.low)


def is_fresh(report: VulnerabilityReport, fresh_since: datetime | None) -> bool:
    """Within the age limit; without a limit every report is. An undated report is too old for any limit."""
    return fresh_since is None or (report.updated is not None and report.updated >= fresh_since)


class DigestReports:
    """Every report filed for one image digest, whatever workload or namespace Trivy filed it under.

    Kept worst first for both ways of counting (all findings, or fixable ones only), so the worst fresh report
    is usually the first one looked at: a sidecar image running in 5,000 workloads has 5,000 reports, and a
    decision must not read them all.
    """

    __slots__ = ("_order", "_reports")

    def __init__(self) -> None:
        self._reports: dict[ReportKey, VulnerabilityReport] = {}
        self._order: dict[bool, list[tuple[tuple[int, ...], float, ReportKey]]] = {False: [], True: []}

    @staticmethod
    def _entry(
        key: ReportKey, report: VulnerabilityReport, ignore_unfixed: bool
    ) -> tuple[tuple[int, ...], float, ReportKey]:
        worst = tuple(-n for n in severity_rank(report, ignore_unfixed=ignore_unfixed))
        newest = -report.updated.timestamp() if report.updated is not None else float("inf")
        return (worst, newest, key)

    def add(self, key: ReportKey, report: VulnerabilityReport) -> None:
        """Add a report, or replace the one of that key (Trivy rewrites a report in place)."""
        self.discard(key)
        self._reports[key] = report
        for ignore_unfixed, order in self._order.items():
            bisect.insort(order, self._entry(key, report, ignore_unfixed))

    def discard(self, key: ReportKey) -> None:
        report = self._reports.pop(key, None)
        if report is None:
            return
        for ignore_unfixed, order in self._order.items():
            entry = self._entry(key, report, ignore_unfixed)
            del order[bisect.bisect_left(order, entry)]

    def __len__(self) -> int:
        return len(self._reports)

    def __iter__(self) -> Iterator[VulnerabilityReport]:
        return iter(list(self._reports.values()))

    def worst(self, *, ignore_unfixed: bool, fresh_since: datetime | None) -> VulnerabilityReport | None:
        """The worst report within the age limit, or None when none is."""
        for _, _, key in self._order[ignore_unfixed]:
            report = self._reports[key]
            if is_fresh(report, fresh_since):
                return report
        return None

    def newest(self) -> VulnerabilityReport | None:
        """The most recently updated report (read when none is fresh, to say why: not per decision)."""
        return max(self._reports.values(), key=lambda r: r.updated or _EPOCH, default=None)


def worst_of(groups: Iterable[DigestReports]) -> VulnerabilityReport | None:
    """The worst report, all findings counted and of any age, among those filed for an image's digests.

    What the fleet metrics count per image in use: no policy's ``ignoreUnfixed`` or ``maxReportAge`` applies.
    """
    found = [worst for group in groups if (worst := group.worst(ignore_unfixed=False, fresh_since=None))]
    return max(found, key=lambda r: (severity_rank(r, ignore_unfixed=False), r.updated or _EPOCH), default=None)


@dataclass(frozen=True, slots=True)
class ReportLookup:
    """The outcome of looking for a container's report: the one to use, or why there is none."""

    report: VulnerabilityReport | None
    stale: VulnerabilityReport | None = None
    """The workload's own newest report, when it is for another digest than the one running."""
    too_old: VulnerabilityReport | None = None
    """The newest report for the running digest, when no report for it is within the age limit."""


def select_report(
    reports: Iterable[VulnerabilityReport],
    *,
    namespace: str,
    resources: Iterable[tuple[str, str]],
    container: str,
    digests: frozenset[str],
    shared: Iterable[DigestReports] = (),
    ignore_unfixed: bool = False,
    fresh_since: datetime | None = None,
) -> ReportLookup:
    """The report that speaks for this container running one of ``digests``.

    ``reports`` holds the workload's own (filed under these resources; a Deployment's under its ReplicaSet),
    ``shared`` every report filed for the running digests, under any workload. Any fresh report for the
    digest speaks for it: a second Deployment, or a bare Pod, on an image known to be vulnerable is as
    vulnerable as the first. Where fresh reports disagree (scanned on different days), the worst counts; on a
    tie the workload's own report is the one named.

    A report of the workload's own whose artifact digest differs from the digest running now describes another
    image: it is stale and never used. One without a digest cannot be proven stale and is used.
    """
    wanted = set(resources)
    mine = [
        report
        for report in reports
        if report.namespace == namespace
        and (report.resource_kind, report.resource_name) in wanted
        and report.container == container
    ]
    mine.sort(key=lambda r: r.updated or _EPOCH, reverse=True)
    current = [r for r in mine if not digests or r.digest is None or r.digest in digests]
    stale = next((r for r in mine if r not in current), None)
    own = current[0] if current else None
    groups = list(shared)
    candidates = [own] if own is not None and is_fresh(own, fresh_since) else []
    for group in groups:
        worst = group.worst(ignore_unfixed=ignore_unfixed, fresh_since=fresh_since)
        if worst is not None:
            candidates.append(worst)
    if candidates:
        chosen = max(
            candidates,
            key=lambda r: (severity_rank(r, ignore_unfixed=ignore_unfixed), r is own, r.updated or _EPOCH),
        )
        return ReportLookup(report=chosen, stale=stale)
    dated = [r for r in (own, *(group.newest() for group in groups)) if r is not None]
    too_old = max(dated, key=lambda r: r.updated or _EPOCH, default=None)
    return ReportLookup(report=None, stale=stale, too_old=too_old)
