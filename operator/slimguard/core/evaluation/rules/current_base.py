"""``requireCurrentBase``: the image is built on what its base's tag points to now, per platform manifest.

The base the image was built on comes from its OCI annotations (``base.name`` and ``base.digest``) or, for an
image without them, from an earlier version of a known base whose layers it starts with (one slimguard read
before the tag moved). A multi-arch base is compared by the platform's own manifest: a new index whose amd64
manifest is unchanged has not moved for an amd64 image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from slimguard.core.errors import InspectionError, InspectionReason, InvalidReference
from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Subject
from slimguard.core.facts.bases import short_name, tag_reference
from slimguard.core.facts.image_facts import BaseImage, FactsNeeds, FactsOrError, ImageFacts, PlatformImage
from slimguard.core.facts.vulnerabilities import DigestReports, SeverityCounts
from slimguard.core.model.policy import ImagePolicy, Rules
from slimguard.core.model.reference import ImageReference

REQUIRE_CURRENT_BASE = PolicyRule(
    "requireCurrentBase",
    summary="The image is built on its base's current version",
    description="With requireCurrentBase: true, the base the image was built on is what the base's tag points to "
    "now, compared per platform manifest.",
    fix="Rebuild the image, so that it picks up its base's current version and its fixes.",
)
RULE = REQUIRE_CURRENT_BASE.name


def reads(rules: Rules) -> Reads:
    """The image, the bases the policies name (and the earlier versions seen), and its base's versions now and
    then, with the reports filed for them (what a rebuild would fix)."""
    if not rules.require_current_base:
        return NOTHING
    return Reads(FactsNeeds(frozenset(rules.required_platforms)), bases=True, base_versions=True)


def digest_reference(base: BaseImage) -> str | None:
    """``registry/repository@digest`` of the version the annotation names, if it names a digest."""
    if not base.digest:
        return None
    try:
        parsed = ImageReference.parse(base.reference)
    except InvalidReference:
        return None
    return f"{parsed.registry}/{parsed.repository}@{base.digest}"


def versions_to_read(
    images: Mapping[str, tuple[ImagePolicy, ...]], facts: Mapping[str, FactsOrError]
) -> dict[str, FactsNeeds]:
    """The annotated bases to read for the policies requiring a current base: by tag (now) and by digest (then)."""
    wanted: dict[str, FactsNeeds] = {}
    for image, selecting in images.items():
        image_facts = facts.get(image)
        if not isinstance(image_facts, ImageFacts):
            continue
        for policy in selecting:
            if not policy.spec.rules.require_current_base:
                continue
            platforms = policy.spec.rules.required_platforms
            for platform in platforms:
                platform_image = image_facts.for_platform(platform)
                base = _annotated(image_facts, platform_image) if platform_image else None
                if base is None:
                    continue
                need = FactsNeeds(frozenset(platforms))
                for reference in (tag_reference(base.reference), digest_reference(base)):
                    if reference is not None:
                        wanted[reference] = wanted[reference] | need if reference in wanted else need
    return wanted


def _annotated(facts: ImageFacts, image: PlatformImage) -> BaseImage | None:
    base = image.annotated_base or facts.annotated_base
    return base if base is not None and base.digest and tag_reference(base.reference) is not None else None


@dataclass(frozen=True, slots=True)
class _Moved:
    base: str
    """The base by tag."""
    then: str
    """What the image was built on: the platform's manifest digest (or the digest the annotation names)."""
    now: str
    how: str


def check(subject: Subject) -> None:
    if not subject.rules.require_current_base:
        return
    assert subject.facts is not None
    context = subject.context
    for image in subject.images:
        annotated = _annotated(subject.facts, image)
        if annotated is not None:
            moved = _moved_by_annotation(subject, annotated, image)
        else:
            moved = _moved_by_layers(image, context.base_candidates, context.base_history)
        if moved is None:
            continue
        platform = str(image.platform)
        report = subject.report
        report.violation(
            RULE,
            f"is built on {moved.base}@{moved.then} ({platform}, {moved.how}), but {moved.base} now points to "
            f"{moved.now}; {report.policy_name} requires a current base. {_age(image.created, context.now)}"
            f"{short_name(moved.base, moved.base)} has moved since: rebuild to pick up its fixes."
            f"{_vulnerability_change(context.digest_reports, moved)}",
            limit=moved.now,
            actual=moved.then,
        )


