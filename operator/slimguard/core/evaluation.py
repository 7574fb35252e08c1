"""Evaluation: (policies, workload, facts, reports, now) → Verdict. Pure, deterministic, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from slimguard.core.errors import InspectionError, InvalidReference
from slimguard.core.facts import BaseImage, ImageFacts, PlatformImage, base_by_layers
from slimguard.core.globs import image_matches_any
from slimguard.core.matching import exemption_for, selected_containers
from slimguard.core.needs import needs_of
from slimguard.core.policy import Decision, ImagePolicy, Rules
from slimguard.core.quantity import format_bytes
from slimguard.core.reference import ImageReference
from slimguard.core.verdict import Finding, FindingKind, Verdict
from slimguard.core.vulnerabilities import DigestReports, VulnerabilityReport, select_report
from slimguard.core.workload import Container, Workload

FactsOrError = ImageFacts | InspectionError

_ROOT_USERS = {"", "root", "0"}


@dataclass(frozen=True)
class Context:
    """Everything evaluation reads besides the policies and the workload, gathered by the adapters."""

    now: datetime
    facts: Mapping[str, FactsOrError] = field(default_factory=dict)
    base_candidates: Mapping[str, FactsOrError] = field(default_factory=dict)
    """The concrete base references policies name, as read from their registries (or why they could not be)."""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    reports: Sequence[VulnerabilityReport] = ()
    """The workload's own reports: those filed under it or one of ``report_owners``."""
    report_owners: tuple[tuple[str, str], ...] = ()
    """(kind, name) of the objects whose reports speak for this workload: itself, and for a Deployment
    its current ReplicaSet (Trivy Operator files a Deployment's reports under the ReplicaSet)."""
    digest_reports: Mapping[str, Sequence[DigestReports]] = field(default_factory=dict)
    """Per image digest, the reports filed for it under any workload (those the cluster view trusts)."""


def applicable_policies(
    policies: Sequence[ImagePolicy], workload: Workload, namespace_labels: Mapping[str, str]
) -> tuple[ImagePolicy, ...]:
    return tuple(p for p in policies if selected_containers(p, workload, namespace_labels))


def evaluate(*, policies: Sequence[ImagePolicy], workload: Workload, context: Context) -> Verdict:
    """Check every container of ``workload`` against every policy that selects it."""
    applied: list[str] = []
    findings: list[Finding] = []
    exempted: list[Finding] = []
    pending: list[str] = []
    scanned: dict[str, None] = {}
    for policy in sorted(policies, key=lambda p: p.name):
        containers = selected_containers(policy, workload, context.namespace_labels)
        if not containers:
            continue
        applied.append(policy.name)
        for container in containers:
            if policy.spec.rules.vulnerabilities is not None:
                image_facts = context.facts.get(container.image)
                if isinstance(image_facts, ImageFacts):
                    scanned.update(dict.fromkeys(_digests(image_facts)))
            if container.image not in context.facts and needs_of(policy.spec.rules) is not None:
                # Still checked for what needs no facts (the reference, requireDigest): known now, so said now.
                pending.append(container.image)
            container_findings = _check_container(policy, workload, container, context)
            exemption = exemption_for(policy, workload, container.image, context.now)
            if exemption is None:
                findings.extend(container_findings)
            else:
                exempted.extend(f for f in container_findings if f.kind is FindingKind.VIOLATION)
                findings.extend(f for f in container_findings if f.kind is FindingKind.ERROR)
    return Verdict(
        workload=workload.key,
        policies=tuple(applied),
        findings=tuple(findings),
        exempted=tuple(exempted),
        pending_images=tuple(dict.fromkeys(pending)),
        scanned_digests=tuple(scanned),
    )


class _Reporter:
    """Builds findings that all name the container, the image and the policy the same way."""

    def __init__(self, policy: ImagePolicy, container: Container) -> None:
        self.policy = policy
        self.container = container
        self.findings: list[Finding] = []

    @property
    def subject(self) -> str:
        return f'container "{self.container.name}": image {self.container.image}'

    @property
    def policy_name(self) -> str:
        return f'ImagePolicy "{self.policy.name}"'

    def violation(self, rule: str, message: str, *, limit: str | None = None, actual: str | None = None) -> None:
        self._add(rule, message, FindingKind.VIOLATION, limit, actual)

    def error(self, rule: str, message: str) -> None:
        self._add(rule, message, FindingKind.ERROR, None, None)

    def _add(self, rule: str, message: str, kind: FindingKind, limit: str | None, actual: str | None) -> None:
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
            )
        )


