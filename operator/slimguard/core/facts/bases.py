"""An image's bases: found by its OCI annotation and by shared layers, and measured against slimmer ones.

Facts derived from facts, not rules: the base rules, requireCurrentBase, the slimmer-base hints and ``inspect``'s
report all read the bases found here, so they can never disagree on what an image was built on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from slimguard.core.errors import InvalidReference
from slimguard.core.facts.image_facts import BaseImage, BaseImageMethod, FactsOrError, ImageFacts, PlatformImage
from slimguard.core.model.platform import Platform
from slimguard.core.model.quantity import format_bytes
from slimguard.core.model.reference import ImageReference


def base_by_layers(image: PlatformImage, candidates: dict[str, PlatformImage]) -> BaseImage | None:
    """The candidate whose layers are the longest proper prefix of ``image``'s layers.

    Layer digests are content addresses, so an image built ``FROM`` a base starts with exactly the base's
    layers. A candidate equal to the whole image is the image itself, not its base.
    """
    best: BaseImage | None = None
    own = image.diff_ids
    for reference, candidate in candidates.items():
        theirs = candidate.diff_ids
        if not theirs or len(theirs) >= len(own) or own[: len(theirs)] != theirs:
            continue
        if best is None or len(theirs) > (best.shared_layers or 0):
            best = BaseImage(
                reference=reference,
                method=BaseImageMethod.LAYERS,
                digest=candidate.manifest_digest,
                shared_layers=len(theirs),
            )
    return best


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


def image_bases(
    facts: ImageFacts, platforms: Iterable[Platform], candidates: Mapping[str, FactsOrError]
) -> tuple[BaseImage, ...]:
    """Every base found for the image's platforms (by annotation and by shared layers), each reference once."""
    found: dict[str, BaseImage] = {}
    for platform in platforms:
        image = facts.for_platform(platform)
        if image is None:
            continue
        for base in detect_bases(facts, image, candidates):
            found.setdefault(base.reference, base)
    return tuple(found.values())


def tag_reference(reference: str) -> str | None:
    """A base's reference by tag (what "a slimmer variant" and "the tag now" are asked of), if it has one."""
    try:
        parsed = ImageReference.parse(reference)
    except InvalidReference:
        return None
    if parsed.tag is None:
        return None
    return f"{parsed.registry}/{parsed.repository}:{parsed.tag}"


def short_name(reference: str, base: str) -> str:
    """``node:20-alpine`` for a variant in the base's own repository; the whole reference otherwise."""
    try:
        parsed, of_base = ImageReference.parse(reference), ImageReference.parse(base)
    except InvalidReference:
        return reference
    if (parsed.registry, parsed.repository) != (of_base.registry, of_base.repository) or parsed.tag is None:
        return reference
    return f"{parsed.repository.rsplit('/', 1)[-1]}:{parsed.tag}"


@dataclass(frozen=True, slots=True)
class MeasuredImage:
    """An image's compressed size (layers + config, what a node pulls) per platform, read from manifests."""

    reference: str
    sizes: Mapping[Platform, int] = field(default_factory=dict)

    def size_for(self, platform: Platform) -> int | None:
        for listed, size in self.sizes.items():
            if listed.satisfies(platform):
                return size
        return None


@dataclass(frozen=True, slots=True)
class BaseOptions:
    """A base as its tag points now, measured, and every candidate measured for it (missing: unreadable)."""

    base: MeasuredImage
    variants: tuple[str, ...] = ()
    """References of the slim variants its tag list holds (those measured are in ``measured``)."""
    measured: Mapping[str, MeasuredImage] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SlimmerBase:
    """The hint: rebuilding FROM ``alternative`` instead of ``base`` would save ``saving`` bytes per pull."""

    policy: str
    image: str
    base: str
    base_size: int
    alternative: str
    alternative_size: int
    platform: Platform

    @property
    def saving(self) -> int:
        return self.base_size - self.alternative_size

    @property
    def text(self) -> str:
        return (
            f"base {self.base} ({format_bytes(self.base_size)}) → {short_name(self.alternative, self.base)} "
            f"({format_bytes(self.alternative_size)}) would save ~{format_bytes(self.saving)} per pull "
            f"({self.platform})"
        )

    def as_dict(self) -> dict[str, str | int]:
        return {
            "policy": self.policy,
            "image": self.image,
            "base": self.base,
            "baseBytes": self.base_size,
            "alternative": self.alternative,
            "alternativeBytes": self.alternative_size,
            "savedBytes": self.saving,
            "platform": str(self.platform),
        }
