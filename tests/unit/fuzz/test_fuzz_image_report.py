"""ImageReports round-trip every ImageFacts the registry and the layer walker can produce, and a report someone
else wrote (or a newer slimguard, or a broken one) is read back as facts or refused, never half-trusted."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.facts.content import ContentFacts, FoundTool, PackageCount, PackageManager
from slimguard.core.facts.image_facts import BaseImage, BaseImageMethod, ImageFacts, Layer, PlatformImage
from slimguard.core.facts.image_report import MAX_SLIMMER_BASES, GarbledReport, read_report, report_body
from slimguard.core.facts.media_types import OCI_INDEX, OCI_MANIFEST
from slimguard.core.model.platform import Platform

from .strategies import json_values, sha256_digest

text = st.text(max_size=30)
counts = st.integers(min_value=0, max_value=2**53)
platforms = st.builds(
    Platform,
    st.sampled_from(["linux", "windows"]),
    st.sampled_from(["amd64", "arm64", "arm", "s390x"]),
    st.none() | st.sampled_from(["v7", "v8"]),
)
bases = st.none() | st.builds(
    BaseImage, text, st.sampled_from(BaseImageMethod), st.none() | sha256_digest, st.none() | counts
)
layers = st.builds(
    Layer,
    digest=sha256_digest,
    size=counts,
    media_type=st.sampled_from(
        ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"]
    ),
    diff_id=st.none() | sha256_digest,
    uncompressed_size=st.none() | counts,
    created_by=st.none() | st.text(max_size=200),
    uncompressed_estimated=st.booleans(),
)
contents = st.builds(
    ContentFacts,
    packages=st.builds(
        PackageCount,
        count=st.none() | counts,
        managers=st.lists(st.sampled_from(PackageManager), max_size=3, unique=True).map(tuple),
        names=st.lists(text, max_size=20).map(tuple),
        unknown_reason=st.none() | text,
    ),
    tools=st.lists(st.builds(FoundTool, text, text, st.booleans(), st.integers(0, 300)), max_size=10).map(tuple),
    executables=st.lists(st.tuples(text, st.integers(0, 300)), max_size=30).map(tuple),
    efficiency=st.floats(min_value=0, max_value=1),
    wasted_bytes=counts,
    file_count=counts,
)
created = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))]),
)
platform_images = st.builds(
    PlatformImage,
    platform=platforms,
    manifest_digest=sha256_digest,
    config_digest=sha256_digest,
    config_size=counts,
    layers=st.lists(layers, max_size=8).map(tuple),
    user=text,
    labels=st.dictionaries(text, text, max_size=5),
    created=created,
    annotated_base=bases,
    content=st.none() | contents,
)
image_facts = st.builds(
    ImageFacts,
    digest=sha256_digest,
    media_type=st.sampled_from([OCI_MANIFEST, OCI_INDEX]),
    platforms=st.lists(platform_images, max_size=3).map(tuple),
    annotated_base=bases,
    listed_platforms=st.lists(platforms, max_size=4).map(tuple),
)
references = st.lists(st.text(min_size=1, max_size=40), max_size=5)


@st.composite
def slimmer_bases(draw: st.DrawFn) -> SlimmerBase:
    base_size = draw(st.integers(min_value=1, max_value=2**53))
    return SlimmerBase(
        policy=draw(text),
        image=draw(text),
        base=draw(text),
        base_size=base_size,
        alternative=draw(text),
        alternative_size=draw(st.integers(min_value=0, max_value=base_size - 1)),
        platform=draw(platforms),
    )


hint_lists = st.lists(slimmer_bases(), max_size=20, unique_by=lambda hint: hint.policy)
_KEYS = st.sampled_from(
    ["report", "format", "digest", "mediaType", "platforms", "platform", "os", "architecture", "layers", "size",
     "content", "packages", "count", "executables", "paths", "efficiency", "incomplete", "metadata", "name",
     "slimmerBases", "baseBytes", "alternativeBytes", "savedBytes"]
) | st.text(max_size=8)  # fmt: skip


@given(image_facts, references, hint_lists)
def test_facts_survive_a_report_and_its_json(facts: ImageFacts, seen: list[str], hints: list[SlimmerBase]) -> None:
    body = json.loads(json.dumps(report_body(facts, seen, hints)))  # what the apiserver stores is JSON
    stored = read_report(body)
    assert stored.facts == facts
    assert stored.references == tuple(dict.fromkeys(seen))
    assert stored.slimmer_bases == one_per_policy(hints)[:MAX_SLIMMER_BASES]
    left_out = len(hints) - MAX_SLIMMER_BASES
    assert stored.truncated == ((f"slimmerBases: {left_out} of {len(hints)} not kept",) if left_out > 0 else ())


def one_per_policy(hints: Sequence[SlimmerBase]) -> tuple[SlimmerBase, ...]:
    first: dict[str, SlimmerBase] = {}
    for hint in hints:
        first.setdefault(hint.policy, hint)
    return tuple(first[policy] for policy in sorted(first))


def _mutations(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with one node somewhere replaced by arbitrary JSON (or a key dropped)."""
    if isinstance(value, dict) and value and depth < 8 and (depth == 0 or draw(st.booleans())):
        key = draw(st.sampled_from(sorted(value)))
        changed = dict(value)
        if draw(st.integers(0, 4)) == 0:
            del changed[key]
        else:
            changed[key] = _mutations(draw, value[key], depth + 1)
        return changed
    if isinstance(value, list) and value and depth < 8 and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        changed_list = list(value)
        changed_list[index] = _mutations(draw, value[index], depth + 1)
        return changed_list
    return draw(json_values(_KEYS))


@st.composite
def garbled_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = json.loads(json.dumps(report_body(draw(image_facts), draw(references), draw(hint_lists))))
    mutated: dict[str, Any] = _mutations(draw, body)
    return mutated


@given(garbled_bodies())
def test_a_garbled_report_is_facts_or_refused_and_never_crashes(body: Any) -> None:
    original = copy.deepcopy(body)
    try:
        stored = read_report(body)
    except GarbledReport:
        return
    assert body == original  # reading never mutates what the watch handed over
    if stored.facts is not None:
        # Whatever was accepted says the same thing once written again: nothing half-read slips through.
        again = read_report(json.loads(json.dumps(report_body(stored.facts, stored.references, stored.slimmer_bases))))
        assert again.facts == stored.facts
        assert again.slimmer_bases == one_per_policy(stored.slimmer_bases)[:MAX_SLIMMER_BASES]


@given(json_values(_KEYS))
def test_any_json_at_all_is_refused_cleanly(value: Any) -> None:
    with contextlib.suppress(GarbledReport):
        read_report(value if isinstance(value, dict) else {"report": value})