def _moved_by_annotation(subject: Subject, base: BaseImage, image: PlatformImage) -> _Moved | None:
    tag = tag_reference(base.reference)
    assert tag is not None
    assert base.digest is not None
    versions = subject.context.base_versions
    now = versions.get(tag)
    if not isinstance(now, ImageFacts):
        why = str(now) if isinstance(now, InspectionError) else "it was not read in time"
        subject.report.error(
            RULE,
            f"cannot be checked against {RULE} of {subject.report.policy_name}: its base {tag} could not be read "
            f"({why}). It is checked again when the registry answers.",
            reason=InspectionReason.BASE_IMAGE_UNREADABLE,
        )
        return None
    current = now.for_platform(image.platform)
    current_digest = current.manifest_digest if current is not None else None
    if base.digest in (now.digest, current_digest):
        return None
    reference = digest_reference(base)
    then = versions.get(reference) if reference else None
    then_digest = base.digest
    if isinstance(then, ImageFacts):
        built_on = then.for_platform(image.platform)
        if built_on is not None:
            then_digest = built_on.manifest_digest
            if then_digest == current_digest:
                return None  # a new index, the same manifest for this platform: nothing moved here
    how = "by its OCI base-image annotations"
    if current_digest is None:
        return _Moved(tag, then_digest, f"{now.digest}, which no longer has {image.platform}", how)
    return _Moved(tag, then_digest, current_digest, how)


def _moved_by_layers(
    image: PlatformImage, candidates: Mapping[str, FactsOrError], history: Mapping[str, Sequence[ImageFacts]]
) -> _Moved | None:
    """An earlier version of a known base whose layers the image starts with, when no current base fits better."""
    current_prefix = 0
    for candidate in candidates.values():
        now = candidate.for_platform(image.platform) if isinstance(candidate, ImageFacts) else None
        if now is not None and _is_base_of(now, image):
            current_prefix = max(current_prefix, len(now.layers))
    best: tuple[int, _Moved] | None = None
    for reference, versions in history.items():
        now_facts = candidates.get(reference)
        if not isinstance(now_facts, ImageFacts):
            continue
        now = now_facts.for_platform(image.platform)
        for version in versions:
            then = version.for_platform(image.platform)
            if then is None or not _is_base_of(then, image) or len(then.layers) <= current_prefix:
                continue
            if now is not None and then.manifest_digest == now.manifest_digest:
                continue
            if best is None or len(then.layers) > best[0]:
                moved = _Moved(
                    _by_tag(reference),
                    then.manifest_digest,
                    now.manifest_digest if now is not None else f"{now_facts.digest}, which no longer has it",
                    f"found by {len(then.layers)} shared layers with a version slimguard read before",
                )
                best = (len(then.layers), moved)
    return best[1] if best else None


def _by_tag(reference: str) -> str:
    return tag_reference(reference) or reference


def _is_base_of(base: PlatformImage, image: PlatformImage) -> bool:
    theirs, own = base.diff_ids, image.diff_ids
    return bool(theirs) and len(theirs) < len(own) and own[: len(theirs)] == theirs


def _age(created: datetime | None, now: datetime) -> str:
    if created is None:
        return ""
    if created.tzinfo is None or now.tzinfo is None:
        return ""
    days = (now - created).days
    if days < 0:
        return ""
    if days == 0:
        return "Built today; "
    return f"Built {days} day{'' if days == 1 else 's'} ago; "


def _worst(groups: Sequence[DigestReports] | None) -> SeverityCounts | None:
    worst: SeverityCounts | None = None
    for group in groups or ():
        report = group.worst(ignore_unfixed=False, fresh_since=None)
        if report is None:
            continue
        counts = report.counts(ignore_unfixed=False)
        if worst is None or (counts.critical, counts.high) > (worst.critical, worst.high):
            worst = counts
    return worst


def _vulnerability_change(reports: Mapping[str, Sequence[DigestReports]], moved: _Moved) -> str:
    then, now = _worst(reports.get(moved.then)), _worst(reports.get(moved.now))
    if then is None or now is None:
        return ""
    return (
        f" Trivy Operator counts {then.critical} critical and {then.high} high vulnerabilities in the base it was "
        f"built on, {now.critical} and {now.high} in the current one ({now.critical - then.critical:+d} critical, "
        f"{now.high - then.high:+d} high on a rebuild)."
    )


__all__ = ["RULE", "check", "digest_reference", "reads", "versions_to_read"]