def _check_container(policy: ImagePolicy, workload: Workload, container: Container, context: Context) -> list[Finding]:
    rules = policy.spec.rules
    report = _Reporter(policy, container)
    try:
        reference = ImageReference.parse(container.image)
    except InvalidReference as error:
        report.error("reference", f"cannot be checked: {error}")
        return report.findings
    if rules.require_digest and reference.digest is None:
        report.violation(
            "requireDigest",
            f"is referenced by tag; {report.policy_name} requires a digest. "
            f"Pin it as {reference.name}@sha256:<digest>.",
            limit="digest",
            actual="tag",
        )
    if needs_of(rules) is None:
        return report.findings
    facts = context.facts.get(container.image)
    if facts is None:  # pending: evaluate() records it
        return report.findings
    if isinstance(facts, InspectionError):
        report.error("inspection", f"could not be inspected: {facts}")
        return report.findings
    images = _platform_images(report, rules, facts)
    for image in images:
        _check_platform_image(report, rules, reference, facts, image, context)
    if not container.runs_as_non_root and rules.require_non_root_user:
        for image in images[:1]:
            _check_user(report, image)
    if rules.vulnerabilities is not None:
        _check_vulnerabilities(report, rules, workload, container, facts, context)
    return report.findings


def _platform_images(report: _Reporter, rules: Rules, facts: ImageFacts) -> list[PlatformImage]:
    images: list[PlatformImage] = []
    for required in rules.required_platforms:
        image = facts.for_platform(required)
        if image is None:
            available = ", ".join(facts.platform_names) or "no platform"
            report.violation(
                "platforms",
                f"has no {required} image (it has {available}); {report.policy_name} requires {required}. "
                f"Build and push a {required} variant, e.g. with docker buildx --platform.",
                limit=str(required),
                actual=available,
            )
        else:
            images.append(image)
    return images


def _size_check(
    report: _Reporter, rule: str, size: int, limit: int | None, what: str, platform: str, hint: str
) -> None:
    if limit is not None and size > limit:
        actual, allowed = format_bytes(size), format_bytes(limit)
        if actual == allowed:  # rounding hid the excess ("200 MiB; allows 200 MiB"): show the bytes
            actual, allowed = f"{actual} ({size} bytes)", f"{allowed} ({limit} bytes)"
        report.violation(
            rule,
            f"is {actual} {what} ({platform}); {report.policy_name} allows {allowed}. {hint}",
            limit=allowed,
            actual=actual,
        )


_SLIM_HINT = "Use a multi-stage build with a slim, alpine or distroless final stage."


def _check_platform_image(
    report: _Reporter,
    rules: Rules,
    reference: ImageReference,
    facts: ImageFacts,
    image: PlatformImage,
    context: Context,
) -> None:
    platform = str(image.platform)
    _size_check(
        report,
        "maxCompressedSize",
        image.compressed_size,
        rules.compressed_limit,
        "compressed",
        platform,
        _SLIM_HINT,
    )
    if rules.uncompressed_limit is not None:
        uncompressed = image.uncompressed_size
        if uncompressed is None:
            report.error("maxUncompressedSize", f"has layers whose uncompressed size is unknown ({platform})")
        else:
            what = "uncompressed (estimated)" if image.uncompressed_estimated else "uncompressed"
            _size_check(
                report,
                "maxUncompressedSize",
                uncompressed,
                rules.uncompressed_limit,
                what,
                platform,
                _SLIM_HINT,
            )
    if rules.max_layers is not None and len(image.layers) > rules.max_layers:
        report.violation(
            "maxLayers",
            f"has {len(image.layers)} layers ({platform}); {report.policy_name} allows {rules.max_layers}. "
            "Combine RUN steps, or copy the result of a build stage in one COPY.",
            limit=str(rules.max_layers),
            actual=str(len(image.layers)),
        )
    if rules.allowed_base_images is not None or rules.denied_base_images is not None:
        bases = detect_bases(facts, image, context.base_candidates)
        unreadable = {
            ref: error for ref, error in context.base_candidates.items() if isinstance(error, InspectionError)
        }
        _check_base(report, rules, reference, bases, unreadable)


