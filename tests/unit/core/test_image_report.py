"""An ImageReport per image digest: named after it, bounded in size, and never read into a smaller truth."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.facts.content import ContentFacts, FoundTool, PackageCount, PackageManager
from slimguard.core.facts.image_report import (
    MAX_EXECUTABLES,
    MAX_LAYERS,
    MAX_REFERENCES,
    MAX_REPORT_BYTES,
    MAX_SLIMMER_BASES,
    GarbledReport,
    merged,
    read_report,
    report_body,
    report_fingerprint,
    report_name,
)

from .builders import AMD64, ARM64, MiB, digest, facts, layer, platform_image

FAT = "registry.example.com/shop/api:1.0-fat"
NODE = "registry.example.com/base/node:20-bookworm"


def slimmer(policy: str = "slim", *, alternative: str = "registry.example.com/base/node:20-alpine") -> SlimmerBase:
    return SlimmerBase(policy, FAT, NODE, 380 * MiB, alternative, 45 * MiB, AMD64)


def content(*, executables: int = 2, packages: int | None = 173, names: int = 3) -> ContentFacts:
    return ContentFacts(
        packages=PackageCount(packages, (PackageManager.DPKG,), tuple(f"pkg-{n}" for n in range(names))),
        tools=(
            FoundTool("compilers", "usr/bin/gcc-12", by_package=False, layer_index=1),
            FoundTool("compilers", "build-essential", by_package=True, layer_index=1),
            FoundTool("shells", "bin/bash", by_package=False, layer_index=0),
        ),
        executables=tuple((f"usr/bin/tool-{n:05d}", n % 3) for n in range(executables)),
        efficiency=0.8731,
        wasted_bytes=52_428_800,
        file_count=10_412,
    )


def with_content(image_content: ContentFacts | None = None) -> Any:
    image = replace(platform_image(layer("a", 100 * MiB), layer("b", 112 * MiB)), content=image_content or content())
    return facts(image)


def roundtrip(body: dict[str, Any]) -> Any:
    return read_report(json.loads(json.dumps(body)))


def test_a_report_is_named_after_its_digest_and_holds_it_whole() -> None:
    image = facts()
    body = report_body(image, [FAT])
    assert body["metadata"]["name"] == image.digest.replace(":", "-")
    assert body["report"]["digest"] == image.digest
    assert len(body["metadata"]["name"]) <= 253


def test_a_digest_that_makes_no_valid_name_gets_a_hashed_one() -> None:
    odd = "sha512:" + "A" * 300
    name = report_name(odd)
    assert name.startswith("digest-")
    assert len(name) <= 253
    assert name == report_name(odd) != report_name(odd + "B")


def test_the_summary_is_what_kubectl_get_shows() -> None:
    summary = report_body(with_content(), [FAT])["report"]["summary"]
    assert summary == {
        "compressedBytes": 212 * MiB,
        "compressedSize": "212 MiB",
        "packages": "173",
        "tools": "compilers(2),shells(1)",
        "efficiency": "0.8731",
    }
    assert report_body(with_content(content(packages=None)), [FAT])["report"]["summary"]["packages"] == "unknown"
    assert "packages" not in report_body(facts(), [FAT])["report"]["summary"]  # layers not read: nothing claimed


def test_references_are_kept_in_order_once_each_and_bounded() -> None:
    seen = [FAT, FAT, *(f"registry.example.com/shop/api:{n}" for n in range(30))]
    stored = roundtrip(report_body(facts(), seen))
    assert stored.references[0] == FAT
    assert len(stored.references) == MAX_REFERENCES
    assert any(cut.startswith("references:") for cut in stored.truncated)
    assert stored.facts == facts()  # fewer references cut nothing a verdict reads


def test_too_many_executables_leave_the_content_unknown_not_partial() -> None:
    stored = roundtrip(report_body(with_content(content(executables=MAX_EXECUTABLES + 1)), [FAT]))
    assert stored.facts is not None
    assert stored.facts.platforms[0].content is None  # a path glob could match one left out
    assert stored.facts.platforms[0].layers == with_content().platforms[0].layers
    assert any("executables" in cut for cut in stored.truncated)


def test_an_image_with_more_layers_than_kept_is_shown_but_not_used_for_verdicts() -> None:
    many = facts(platform_image(*(layer(f"l{n}", 1024) for n in range(MAX_LAYERS + 1))))
    body = report_body(many, [FAT])
    assert len(body["report"]["platforms"][0]["layers"]) == MAX_LAYERS
    stored = roundtrip(body)
    assert stored.facts is None
    assert body["report"]["summary"]["compressedBytes"] == many.platforms[0].compressed_size


def test_long_instructions_are_shortened_and_said_so() -> None:
    command = "RUN " + "apt-get install -y x && " * 200
    image = facts(platform_image(replace(layer("a"), created_by=command)))
    stored = roundtrip(report_body(image, [FAT]))
    assert stored.facts is not None
    kept = stored.facts.platforms[0].layers[0].created_by
    assert kept is not None
    assert len(kept) <= 1024
    assert kept.startswith("RUN apt-get")
    assert "…" in kept
    assert stored.truncated == ("platforms[0].layers: 1 createdBy shortened to 1024 characters",)


def test_a_report_stays_within_its_byte_budget_whatever_the_image() -> None:
    wide = content(executables=MAX_EXECUTABLES, names=4000)
    huge_paths = replace(wide, executables=tuple(("x" * 200 + str(n), 0) for n in range(MAX_EXECUTABLES)))
    image = replace(platform_image(*(layer(f"l{n}") for n in range(MAX_LAYERS))), content=huge_paths)
    many = facts(*(replace(image, platform=replace(AMD64, variant=f"v{n}")) for n in range(4)))
    body = report_body(many, [FAT])
    assert len(json.dumps(body["report"])) <= MAX_REPORT_BYTES
    stored = roundtrip(body)
    assert stored.facts is not None
    assert any(platform.content is None for platform in stored.facts.platforms)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r.update(format=99), "format"),
        (lambda r: r.update(digest=digest("other")), "another name"),
        (lambda r: r.update(digest="latest"), "names no digest"),
        (lambda r: r["platforms"][0].update(configSize=-1), "count"),
        (lambda r: r["platforms"][0]["layers"][0].update(size="12"), "count"),
        (lambda r: r["platforms"][0]["content"].update(efficiency=1.5), "between 0 and 1"),
        (lambda r: r["platforms"][0]["content"]["executables"]["layers"].pop(), "as many paths"),
        (lambda r: r["platforms"][0]["content"]["packages"].update(managers=["pacman"]), "garbled"),
        (lambda r: r.pop("platforms") and r.update(platforms={"a": 1}), "list"),
        (lambda r: r["slimmerBases"][0].update(savedBytes=1), "does not add up"),
        (lambda r: r["slimmerBases"][0].update(alternativeBytes=400 * MiB, savedBytes=0), "does not add up"),
        (lambda r: r["slimmerBases"][0].update(baseBytes="380 MiB"), "count"),
        (lambda r: r["slimmerBases"][0].update(platform="linux"), "garbled"),
        (lambda r: r["slimmerBases"][0].pop("alternative"), "garbled"),
        (lambda r: r.update(slimmerBases={"slim": {}}), "list"),
    ],
)
def test_a_garbled_report_is_refused_with_a_reason(change: Any, why: str) -> None:
    body = json.loads(json.dumps(report_body(with_content(), [FAT], [slimmer()])))
    change(body["report"])
    with pytest.raises(GarbledReport, match=why):
        read_report(body)


def test_unknown_fields_from_a_newer_writer_are_ignored() -> None:
    body = json.loads(json.dumps(report_body(with_content(), [FAT])))
    body["report"]["sbom"] = {"spdx": "..."}
    body["report"]["platforms"][0]["content"]["licenses"] = ["MIT"]
    assert read_report(body).facts == with_content()


def test_what_is_learned_later_is_added_never_lost() -> None:
    amd = platform_image(layer("a", uncompressed=None), platform=AMD64)
    arm = platform_image(layer("b"), platform=ARM64)
    first = facts(amd, listed=[AMD64, ARM64])
    # Later: the arm64 platform was read (another policy), and amd64's uncompressed sizes and content.
    richer_amd = replace(amd, layers=(layer("a"),), content=content())
    later = replace(first, platforms=(arm,))
    combined = merged(first, later)
    assert {image.platform for image in combined.platforms} == {AMD64, ARM64}
    assert merged(combined, replace(first, platforms=(richer_amd,))).for_platform(AMD64) == richer_amd
    # A webhook's reading (no content, no uncompressed sizes) never makes a report poorer.
    assert merged(replace(first, platforms=(richer_amd,)), first).for_platform(AMD64) == richer_amd


def test_a_slimmer_base_hint_is_kept_as_the_annotation_gives_it_and_read_back() -> None:
    hint = slimmer()
    body = report_body(with_content(), [FAT], [hint])
    assert body["report"]["slimmerBases"] == [hint.as_dict()]
    assert body["report"]["slimmerBases"][0]["savedBytes"] == 335 * MiB
    assert body["report"]["summary"]["saves"] == "335 MiB"
    stored = roundtrip(body)
    assert stored.slimmer_bases == (hint,)
    assert stored.facts == with_content()  # a hint is shown, never read into a verdict


def test_an_image_without_hints_has_no_slimmer_bases_field_and_saves_nothing() -> None:
    report = report_body(with_content(), [FAT])["report"]
    assert "slimmerBases" not in report
    assert "saves" not in report["summary"]
    assert roundtrip(report_body(with_content(), [FAT])).slimmer_bases == ()


def test_hints_are_one_per_policy_in_policy_order_so_the_same_hints_make_the_same_report() -> None:
    first = report_body(facts(), [FAT], [slimmer("b"), slimmer("a"), slimmer("b", alternative="x/y:z")])
    second = report_body(facts(), [FAT], [slimmer("a"), slimmer("b")])
    assert first["report"] == second["report"]
    assert [hint["policy"] for hint in first["report"]["slimmerBases"]] == ["a", "b"]


def test_hints_beyond_the_cap_are_left_out_and_said_so() -> None:
    many = [slimmer(f"policy-{n:02d}") for n in range(MAX_SLIMMER_BASES + 3)]
    stored = roundtrip(report_body(facts(), [FAT], many))
    assert len(stored.slimmer_bases) == MAX_SLIMMER_BASES
    assert f"slimmerBases: 3 of {MAX_SLIMMER_BASES + 3} not kept" in stored.truncated
    assert stored.facts == facts()  # the cut touches nothing a rule reads


def test_what_is_read_back_keeps_the_facts_and_a_fingerprint_not_the_report_itself() -> None:
    """Thousands of reports are held by each component: the facts say what the report says, and whether writing
    again would change anything is told by a fingerprint of it, whatever order its keys came back in."""
    body = report_body(with_content(), [FAT])
    stored = roundtrip(body)
    assert not any(isinstance(value, dict) for value in vars_of(stored)), "no part of the body is kept as read"
    reordered = json.loads(json.dumps(body["report"], sort_keys=True))
    assert list(reordered) != list(body["report"])
    assert stored.fingerprint == report_fingerprint(reordered) == report_fingerprint(body["report"])
    assert stored.fingerprint != report_fingerprint({**body["report"], "references": [FAT, NODE]})


def vars_of(stored: Any) -> list[Any]:
    return [getattr(stored, name) for name in stored.__slots__]
