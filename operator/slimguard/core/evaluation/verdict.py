"""What evaluation concludes: findings per container and rule, and a status per workload."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.model.placement import WITHOUT_NODES, JudgedPlatforms
from slimguard.core.model.policy import Mode
from slimguard.core.model.workload import WorkloadKey


class Status(StrEnum):
    COMPLIANT = "compliant"
    NONCOMPLIANT = "noncompliant"
    PENDING = "pending"
    ERROR = "error"


class FindingKind(StrEnum):
    VIOLATION = "violation"
    ERROR = "error"


INSPECTION = "inspection"
"""The rule of an error finding saying an image's facts could not be had at all (its registry unreachable, its
certificate untrusted, access refused, ...): every rule on that image is then decided by the policy's onUnknown
(``core.evaluation.enforcement``)."""
REFERENCE = "reference"
"""The rule of an error finding saying an image reference is invalid: no rule could be checked on it."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule of one policy that one container breaks (or could not be checked against)."""

    policy: str
    mode: Mode
    container: str
    image: str
    rule: str
    message: str
    kind: FindingKind = FindingKind.VIOLATION
    limit: str | None = None
    actual: str | None = None
    reason: str | None = None
    """For an error, why it could not be checked, as a CamelCase word (RegistryUnreachable, GarbledManifest…)."""
    other_policies: tuple[str, ...] = ()
    """Further policies that found exactly this (see ``Verdict.distinct_findings``); empty in ``findings``."""
    excess_bytes: int | None = None
    """For a size rule, the bytes above the limit: what a slimmer build would save (a metric sums them)."""
    detail: str | None = None
    """For an error, what failed in its own words, without the container and image (the registry client's
    message): what the ImagePolicy's Enforcing condition and the webhook's /readyz quote."""

    @property
    def policies(self) -> tuple[str, ...]:
        return (self.policy, *self.other_policies)

    def as_dict(self) -> dict[str, str | list[str]]:
        item: dict[str, str | list[str]] = {
            "policy": self.policy,
            "container": self.container,
            "image": self.image,
            "rule": self.rule,
            "message": self.message,
        }
        if self.kind is FindingKind.ERROR:
            item["kind"] = self.kind.value
            if self.reason:
                item["reason"] = self.reason
        if self.other_policies:
            item["policies"] = list(self.policies)
        return item


@dataclass(frozen=True, slots=True)
class ImageSize:
    """The size of one image a workload runs, as its facts say: what the fleet metrics sum per namespace.

    The largest of the platforms read, since that is what the heaviest node pulls; ``uncompressed`` is None
    unless a rule had the layer trailers read.
    """

    image: str
    compressed: int
    uncompressed: int | None = None
    digests: tuple[str, ...] = ()
    """Every digest a VulnerabilityReport may name for this image (the index's and each platform's)."""


@dataclass(frozen=True, slots=True)
class ImageContent:
    """What one image a workload runs holds, where a content rule had its layers read: what the fleet's
    content metrics sum per namespace. Of several platforms read, the most packages, the most waste and every
    tool category any of them has."""

    image: str
    packages: int | None
    """OS packages in the final file system; None when the package database could not be counted."""
    wasted_bytes: int
    """dive's wasted bytes: the cumulative size of every path seen in two or more layers."""
    tool_categories: tuple[str, ...] = ()
    """The built-in ``forbiddenTools`` categories (core.model.tools) with a tool present, forbidden or not."""

    def merged(self, other: ImageContent) -> ImageContent:
        """Two readings of one image (policies may read different platforms): what the fuller one says."""
        counts = [count for count in (self.packages, other.packages) if count is not None]
        return ImageContent(
            image=self.image,
            packages=max(counts) if counts else None,
            wasted_bytes=max(self.wasted_bytes, other.wasted_bytes),
            tool_categories=tuple(sorted({*self.tool_categories, *other.tool_categories})),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """A workload's standing under every policy that applies to it."""

    workload: WorkloadKey
    policies: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    exempted: tuple[Finding, ...] = ()
    pending_images: tuple[str, ...] = ()
    scanned_digests: tuple[str, ...] = ()
    """The image digests whose VulnerabilityReports this verdict read: a new report for one may change it."""
    image_sizes: tuple[ImageSize, ...] = ()
    """Each distinct image of the selected containers whose facts were read (for metrics, never for status)."""
    image_contents: tuple[ImageContent, ...] = ()
    """Each distinct image of the selected containers whose layers were read (for metrics, never for status)."""
    hints: tuple[SlimmerBase, ...] = ()
    """Per policy asking for them (``slimmerBases``) and image: a measured slimmer base and what it would save."""
    checked: tuple[tuple[str, str], ...] = ()
    """(policy, image) for each image a policy's rules needed facts of and got an answer for (the facts, or why
    not): what images decided by default are counted against (``core.evaluation.enforcement``: the Enforcing condition,
    /readyz, the metrics), never for the workload's own status."""
    platforms: JudgedPlatforms = WITHOUT_NODES
    """What the policies listing no ``platforms`` judged (the plan's): the ImagePolicy status says it."""

    @property
    def applies(self) -> bool:
        return bool(self.policies)

    @property
    def violations(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.kind is FindingKind.VIOLATION)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.kind is FindingKind.ERROR)

    @property
    def distinct_findings(self) -> tuple[Finding, ...]:
        """The findings as people are told them: one statement made under several policies, once.

        An image that cannot be inspected is an error under every policy that checks it, in the same words;
        seven policies must not make the annotation, the Event or the admission message say it seven times.
        The first finding stands for them and names every policy (``other_policies``). ``findings`` keeps
        one per policy, so counts per policy (``status_for``) still count it for each.
        """
        said: dict[tuple[FindingKind, str, str, str, str], Finding] = {}
        for finding in self.findings:
            key = (finding.kind, finding.container, finding.image, finding.rule, finding.message)
            first = said.get(key)
            if first is None:
                said[key] = finding
            elif finding.policy not in first.policies:
                said[key] = replace(first, other_policies=(*first.other_policies, finding.policy))
        return tuple(said.values())

    @property
    def status(self) -> Status:
        if self.violations:
            return Status.NONCOMPLIANT
        if self.errors:
            return Status.ERROR
        if self.pending_images:
            return Status.PENDING
        return Status.COMPLIANT

    @property
    def mode(self) -> Mode | None:
        """The strictest mode among the policies this workload violates; it decides admission."""
        modes = [finding.mode for finding in self.violations]
        return max(modes, key=lambda mode: mode.strictness) if modes else None

    def for_policy(self, policy: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.policy == policy)

    def status_for(self, policy: str) -> Status:
        """The workload's status under one policy alone (policy status and metrics count per policy)."""
        return Verdict(self.workload, self.policies, self.for_policy(policy), pending_images=self.pending_images).status