def detect_bases(
    facts: ImageFacts, image: PlatformImage, candidates: Mapping[str, FactsOrError]
) -> tuple[BaseImage, ...]:
    """Every base image found, by OCI annotation and, independently, by layer prefix; each base once."""
    annotated = image.annotated_base or facts.annotated_base
    layer_candidates = {
        ref: candidate_image
        for ref, candidate in candidates.items()
        if isinstance(candidate, ImageFacts)
        and (candidate_image := candidate.for_platform(image.platform)) is not None
        and candidate_image.manifest_digest != image.manifest_digest
    }
    by_layers = base_by_layers(image, layer_candidates)
    if annotated is not None and by_layers is not None and _same_reference(annotated.reference, by_layers.reference):
        # Both methods agree: one base, found two ways (said once, not once per method).
        return (replace(annotated, shared_layers=by_layers.shared_layers),)
    return tuple(base for base in (annotated, by_layers) if base is not None)


def _same_reference(one: str, other: str) -> bool:
    try:
        return str(ImageReference.parse(one)) == str(ImageReference.parse(other))
    except InvalidReference:
        return one == other


def _describe(base: BaseImage) -> str:
    ways = []
    if base.method == "annotation":
        ways.append("by its OCI base-image annotation")
    if base.shared_layers is not None:
        ways.append(f"by {base.shared_layers} shared layer{'' if base.shared_layers == 1 else 's'}")
    return f"{base.reference} (found {' and '.join(ways)})"


def _describe_all(bases: Sequence[BaseImage]) -> str:
    return " and ".join(_describe(base) for base in bases)


def _base_matches(base: BaseImage, globs: Sequence[str]) -> bool:
    try:
        return image_matches_any(ImageReference.parse(base.reference), globs)
    except InvalidReference:
        return False


def _check_base(
    report: _Reporter,
    rules: Rules,
    reference: ImageReference,
    bases: tuple[BaseImage, ...],
    unreadable: Mapping[str, InspectionError],
) -> None:
    denied = rules.denied_base_images or ()
    allowed = rules.allowed_base_images
    itself_denied = image_matches_any(reference, denied)
    denied_bases = [base for base in bases if _base_matches(base, denied)]
    if denied_bases:
        report.violation(
            "deniedBaseImages",
            f"is built on {_describe_all(denied_bases)}, which {report.policy_name} denies ({', '.join(denied)}). "
            f"Rebuild FROM an allowed base{_suggest(allowed)}.",
            limit=", ".join(denied),
            actual=", ".join(base.reference for base in denied_bases),
        )
    if itself_denied and not denied_bases:
        report.violation(
            "deniedBaseImages",
            f"is a base image {report.policy_name} denies ({', '.join(denied)}). "
            f"Build your own image FROM an allowed base{_suggest(allowed)}.",
            limit=", ".join(denied),
            actual=str(reference),
        )
    decided = bool(denied_bases) or itself_denied
    if denied and not decided and unreadable:
        # A base the layer comparison could not see might be the denied one: undecided is not compliant.
        _undecided(report, "deniedBaseImages", unreadable)
    if allowed is None or image_matches_any(reference, allowed) or decided:
        return  # a denied base is reported once, as denied, not again as "not allowed"
    if unreadable:
        _undecided(report, "allowedBaseImages", unreadable)
    elif not bases:
        report.violation(
            "allowedBaseImages",
            f"has a base image slimguard could not determine (no org.opencontainers.image.base.name annotation, "
            f"and no known base image shares its layers); {report.policy_name} allows only {', '.join(allowed)}. "
            "Build with the OCI base-image annotations, or list the base in spec.knownBaseImages.",
            limit=", ".join(allowed),
            actual="unknown",
        )
    elif not any(_base_matches(base, allowed) for base in bases):
        report.violation(
            "allowedBaseImages",
            f"is built on {_describe_all(bases)}, which is not a base {report.policy_name} allows "
            f"({', '.join(allowed)}). Rebuild FROM an allowed base{_suggest(allowed)}.",
            limit=", ".join(allowed),
            actual=bases[0].reference,
        )


