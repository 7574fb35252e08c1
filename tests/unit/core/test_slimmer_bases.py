"""Slimmer bases: which tags are slim variants, which measured candidate is suggested, and how a denial says it."""

from __future__ import annotations

from core.builders import AMD64, APP, ARM64, MiB, annotated, facts, layers, platform_image, policy, verdict
from slimguard.core.evaluation.slimmer_bases import (
    best_slimmer_base,
    slimmer_base_queries,
    variant_references,
    variant_tags,
)
from slimguard.core.facts.bases import BaseOptions, MeasuredImage, short_name
from slimguard.core.facts.image_facts import BaseImage, BaseImageMethod

BOOKWORM = "registry.example.com/base/node:20-bookworm"
ALPINE = "registry.example.com/base/node:20-alpine"
SLIM = "registry.example.com/base/node:20-slim"
DISTROLESS = "gcr.io/distroless/nodejs20-debian12:latest"
HINTS = {"slimmerBases": {}}


def test_variants_are_the_same_version_with_a_slim_suffix_fewest_parts_first() -> None:
    tags = ["20-bookworm", "20-alpine", "20-bookworm-slim", "20-slim", "21-alpine", "20", "20-bullseye", "latest"]
    assert variant_tags("20-bookworm", tags) == ("20-slim", "20-alpine", "20-bookworm-slim")


def test_a_version_with_dots_and_a_release_name_base_find_their_variants() -> None:
    assert variant_tags("3.12.4-bookworm", ["3.12.4-slim-bookworm", "3.12.4-alpine3.20", "3.12-alpine"]) == (
        "3.12.4-alpine3.20",
        "3.12.4-slim-bookworm",
    )
    assert variant_tags("bookworm", ["bookworm-slim", "bookworm-backports", "trixie-slim"]) == ("bookworm-slim",)


def test_a_base_that_already_is_the_slim_variant_does_not_suggest_itself() -> None:
    assert variant_tags("20-slim", ["20-slim", "20-alpine"]) == ("20-alpine",)


def test_the_number_of_variants_measured_is_capped() -> None:
    tags = [f"20-alpine3.{n}" for n in range(30)]
    assert len(variant_tags("20-bookworm", tags, limit=8)) == 8


def test_variant_references_keep_the_base_registry_and_repository() -> None:
    assert variant_references(BOOKWORM, ["20-alpine"]) == (ALPINE,)
    assert variant_references("registry.example.com/base/node@sha256:" + "a" * 64, ["20-alpine"]) == ()


def _options(**measured: dict[object, int]) -> BaseOptions:
    refs = {"alpine": ALPINE, "slim": SLIM, "distroless": DISTROLESS}
    return BaseOptions(
        base=MeasuredImage(BOOKWORM, {AMD64: 380 * MiB, ARM64: 370 * MiB}),
        variants=(SLIM, ALPINE),
        measured={refs[name]: MeasuredImage(refs[name], sizes) for name, sizes in measured.items()},  # type: ignore[misc]
    )


def test_the_smallest_candidate_that_fits_every_platform_is_suggested_with_its_saving() -> None:
    options = _options(alpine={AMD64: 45 * MiB, ARM64: 44 * MiB}, slim={AMD64: 80 * MiB, ARM64: 79 * MiB})
    hint = best_slimmer_base(policy=policy(**HINTS), image=APP, options=options, platforms=[AMD64])
    assert hint is not None
    assert (hint.alternative, hint.base_size, hint.alternative_size, hint.saving) == (
        ALPINE,
        380 * MiB,
        45 * MiB,
        335 * MiB,
    )
    assert hint.text == (
        f"base {BOOKWORM} (380 MiB) → node:20-alpine (45 MiB) would save ~335 MiB per pull (linux/amd64)"
    )


def test_a_candidate_missing_a_required_platform_does_not_fit() -> None:
    options = _options(alpine={AMD64: 45 * MiB}, slim={AMD64: 80 * MiB, ARM64: 79 * MiB})
    hint = best_slimmer_base(
        policy=policy(**HINTS, rules={"maxLayers": 100, "platforms": ["linux/amd64", "linux/arm64"]}),
        image=APP,
        options=options,
        platforms=[AMD64, ARM64],
    )
    assert hint is not None
    assert hint.alternative == SLIM
    assert (hint.platform, hint.saving) == (ARM64, 291 * MiB)  # the smaller of the two platforms' savings


