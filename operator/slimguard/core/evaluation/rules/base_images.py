"""``allowedBaseImages`` and ``deniedBaseImages``: the base found by OCI annotation and by shared layers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slimguard.core.errors import InspectionError, InspectionReason, InvalidReference
from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Reporter, Subject
from slimguard.core.facts.bases import detect_bases
from slimguard.core.facts.image_facts import BaseImage, FactsNeeds
from slimguard.core.model.globs import image_matches_any
from slimguard.core.model.policy import Rules
from slimguard.core.model.reference import ImageReference

_FOUND = (
    "found by its OCI base-image annotations or by the layers it shares with a base the policy names "
    "(allowedBaseImages, deniedBaseImages, knownBaseImages)"
)
ALLOWED_BASE_IMAGES = PolicyRule(
    "allowedBaseImages",
    summary="The image is built on an allowed base",
    description=f"The image's base, {_FOUND}, matches allowedBaseImages.",
    fix="Rebuild FROM an allowed base, or list the base in spec.knownBaseImages.",
)
DENIED_BASE_IMAGES = PolicyRule(
    "deniedBaseImages",
    summary="The image is not built on a denied base",
    description=f"The image's base, {_FOUND}, matches none of deniedBaseImages.",
    fix="Rebuild FROM an allowed base.",
)


def reads(rules: Rules) -> Reads:
    """The image, and the bases the policies name: an image's base is found by annotation or by shared layers."""
    return Reads(FactsNeeds(frozenset(rules.required_platforms)), bases=True) if rules.has_base_rule else NOTHING


def check(subject: Subject) -> None:
    rules = subject.rules
    if not rules.has_base_rule:
        return
    assert subject.facts is not None
    candidates = subject.context.base_candidates
    unreadable = {ref: error for ref, error in candidates.items() if isinstance(error, InspectionError)}
    for image in subject.images:
        bases = detect_bases(subject.facts, image, candidates)
        _check_base(subject.report, rules, subject.reference, bases, unreadable)


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
    report: Reporter,
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
            DENIED_BASE_IMAGES.name,
            f"is built on {_describe_all(denied_bases)}, which {report.policy_name} denies ({', '.join(denied)}). "
            f"Rebuild FROM an allowed base{_suggest(allowed)}.",
            limit=", ".join(denied),
            actual=", ".join(base.reference for base in denied_bases),
        )
    if itself_denied and not denied_bases:
        report.violation(
            DENIED_BASE_IMAGES.name,
            f"is a base image {report.policy_name} denies ({', '.join(denied)}). "
            f"Build your own image FROM an allowed base{_suggest(allowed)}.",
            limit=", ".join(denied),
            actual=str(reference),
        )
    decided = bool(denied_bases) or itself_denied
    if denied and not decided and unreadable:
        # A base the layer comparison could not see might be the denied one: undecided is not compliant.
        _undecided(report, DENIED_BASE_IMAGES.name, unreadable)
    if allowed is None or image_matches_any(reference, allowed) or decided:
        return  # a denied base is reported once, as denied, not again as "not allowed"
    if unreadable:
        _undecided(report, ALLOWED_BASE_IMAGES.name, unreadable)
    elif not bases:
        report.violation(
            ALLOWED_BASE_IMAGES.name,
            f"has a base image slimguard could not determine (no org.opencontainers.image.base.name annotation, "
            f"and no known base image shares its layers); {report.policy_name} allows only {', '.join(allowed)}. "
            "Build with the OCI base-image annotations, or list the base in spec.knownBaseImages.",
            limit=", ".join(allowed),
            actual="unknown",
        )
    elif not any(_base_matches(base, allowed) for base in bases):
        report.violation(
            ALLOWED_BASE_IMAGES.name,
            f"is built on {_describe_all(bases)}, which is not a base {report.policy_name} allows "
            f"({', '.join(allowed)}). Rebuild FROM an allowed base{_suggest(allowed)}.",
            limit=", ".join(allowed),
            actual=bases[0].reference,
        )


def _undecided(report: Reporter, rule: str, unreadable: Mapping[str, InspectionError]) -> None:
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
        reason=InspectionReason.BASE_IMAGE_UNREADABLE,
    )


def _suggest(allowed: Sequence[str] | None) -> str:
    return f" such as {allowed[0]}" if allowed else ""
