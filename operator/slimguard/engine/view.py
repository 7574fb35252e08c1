"""The cluster as watches show it: policies, namespace labels, scan reports, ReplicaSet ownership and the
platforms the Ready nodes run.

Fed by watches in both the controller and the webhook, so neither asks the apiserver per decision. Of a
VulnerabilityReport it keeps the small record evaluation reads (``VulnerabilityReport``: owner, digest, counts by
severity, scan time), never the body; and reports at all only while a policy reads them (engine.report_feed).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slimguard.core.errors import InvalidPolicy
from slimguard.core.evaluation.plan import policy_reads
from slimguard.core.facts.vulnerabilities import DigestReports, ReportKey, SeverityCounts, VulnerabilityReport, worst_of
from slimguard.core.model.placement import node_platform
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Workload, WorkloadKey
from slimguard.kube.gateway import KubeGateway

log = logging.getLogger(__name__)


@dataclass
class PolicyRecord:
    """A policy as last observed, and what of it applies.

    ``generation`` is the one last observed; ``policy`` is what applies: that generation, or, when it is
    invalid, the last valid generation this process saw (``policy.generation`` tells which). ``error`` says
    why ``generation`` is invalid and what applies instead, for the Ready condition.
    """

    name: str
    generation: int
    policy: ImagePolicy | None
    error: str | None = None


def parse_namespaces(values: Iterable[str] | None) -> frozenset[str] | None:
    """``--trusted-report-namespaces a,b --trusted-report-namespaces c`` → {a, b, c}; nothing given: None (all)."""
    if not values:
        return None
    names = frozenset(name.strip() for value in values for name in value.split(",") if name.strip())
    if not names:
        raise ValueError("--trusted-report-namespaces names no namespace")
    return names


def describe_namespaces(namespaces: frozenset[str] | None) -> str:
    return "all" if namespaces is None else ",".join(sorted(namespaces))


@dataclass(frozen=True)
class ReportChange:
    """A report that appeared, changed or went: the workload it was filed for, and the digests it named
    before and after (every workload running one of them may need a new verdict)."""

    owner: WorkloadKey
    digests: frozenset[str]


class ClusterView:
    def __init__(self, *, trusted_report_namespaces: Collection[str] | None = None) -> None:
        """``trusted_report_namespaces``: whose VulnerabilityReports speak for an image in every namespace
        (None: all). A report elsewhere still speaks for the workloads of its own namespace."""
        self.trusted_report_namespaces = (
            None if trusted_report_namespaces is None else frozenset(trusted_report_namespaces)
        )
        self.policies: dict[str, PolicyRecord] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self.reports: dict[ReportKey, VulnerabilityReport] = {}
        self.replicasets: dict[tuple[str, str], tuple[str, int]] = {}
        # Indexes, so a decision costs the same in a cluster of 50,000 ReplicaSets or reports as in one of 50.
        self._reports_by_owner: dict[tuple[str, str, str], dict[str, VulnerabilityReport]] = {}
        # ("", digest) for trusted namespaces' reports, which speak everywhere; (namespace, digest) for the others'
        self._reports_by_digest: dict[tuple[str, str], DigestReports] = {}
        self._replicasets_by_owner: dict[tuple[str, str], dict[str, int]] = {}
        self.policies_synced = False
        # Each Ready node's platform, by name, and how many Ready nodes run each: a node's event costs the same in
        # a cluster of 5,000 nodes as in one of 5, and its body is dropped once its platform is read.
        self._node_platforms: dict[str, Platform] = {}
        self._nodes_by_platform: dict[Platform, int] = {}
        self.node_platforms: frozenset[Platform] = frozenset()
        """The platforms the cluster's Ready nodes run (empty: none known), which a policy listing no
        ``platforms`` judges (``core.model.placement``)."""
        self.reports_pending = False
        """The VulnerabilityReports are being listed (a policy that reads them appeared, or the replica started):
        what is held is not yet all there is, so vulnerability rules are left undecided (ReportsPending)."""

    async def sync_policies(self, kube: KubeGateway) -> None:
        """Load every policy once before serving: decisions made before the watch catches up would be wrong."""
        for body in await kube.list_policies():
            self.observe_policy(body)
        self.policies_synced = True

    def observe_node(self, body: Mapping[str, Any], *, deleted: bool = False) -> bool:
        """Record a node's platform while it is Ready; True when the set of platforms the Ready nodes run changed
        (a node NotReady or deleted takes its platform with it once no other Ready node runs it)."""
        name = str((body.get("metadata") or {}).get("name"))
        platform = None if deleted else node_platform(body)
        before = self._node_platforms.get(name)
        if platform == before:
            return False
        changed = False
        if before is not None:
            del self._node_platforms[name]
            left = self._nodes_by_platform[before] - 1
            if left:
                self._nodes_by_platform[before] = left
            else:
                del self._nodes_by_platform[before]
                changed = True
        if platform is not None:
            count = self._nodes_by_platform.get(platform, 0)
            if not count:
                changed = True
            else:  # the one object already kept for this platform: 5,000 nodes hold a few
                platform = next(known for known in self._nodes_by_platform if known == platform)
            self._nodes_by_platform[platform] = count + 1
            self._node_platforms[name] = platform
        if changed:
            self.node_platforms = frozenset(self._nodes_by_platform)
            log.info("the Ready nodes run %s", ", ".join(sorted(map(str, self.node_platforms))) or "no platform known")
        return changed

    @property
    def active_policies(self) -> list[ImagePolicy]:
        return [record.policy for record in self.policies.values() if record.policy is not None]

    @property
    def reads_reports(self) -> bool:
        """Some policy in force reads VulnerabilityReports: a ``vulnerabilities`` rule, or ``requireCurrentBase``,
        whose findings say what Trivy Operator counts in the base then and now."""
        return any(policy_reads(policy).vulnerability_reports for policy in self.active_policies)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return self.namespaces.get(namespace, {})

    def trusts_reports_of(self, namespace: str) -> bool:
        return self.trusted_report_namespaces is None or namespace in self.trusted_report_namespaces

    def own_reports(self, namespace: str, owners: Iterable[tuple[str, str]]) -> list[VulnerabilityReport]:
        """The reports filed in ``namespace`` under these (kind, name) objects."""
        return [
            report
            for kind, name in owners
            for report in self._reports_by_owner.get((namespace, kind, name), {}).values()
        ]

    def digest_reports(self, namespace: str, digest: str) -> tuple[DigestReports, ...]:
        """The reports that may speak for ``digest`` running in ``namespace``: every trusted namespace's, and
        this namespace's own even when it is not trusted (a report there can only concern its own images)."""
        found = [self._reports_by_digest.get(("", digest))]
        if not self.trusts_reports_of(namespace):
            found.append(self._reports_by_digest.get((namespace, digest)))
        return tuple(group for group in found if group)

    def image_vulnerabilities(self, namespace: str, digests: Iterable[str]) -> SeverityCounts | None:
        """What the worst report for an image running in ``namespace`` counts; None when it has no report."""
        worst = worst_of(group for digest in digests for group in self.digest_reports(namespace, digest))
        return None if worst is None else worst.summary

    def report_owners(self, workload: Workload) -> tuple[tuple[str, str], ...]:
        """Trivy Operator files a Deployment's reports under its current ReplicaSet (the highest revision)."""
        if workload.kind != "Deployment":
            return ()
        mine = self._replicasets_by_owner.get((workload.namespace, workload.name))
        if not mine:
            return ()
        current = max(mine.items(), key=lambda item: (item[1], item[0]))[0]
        return (("ReplicaSet", current),)

    def observe_policy(self, body: Mapping[str, Any], *, deleted: bool = False) -> bool:
        """Record a policy; True when what it demands changed (a new generation, or gone)."""
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name"))
        generation = int(metadata.get("generation") or 0)
        previous = self.policies.get(name)
        if deleted:
            return self.policies.pop(name, None) is not None
        if previous is not None and previous.generation == generation:
            return False  # a status write, or metadata only
        try:
            policy = ImagePolicy.from_resource(name, body.get("spec") or {}, generation)
            self.policies[name] = PolicyRecord(name, generation, policy)
        except InvalidPolicy as error:
            # A safety tool must not drop its rules over a typo (bloated images would get in until it is
            # fixed), nor keep them silently: the last valid generation keeps applying, and Ready says so.
            kept = previous.policy if previous is not None else None
            if kept is not None:
                outcome = f"generation {kept.generation} keeps applying until it is fixed"
            else:
                outcome = "no earlier generation is known to be valid, so the policy applies nothing until fixed"
            message = f"generation {generation} is invalid: {error}; {outcome}"
            log.warning("%s", message)
            self.policies[name] = PolicyRecord(name, generation, kept, message)
        return True

    def observe_namespace(self, body: Mapping[str, Any], *, deleted: bool = False) -> bool:
        """True when a namespace already known changed its labels (namespaceSelectors may now differ)."""
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name"))
        if deleted:
            self.namespaces.pop(name, None)
            return False
        labels = dict(metadata.get("labels") or {})
        if self.namespaces.get(name) == labels:
            return False
        known = name in self.namespaces
        self.namespaces[name] = labels
        return known

    def observe_report(self, body: Mapping[str, Any], *, deleted: bool = False) -> ReportChange | None:
        """Record a scan report; returns the workload it was filed for and the digests it names, when it changed."""
        report = VulnerabilityReport.from_resource(body)
        # Where the object lives, not what its labels claim: RBAC on that namespace is what vouches for it.
        key = (str((body.get("metadata") or {}).get("namespace")), report.name)
        previous = self.reports.get(key)
        if (previous is None) if deleted else (previous == report):
            return None
        if previous is not None:
            self._unindex(key, previous)
        if deleted:
            # What a deletion found by listing again carries is the name alone: the record says whose it was.
            assert previous is not None
            report = previous
            del self.reports[key]
        else:
            self.reports[key] = report
            self._index(key, report)
        digests = frozenset(d for d in (report.digest, previous.digest if previous else None) if d)
        kind, name = report.resource_kind, report.resource_name
        if kind == "ReplicaSet" and (report.namespace, name) in self.replicasets:
            kind, name = "Deployment", self.replicasets[(report.namespace, name)][0]
        return ReportChange(WorkloadKey(kind, report.namespace, name), digests)

    def _digest_slot(self, key: ReportKey, digest: str) -> tuple[str, str]:
        """No namespace is named "": a trusted namespace's report is filed under it, to speak everywhere."""
        return ("" if self.trusts_reports_of(key[0]) else key[0], digest)

    def _index(self, key: ReportKey, report: VulnerabilityReport) -> None:
        owner = (key[0], report.resource_kind, report.resource_name)
        self._reports_by_owner.setdefault(owner, {})[key[1]] = report
        if report.digest:
            slot = self._digest_slot(key, report.digest)
            self._reports_by_digest.setdefault(slot, DigestReports()).add(key, report)

    def _unindex(self, key: ReportKey, report: VulnerabilityReport) -> None:
        owner = (key[0], report.resource_kind, report.resource_name)
        mine = self._reports_by_owner.get(owner, {})
        mine.pop(key[1], None)
        if not mine:
            self._reports_by_owner.pop(owner, None)
        if report.digest:
            slot = self._digest_slot(key, report.digest)
            group = self._reports_by_digest.get(slot)
            if group is not None:
                group.discard(key)
                if not group:
                    del self._reports_by_digest[slot]

    def forget_reports(self) -> None:
        """Drop every VulnerabilityReport: no policy reads them any more, and the watch that kept them current
        has stopped."""
        self.reports.clear()
        self._reports_by_owner.clear()
        self._reports_by_digest.clear()

    def observe_replicaset(self, workload: Workload, *, deleted: bool) -> WorkloadKey | None:
        """Track which ReplicaSet is a Deployment's current one; returns the Deployment when that changed."""
        key = (workload.namespace, workload.name)
        if deleted:
            # By name: a deletion the informer found by listing again carries no owner references.
            gone = self.replicasets.pop(key, None)
            if gone is not None:
                siblings = self._replicasets_by_owner.get((workload.namespace, gone[0]), {})
                siblings.pop(workload.name, None)
                if not siblings:
                    self._replicasets_by_owner.pop((workload.namespace, gone[0]), None)
            return None
        owner = next((name for kind, name in workload.owners if kind == "Deployment"), None)
        if owner is None:
            return None
        before = self.replicasets.get(key)
        self.replicasets[key] = (owner, workload.revision)
        self._replicasets_by_owner.setdefault((workload.namespace, owner), {})[workload.name] = workload.revision
        if before == self.replicasets[key]:
            return None
        return WorkloadKey("Deployment", workload.namespace, owner)
