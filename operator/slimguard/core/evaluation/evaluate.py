"""Evaluation: (plan, context) → Verdict. Pure, deterministic, no I/O.

This module is the driver only: which policies select which containers is the plan's (``core.evaluation.plan``),
and each rule's check and what it reads live in ``core.evaluation.rules``, one module a rule family.
"""

from __future__ import annotations

from dataclasses import replace

from slimguard.core.errors import InspectionError, InspectionReason, InvalidReference
from slimguard.core.evaluation.context import Context
from slimguard.core.evaluation.matching import exemption_for
from slimguard.core.evaluation.plan import Plan, Selected
from slimguard.core.evaluation.rules import WITH_FACTS, WITHOUT_FACTS, Reporter, Subject
from slimguard.core.evaluation.rules.sizes import MAX_COMPRESSED_SIZE, MAX_UNCOMPRESSED_SIZE
from slimguard.core.evaluation.rules.vulnerabilities import digests
from slimguard.core.evaluation.slimmer_bases import slimmer_base_for
from slimguard.core.evaluation.verdict import (
    INSPECTION,
    REFERENCE,
    Finding,
    FindingKind,
    ImageContent,
    ImageSize,
    Verdict,
)
from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.facts.image_facts import ImageFacts
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Container, Workload

__all__ = ["evaluate"]


def evaluate(plan: Plan, context: Context) -> Verdict:
    """Check every container of the plan's workload against every policy that selects it."""
    workload = plan.workload
    applied: list[str] = []
    findings: list[Finding] = []
    exempted: list[Finding] = []
    pending: list[str] = []
    scanned: dict[str, None] = {}
    sizes: dict[str, ImageSize] = {}
    contents: dict[str, ImageContent] = {}
    hints: dict[tuple[str, str], SlimmerBase] = {}
    checked: dict[tuple[str, str], None] = {}
    for selected in sorted(plan.selection, key=lambda s: s.policy.name):
        policy = selected.policy
        applied.append(policy.name)
        for container in selected.containers:
            image_facts = context.facts.get(container.image)
            if policy.spec.rules.vulnerabilities is not None and isinstance(image_facts, ImageFacts):
                scanned.update(dict.fromkeys(digests(image_facts)))
            if isinstance(image_facts, ImageFacts) and image_facts.platforms:
                sizes[container.image] = _larger(sizes.get(container.image), _size_of(container.image, image_facts))
                if (content := _content_of(container.image, image_facts)) is not None:
                    seen = contents.get(container.image)
                    contents[container.image] = content if seen is None else seen.merged(content)
            if selected.reads.facts is not None:
                if image_facts is None:
                    # Still checked for what needs no facts (the reference, requireDigest): known now, so said now.
                    pending.append(container.image)
                else:
                    checked[(policy.name, container.image)] = None
            container_findings = _check_container(selected, workload, container, context)
            if isinstance(image_facts, ImageFacts) and (hint := _hint(policy, container.image, image_facts, context)):
                hints.setdefault((policy.name, container.image), hint)
                container_findings = [_with_hint(finding, hint) for finding in container_findings]
            exemption = exemption_for(policy, workload, container, context.now)
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
        image_sizes=tuple(sizes.values()),
        image_contents=tuple(contents.values()),
        hints=tuple(hints.values()),
        checked=tuple(checked),
        platforms=plan.platforms,
    )


_SIZE_RULES = frozenset({MAX_COMPRESSED_SIZE.name, MAX_UNCOMPRESSED_SIZE.name})


def _hint(policy: ImagePolicy, image: str, facts: ImageFacts, context: Context) -> SlimmerBase | None:
    return slimmer_base_for(policy, image, facts, candidates=context.base_candidates, options=context.base_options)


def _with_hint(finding: Finding, hint: SlimmerBase) -> Finding:
    """A size violation says which slimmer base would cure it, measured: the cure, not only the diagnosis."""
    if finding.rule not in _SIZE_RULES or finding.kind is not FindingKind.VIOLATION:
        return finding
    return replace(finding, message=f"{finding.message} Slimmer base: {hint.text}.")


def _size_of(image: str, facts: ImageFacts) -> ImageSize:
    known = [size for platform in facts.platforms if (size := platform.uncompressed_size) is not None]
    return ImageSize(
        image=image,
        compressed=max(platform.compressed_size for platform in facts.platforms),
        uncompressed=max(known) if known else None,
        digests=tuple(sorted(digests(facts))),
    )


def _larger(seen: ImageSize | None, new: ImageSize) -> ImageSize:
    """Policies may read different platforms of one image: keep what the most complete reading says."""
    if seen is None:
        return new
    known = [size for size in (seen.uncompressed, new.uncompressed) if size is not None]
    return ImageSize(
        new.image, max(seen.compressed, new.compressed), max(known) if known else None, new.digests or seen.digests
    )


def _content_of(image: str, facts: ImageFacts) -> ImageContent | None:
    """The platforms whose layers were read, folded: the most packages counted and waste, every tool category."""
    read = [platform.content for platform in facts.platforms if platform.content is not None]
    if not read:
        return None
    counts = [count for content in read if (count := content.packages.count) is not None]
    return ImageContent(
        image=image,
        packages=max(counts) if counts else None,
        wasted_bytes=max(content.wasted_bytes for content in read),
        tool_categories=tuple(sorted({tool.category for content in read for tool in content.tools})),
    )


def _check_container(selected: Selected, workload: Workload, container: Container, context: Context) -> list[Finding]:
    policy = selected.policy
    rules = policy.spec.rules
    report = Reporter(policy, container)
    reference = container.reference
    if isinstance(reference, InvalidReference):
        report.error(REFERENCE, f"cannot be checked: {reference}", reason=InspectionReason.INVALID_REFERENCE)
        return report.findings
    subject = Subject(policy, workload, container, reference, context, report)
    for rule in WITHOUT_FACTS:
        rule.check(subject)
    if selected.reads.facts is None:
        return report.findings
    facts = context.facts.get(container.image)
    if facts is None:  # pending: evaluate() records it
        return report.findings
    if isinstance(facts, InspectionError):
        report.error(INSPECTION, f"could not be inspected: {facts}", reason=facts.reason, detail=str(facts))
        return report.findings
    images = tuple(image for p in rules.required_platforms if (image := facts.for_platform(p)) is not None)
    with_facts = Subject(policy, workload, container, reference, context, report, facts, images)
    for rule in WITH_FACTS:
        rule.check(with_facts)
    return report.findings
