"""Slimmer bases: which tags of a base's repository are its slim variants, and which measured one to suggest.

Pure. The engine lists tags and measures candidates (compressed size per platform, from manifests only); this
module decides what is a candidate, which fits best and what it would save, so the choice is unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from slimguard.core.errors import InvalidReference
from slimguard.core.facts.bases import BaseOptions, SlimmerBase, image_bases, tag_reference
from slimguard.core.facts.image_facts import FactsOrError, ImageFacts
from slimguard.core.model.globs import image_matches_any
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.reference import ImageReference

SLIM_WORDS = ("slim", "alpine", "distroless", "minimal", "chiseled", "micro")
"""A tag part starting with one of these names a slim variant: 20-slim, 20-alpine3.20, 20-bookworm-slim."""
MAX_TAG_CANDIDATES = 8
"""Variants measured per base at most: each costs a manifest read or two."""


def variant_tags(tag: str, tags: Iterable[str], *, limit: int = MAX_TAG_CANDIDATES) -> tuple[str, ...]:
    """The tags of the same version as ``tag`` with a slim suffix, fewest parts first (``20-slim`` before
    ``20-bookworm-slim``), at most ``limit``.

    The version is what precedes the first ``-``: ``20`` of ``20-bookworm``, ``3.12.4`` of ``3.12.4-bookworm``,
    ``bookworm`` of ``bookworm`` (debian's ``bookworm-slim``).
    """
    version = tag.split("-", 1)[0]
    if not version:
        return ()
    own = set(tag.split("-")[1:])
    found = []
    for candidate in dict.fromkeys(tags):
        if candidate == tag or not candidate.startswith(f"{version}-"):
            continue
        parts = candidate.split("-")[1:]
        if not any(part.startswith(SLIM_WORDS) for part in parts):
            continue
        if set(parts) <= own:  # the base's own variant, or less of it: nothing slimmer by name
            continue
        found.append(candidate)
    found.sort(key=lambda name: (len(name.split("-")), len(name), name))
    return tuple(found[:limit])


def named_candidates(policy: ImagePolicy, base: str) -> tuple[str, ...]:
    """The alternatives ``policy`` names for ``base`` (every entry whose glob matches it)."""
    settings = policy.spec.slimmer_bases
    if settings is None:
        return ()
    try:
        parsed = ImageReference.parse(base)
    except InvalidReference:
        return ()
    return tuple(
        dict.fromkeys(
            candidate
            for entry in settings.alternatives
            if image_matches_any(parsed, [entry.base])
            for candidate in entry.candidates
        )
    )


def variant_references(base: str, tags: Iterable[str]) -> tuple[str, ...]:
    """The slim variants of ``base`` among its repository's ``tags``, as full references."""
    try:
        parsed = ImageReference.parse(base)
    except InvalidReference:
        return ()
    if parsed.tag is None:
        return ()
    return tuple(f"{parsed.registry}/{parsed.repository}:{tag}" for tag in variant_tags(parsed.tag, tags))


def best_slimmer_base(
    *,
    policy: ImagePolicy,
    image: str,
    options: BaseOptions,
    platforms: Sequence[Platform],
) -> SlimmerBase | None:
    """The candidate ``policy`` considers that is smaller than the base on every platform, smallest in total.

    A candidate not measured for one of the platforms does not fit (the image must run there too). The
    saving is stated for the platform where it is smallest: "would save ~X" is then true on every node.
    """
    settings = policy.spec.slimmer_bases
    if settings is None or not platforms:
        return None
    considered = (options.variants if settings.from_tags else ()) + named_candidates(policy, options.base.reference)
    base_sizes = {platform: options.base.size_for(platform) for platform in platforms}
    if any(size is None for size in base_sizes.values()):
        return None
    best: tuple[int, str, Platform, int, int] | None = None
    for reference in dict.fromkeys(considered):
        candidate = options.measured.get(reference)
        if candidate is None or reference == options.base.reference:
            continue
        savings = []
        for platform in platforms:
            size, base_size = candidate.size_for(platform), base_sizes[platform]
            if size is None or base_size is None or size >= base_size:
                break
            savings.append((base_size - size, platform, base_size, size))
        else:
            total = sum(size for _, _, _, size in savings)
            _, platform, base_size, size = min(savings, key=lambda item: (item[0], str(item[1])))
            if best is None or (total, reference) < (best[0], best[1]):
                best = (total, reference, platform, base_size, size)
    if best is None:
        return None
    _, reference, platform, base_size, size = best
    return SlimmerBase(
        policy=policy.name,
        image=image,
        base=options.base.reference,
        base_size=base_size,
        alternative=reference,
        alternative_size=size,
        platform=platform,
    )


@dataclass(frozen=True, slots=True)
class BaseQuery:
    """What to measure for one base: on which platforms, and which named candidates besides its tag variants."""

    platforms: frozenset[Platform]
    named: tuple[str, ...] = ()
    from_tags: bool = False

    def __or__(self, other: BaseQuery) -> BaseQuery:
        return BaseQuery(
            self.platforms | other.platforms,
            tuple(dict.fromkeys(self.named + other.named)),
            self.from_tags or other.from_tags,
        )


def slimmer_base_queries(
    images: Mapping[str, tuple[ImagePolicy, ...]],
    facts: Mapping[str, FactsOrError],
    candidates: Mapping[str, FactsOrError],
) -> dict[str, BaseQuery]:
    """Per base reference (by tag), what the policies asking for slimmer-base hints want measured.

    ``images`` maps each container image to the policies selecting it; only policies with ``slimmerBases``
    ask, and only for images whose facts are known.
    """
    queries: dict[str, BaseQuery] = {}
    for image, selecting in images.items():
        image_facts = facts.get(image)
        if not isinstance(image_facts, ImageFacts):
            continue
        for policy in selecting:
            settings = policy.spec.slimmer_bases
            if settings is None:
                continue
            platforms = policy.spec.rules.required_platforms
            for base in image_bases(image_facts, platforms, candidates):
                reference = tag_reference(base.reference)
                if reference is None:
                    continue
                query = BaseQuery(frozenset(platforms), named_candidates(policy, reference), settings.from_tags)
                queries[reference] = query if reference not in queries else queries[reference] | query
    return queries


def slimmer_base_for(
    policy: ImagePolicy,
    image: str,
    facts: ImageFacts,
    *,
    candidates: Mapping[str, FactsOrError],
    options: Mapping[str, BaseOptions],
) -> SlimmerBase | None:
    """The hint for one image under one policy: its base's best slimmer candidate, if one was measured."""
    if policy.spec.slimmer_bases is None:
        return None
    platforms = [p for p in policy.spec.rules.required_platforms if facts.for_platform(p) is not None]
    for base in image_bases(facts, platforms, candidates):
        reference = tag_reference(base.reference)
        measured = options.get(reference) if reference else None
        if measured is not None and (
            hint := best_slimmer_base(policy=policy, image=image, options=measured, platforms=platforms)
        ):
            return hint
    return None