def test_no_candidate_smaller_than_the_base_gives_no_hint() -> None:
    options = _options(alpine={AMD64: 400 * MiB, ARM64: 400 * MiB})
    assert best_slimmer_base(policy=policy(**HINTS), image=APP, options=options, platforms=[AMD64]) is None


def test_a_named_candidate_in_another_repository_is_chosen_when_smaller_and_tags_can_be_ignored() -> None:
    named = {"slimmerBases": {"alternatives": [{"base": "*/base/node:20-*", "candidates": [DISTROLESS]}]}}
    options = _options(alpine={AMD64: 45 * MiB, ARM64: 45 * MiB}, distroless={AMD64: 40 * MiB, ARM64: 40 * MiB})
    hint = best_slimmer_base(policy=policy(**named), image=APP, options=options, platforms=[AMD64])
    assert hint is not None
    assert hint.alternative == DISTROLESS
    assert DISTROLESS in hint.text  # another repository: named in full
    only_named = {"slimmerBases": {"fromTags": False, "alternatives": named["slimmerBases"]["alternatives"]}}
    options = _options(alpine={AMD64: 10 * MiB, ARM64: 10 * MiB}, distroless={AMD64: 40 * MiB, ARM64: 40 * MiB})
    hint = best_slimmer_base(policy=policy(**only_named), image=APP, options=options, platforms=[AMD64])
    assert hint is not None
    assert hint.alternative == DISTROLESS


def test_short_names_are_used_only_within_the_base_repository() -> None:
    assert short_name(ALPINE, BOOKWORM) == "node:20-alpine"
    assert short_name(DISTROLESS, BOOKWORM) == DISTROLESS


# --- in a verdict -------------------------------------------------------------------------------------------


def _fat_on_bookworm() -> dict[str, object]:
    return {APP: facts(platform_image(*layers("app", 2, 200 * MiB), base=annotated(BOOKWORM)))}


def test_a_size_violation_names_the_slimmer_base_and_the_verdict_carries_the_hint() -> None:
    fat = policy("slim", rules={"maxCompressedSize": "200Mi"}, **HINTS)
    options = {BOOKWORM: _options(alpine={AMD64: 45 * MiB, ARM64: 45 * MiB})}
    result = verdict(fat, facts_by_image=_fat_on_bookworm(), base_options=options)  # type: ignore[arg-type]
    (finding,) = result.violations
    assert finding.message.endswith(
        f"Slimmer base: base {BOOKWORM} (380 MiB) → node:20-alpine (45 MiB) would save ~335 MiB per pull (linux/amd64)."
    )
    (hint,) = result.hints
    assert (hint.policy, hint.image, hint.saving) == ("slim", APP, 335 * MiB)


def test_a_policy_without_slimmer_bases_gives_no_hint() -> None:
    fat = policy("slim", rules={"maxCompressedSize": "200Mi"})
    options = {BOOKWORM: _options(alpine={AMD64: 45 * MiB, ARM64: 45 * MiB})}
    result = verdict(fat, facts_by_image=_fat_on_bookworm(), base_options=options)  # type: ignore[arg-type]
    assert result.hints == ()
    assert "Slimmer base" not in result.violations[0].message


def test_bases_to_measure_are_asked_by_tag_for_the_policies_that_want_hints() -> None:
    pinned = BaseImage(f"{BOOKWORM}@sha256:{'b' * 64}", BaseImageMethod.ANNOTATION)
    image_facts = {APP: facts(platform_image(base=pinned))}
    named = {"slimmerBases": {"alternatives": [{"base": "*/node:20-bookworm", "candidates": [DISTROLESS]}]}}
    queries = slimmer_base_queries({APP: (policy("a", **named), policy("b"))}, image_facts, {})
    assert list(queries) == [BOOKWORM]
    assert queries[BOOKWORM].named == (DISTROLESS,)
    assert queries[BOOKWORM].from_tags
    assert slimmer_base_queries({APP: (policy("b"),)}, image_facts, {}) == {}
