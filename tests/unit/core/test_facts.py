"""What an image is made of: sizes, platforms, and the base it was built on."""

from __future__ import annotations

import pytest

from slimguard.core.facts.bases import base_by_layers
from slimguard.core.facts.image_facts import BaseImageMethod
from slimguard.core.model.platform import Platform

from .builders import AMD64, ARM64, MiB, facts, layer, layers, platform_image


def test_the_compressed_size_is_what_a_node_pulls_layers_plus_config() -> None:
    image = platform_image(layer("a", 10 * MiB), layer("b", 5 * MiB), config_size=1234)
    assert image.compressed_size == 15 * MiB + 1234


def test_the_uncompressed_size_is_the_sum_of_the_layers_unpacked() -> None:
    image = platform_image(layer("a", MiB, uncompressed=3 * MiB), layer("b", MiB, uncompressed=4 * MiB))
    assert image.uncompressed_size == 7 * MiB


def test_the_uncompressed_size_is_unknown_when_any_layer_is_unknown() -> None:
    assert platform_image(layer("a"), layer("b", uncompressed=None)).uncompressed_size is None


def test_layers_without_a_diff_id_are_identified_by_their_digest() -> None:
    plain = layer("a")
    image = platform_image(type(plain)(digest=plain.digest, size=1, media_type=plain.media_type))
    assert image.diff_ids == (plain.digest,)


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_platforms_parse_from_os_architecture_and_optional_variant(text: str, platform: Platform) -> None:
    assert Platform.parse(text) == platform
    assert str(platform) == text


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm/v7/extra", ""])
def test_malformed_platforms_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="os/architecture"):
        Platform.parse(text)


@pytest.mark.parametrize(
    ("offered", "required", "ok"),
    [
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm/v7", "linux/arm", True),
        ("linux/arm", "linux/arm/v7", True),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/amd64", "linux/amd64/v1", True),
        ("linux/amd64", "linux/amd64/v3", False),
        ("linux/arm64", "linux/amd64", False),
        ("windows/amd64", "linux/amd64", False),
    ],
)
def test_a_platform_satisfies_a_requirement_the_way_container_runtimes_match_variants(
    offered: str, required: str, ok: bool
) -> None:
    assert Platform.parse(offered).satisfies(Platform.parse(required)) is ok


def test_an_index_serves_the_image_of_the_platform_asked_for() -> None:
    amd, arm = platform_image(platform=AMD64), platform_image(platform=ARM64)
    index = facts(amd, arm)
    assert index.is_index
    assert index.for_platform(Platform("linux", "arm64")) is arm
    assert index.for_platform(Platform("linux", "s390x")) is None


def test_an_index_names_every_platform_it_lists_even_those_not_fetched() -> None:
    index = facts(platform_image(platform=AMD64), listed=(AMD64, ARM64, Platform("linux", "s390x")))
    assert index.platform_names == ("linux/amd64", "linux/arm64/v8", "linux/s390x")
    single = facts(platform_image(platform=ARM64))
    assert not single.is_index
    assert single.platform_names == ("linux/arm64/v8",)


def test_the_base_found_by_layers_is_the_longest_matching_prefix() -> None:
    debian = layers("debian", 1)
    node = (*debian, *layers("node", 2))
    app = platform_image(*node, *layers("app", 2))
    found = base_by_layers(
        app, {"debian:bookworm": platform_image(*debian), "node:20": platform_image(*node, seed="node")}
    )
    assert found is not None
    assert (found.reference, found.method, found.shared_layers) == ("node:20", BaseImageMethod.LAYERS, 3)


def test_an_image_is_not_its_own_base_and_a_non_prefix_is_not_a_base() -> None:
    app = platform_image(*layers("app", 3))
    assert base_by_layers(app, {"itself": platform_image(*app.layers, seed="copy")}) is None
    assert base_by_layers(app, {"other": platform_image(*layers("other", 1))}) is None
    assert base_by_layers(app, {"shuffled": platform_image(app.layers[1])}) is None