def _undecided(report: _Reporter, rule: str, unreadable: Mapping[str, InspectionError]) -> None:
    if len(unreadable) == 1:
        ((names, detail),) = ((ref, str(error)) for ref, error in unreadable.items())
        noun = "base image"
    else:
        names, noun = ", ".join(unreadable), "base images"
        detail = "; ".join(f"{ref}: {error}" for ref, error in unreadable.items())
    report.error(
        rule,
        f"cannot be checked against {rule} of {report.policy_name}: the {noun} {names}, which slimguard "
        f"compares layers with, could not be read ({detail}). It is checked again when the registry answers; "
        "correct spec.knownBaseImages if the reference is wrong.",
    )


def _suggest(allowed: Sequence[str] | None) -> str:
    return f" such as {allowed[0]}" if allowed else ""


def _check_user(report: _Reporter, image: PlatformImage) -> None:
    user = image.user.strip()
    name = user.split(":", 1)[0]
    if name in _ROOT_USERS or (name.isdigit() and int(name) == 0):  # "00" is uid 0 too
        shown = "has no USER, so it runs as root" if not user else f"runs as {user!r} (root)"
        report.violation(
            "requireNonRootUser",
            f"{shown}; {report.policy_name} requires a non-root user. "
            "Add USER 10001 to the final stage, or set securityContext.runAsNonRoot with a runAsUser.",
            limit="non-root",
            actual=user or "root",
        )


def _digests(facts: ImageFacts) -> frozenset[str]:
    """Every digest a report may name for this image: the index's and each platform manifest's."""
    return frozenset({facts.digest} | {image.manifest_digest for image in facts.platforms})


def _check_vulnerabilities(
    report: _Reporter,
    rules: Rules,
    workload: Workload,
    container: Container,
    facts: ImageFacts,
    context: Context,
) -> None:
    limits = rules.vulnerabilities
    assert limits is not None
    digests = _digests(facts)
    owners = ((workload.kind, workload.name), *context.report_owners)
    age_limit = limits.report_age_limit
    lookup = select_report(
        context.reports,
        namespace=workload.namespace,
        resources=owners,
        container=container.name,
        digests=digests,
        shared=[group for digest in sorted(digests) for group in context.digest_reports.get(digest, ())],
        ignore_unfixed=limits.ignore_unfixed,
        fresh_since=None if age_limit is None else context.now - age_limit,
    )
    found = lookup.report
    if found is None:
        if limits.on_missing_report is Decision.DENY:
            if lookup.too_old is not None:
                why = (
                    f"its newest VulnerabilityReport {lookup.too_old.namespace}/{lookup.too_old.name} "
                    f"is older than {limits.max_report_age}"
                )
            elif lookup.stale is not None:
                why = (
                    f"its only VulnerabilityReport {lookup.stale.namespace}/{lookup.stale.name} is for another "
                    f"digest ({lookup.stale.digest}), so it is stale"
                )
            else:
                why = f"it has no VulnerabilityReport for digest {facts.digest}"
            report.violation(
                "vulnerabilities.onMissingReport",
                f"cannot be vouched for: {why}; {report.policy_name} requires a current scan "
                "(onMissingReport: Deny). Wait for Trivy Operator to scan it.",
                limit="current report",
                actual="none",
            )
        return
    counts = found.counts(ignore_unfixed=limits.ignore_unfixed)
    fixable = " fixable" if limits.ignore_unfixed else ""
    checks: list[tuple[str, int | None, int]] = [
        ("critical", limits.max_critical, counts.critical),
        ("high", limits.max_high, counts.high),
        ("medium", limits.max_medium, counts.medium),
    ]
    for severity, limit, actual in checks:
        if limit is not None and actual > limit:
            report.violation(
                f"vulnerabilities.max{severity.capitalize()}",
                f"has {actual}{fixable} {severity} {'vulnerability' if actual == 1 else 'vulnerabilities'} "
                f"(VulnerabilityReport "
                f"{found.namespace}/{found.name}); {report.policy_name} allows {limit}. "
                "Rebuild on a patched or smaller base image.",
                limit=str(limit),
                actual=str(actual),
            )
