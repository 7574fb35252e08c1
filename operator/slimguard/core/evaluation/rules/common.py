"""What every rule module shares: what a check is given, how it reports, and how it says what it reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from slimguard.core.errors import InspectionReason
from slimguard.core.evaluation.context import Context
from slimguard.core.evaluation.verdict import Finding, FindingKind
from slimguard.core.facts.content import ContentFacts
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts, PlatformImage
from slimguard.core.model.policy import ImagePolicy, Rules
from slimguard.core.model.reference import ImageReference
from slimguard.core.model.workload import Container, Workload


@dataclass(frozen=True, slots=True)
class Reads:
    """What a rule reads besides the workload, so that the adapters gather exactly that (``core.evaluation.plan``
    unites the rules' declarations per policy and per image; nothing else decides what is fetched)."""

    facts: FactsNeeds | None = None
    """About each image the policy selects: which platforms, layer sizes, contents (None: no registry read, the
    rule is decided from the workload alone and runs even when the image cannot be read)."""
    bases: bool = False
    """The concrete base references the policies name (``knownBaseImages``, the base rules' own), read to find an
    image's base by shared layers."""
    base_versions: bool = False
    """The image's base as its tag points now and as it was built on, the earlier versions of the named bases
    slimguard saw, and the VulnerabilityReports filed for those versions."""
    reports: bool = False
    """Trivy Operator's VulnerabilityReports: the workload's own, and those filed for its images' digests."""

    @property
    def vulnerability_reports(self) -> bool:
        """Any VulnerabilityReport at all: the images' own, or the base versions' (the components watch them only
        while some policy's reads say so)."""
        return self.reports or self.base_versions

    def __or__(self, other: Reads) -> Reads:
        facts = other.facts if self.facts is None else self.facts if other.facts is None else self.facts | other.facts
        return Reads(
            facts,
            self.bases or other.bases,
            self.base_versions or other.base_versions,
            self.reports or other.reports,
        )


NOTHING = Reads()
"""What a rule whose fields are not set reads."""


def reads_contents(rules: Rules, *, when: bool) -> Reads:
    """What a content rule reads: the file system of each required platform (its layers), if its field is set."""
    return Reads(FactsNeeds(frozenset(rules.required_platforms), content=True)) if when else NOTHING


class Reporter:
    """Builds findings that all name the container, the image and the policy the same way."""

    def __init__(self, policy: ImagePolicy, container: Container) -> None:
        self.policy = policy
        self.container = container
        self.findings: list[Finding] = []

    @property
    def subject(self) -> str:
        # A container without a name is an image checked on its own (the CLI): there is no container to name.
        if not self.container.name:
            return f"image {self.container.image}"
        return f'container "{self.container.name}": image {self.container.image}'

    @property
    def policy_name(self) -> str:
        return f'ImagePolicy "{self.policy.name}"'

    def violation(
        self,
        rule: str,
        message: str,
        *,
        limit: str | None = None,
        actual: str | None = None,
        excess_bytes: int | None = None,
    ) -> None:
        self._add(rule, message, FindingKind.VIOLATION, limit, actual, excess_bytes=excess_bytes)

    def error(self, rule: str, message: str, *, reason: InspectionReason, detail: str | None = None) -> None:
        self._add(rule, message, FindingKind.ERROR, None, None, reason=reason, detail=detail)

    def _add(
        self,
        rule: str,
        message: str,
        kind: FindingKind,
        limit: str | None,
        actual: str | None,
        *,
        reason: str | None = None,
        excess_bytes: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.findings.append(
            Finding(
                policy=self.policy.name,
                mode=self.policy.spec.mode,
                container=self.container.name,
                image=self.container.image,
                rule=rule,
                message=f"{self.subject} {message}",
                kind=kind,
                limit=limit,
                actual=actual,
                reason=reason,
                excess_bytes=excess_bytes,
                detail=detail,
            )
        )


@dataclass(frozen=True)
class Subject:
    """One container's image under one policy: what a rule's check reads, and where it reports."""

    policy: ImagePolicy
    workload: Workload
    container: Container
    reference: ImageReference
    context: Context
    report: Reporter
    facts: ImageFacts | None = None
    """None for rules that read no registry (they run before facts are looked at)."""
    images: tuple[PlatformImage, ...] = field(default=())
    """The images of the required platforms that exist (missing ones are the platforms rule's finding)."""

    @property
    def rules(self) -> Rules:
        return self.policy.spec.rules


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule as users meet it: its name and the help a code-scanning alert (SARIF) gives for it.

    ``name`` is the field of ``spec.rules`` that sets it, and the rule every finding, PolicyReport result, SARIF
    rule and ``slimguard_violations`` label names: public, so it never changes. A finding of one part of a rule
    is named ``name.part`` (``vulnerabilities.maxCritical``). Two rules no field sets name image-wide error
    findings (``inspection``, ``reference``: ``core.evaluation.rules.IMAGE_WIDE``).
    """

    name: str
    summary: str
    """SARIF's shortDescription."""
    description: str
    """What it checks: SARIF's fullDescription, and the README's table of rules."""
    fix: str
    """What to do about a finding: SARIF's help, and the README's table of rules."""
    anchor: str = "the-rules"
    """The README section that explains it (SARIF's helpUri)."""

    def part(self, name: str) -> str:
        """``vulnerabilities.maxCritical``: the name of a finding of one part of the rule."""
        return f"{self.name}.{name}"


@dataclass(frozen=True, slots=True)
class RuleFamily:
    """A module of ``core.evaluation.rules``: the rules it checks, what it reads (facts of the image, bases,
    reports) and its check.

    A check runs for every policy and returns at once when its fields are not set.
    """

    name: str
    """The module's name (``sizes``); the rules users see are ``checks``."""
    reads: Callable[[Rules], Reads]
    check: Callable[[Subject], None]
    checks: tuple[PolicyRule, ...]
    """The rules of ``spec.rules`` this family checks, each declared in its module, in the order reports list them."""


def content_or_pending(report: Reporter, rule: str, image: PlatformImage) -> ContentFacts | None:
    """The image's content facts; when they are not read yet, an error finding saying they are on their way.

    The webhook never reads layers: until the controller has (and written the ImageReport), a content rule
    is undecided, and the policy's onUnknown decides at admission.
    """
    if image.content is None:
        report.error(
            rule,
            f"has no content facts yet ({image.platform}): slimguard's controller is reading its layers and the "
            "image's ImageReport is on its way",
            reason=InspectionReason.CONTENT_PENDING,
        )
    return image.content
