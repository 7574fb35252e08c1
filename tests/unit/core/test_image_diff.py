"""Two builds of an image compared, as ``slimguard diff`` and the growth rules see them: layers matched by digest,
then by the instruction that made them; sizes and their change per platform; bases; packages and tools."""

from __future__ import annotations

from dataclasses import replace

from core.builders import AMD64, ARM64, MiB, annotated, facts, layer, platform_image
from slimguard.core.facts.content import ContentFacts, FoundTool, PackageCount
from slimguard.core.facts.image_diff import LayerStatus, diff_images, match_layers
from slimguard.core.facts.image_facts import Layer

BASE = "registry.example.com/base/debian:12"


def step(seed: str, size: int, created_by: str) -> Layer:
    return replace(layer(seed, size), created_by=created_by)


OS = step("os", 30 * MiB, "ADD rootfs.tar.gz / # buildkit")
DEPS = step("deps", 10 * MiB, "RUN /bin/sh -c pip install -r requirements.txt # buildkit")
APP_V1 = step("app-1", 2 * MiB, "COPY . /app # buildkit")
APP_V2 = step("app-2", 3 * MiB, "COPY . /app # buildkit")
COMPILERS = step("gcc", 40 * MiB, "RUN /bin/sh -c apt-get install -y gcc # buildkit")


def statuses(changes: tuple) -> list[tuple[str, str | None]]:
    return [(change.status.value, change.created_by) for change in changes]


def test_an_unchanged_rebuild_is_every_layer_the_same_and_no_growth() -> None:
    image = facts(platform_image(OS, DEPS, APP_V1))
    (platform,) = diff_images(image, image).platforms
    assert {change.status for change in platform.layers} == {LayerStatus.SAME}
    assert platform.compressed_delta == 0
    assert platform.growing_layers() == ()


def test_a_layer_from_a_new_instruction_is_added_and_a_rebuilt_step_is_changed_with_its_size_change() -> None:
    old = facts(platform_image(OS, DEPS, APP_V1))
    new = facts(platform_image(OS, COMPILERS, DEPS, APP_V2))
    (platform,) = diff_images(old, new).platforms
    assert statuses(platform.layers) == [
        ("same", OS.created_by),
        ("added", COMPILERS.created_by),
        ("same", DEPS.created_by),
        ("changed", APP_V2.created_by),
    ]
    added, changed = platform.layers[1], platform.layers[3]
    assert (added.size_delta, added.new_index, added.old_index) == (40 * MiB, 1, None)
    assert (changed.size_delta, changed.new_index, changed.old_index) == (1 * MiB, 3, 2)
    assert platform.compressed_delta == 41 * MiB
    assert platform.uncompressed_delta == 82 * MiB  # the builders' layers unpack to twice their size
    assert [change.created_by for change in platform.growing_layers()] == [COMPILERS.created_by, APP_V2.created_by]


def test_a_removed_layer_is_listed_where_it_was_and_its_bytes_count_as_saved() -> None:
    old = facts(platform_image(OS, COMPILERS, DEPS, APP_V1))
    new = facts(platform_image(OS, DEPS, APP_V1))
    (platform,) = diff_images(old, new).platforms
    assert statuses(platform.layers) == [
        ("same", OS.created_by),
        ("removed", COMPILERS.created_by),
        ("same", DEPS.created_by),
        ("same", APP_V1.created_by),
    ]
    assert platform.layers[1].size_delta == -40 * MiB
    assert platform.compressed_delta == -40 * MiB
    assert platform.growing_layers() == ()


def test_layers_without_history_are_matched_by_digest_only() -> None:
    old_layer, new_layer = layer("one"), layer("two")  # no created_by: nothing says they are the same step
    assert statuses(match_layers((old_layer,), (new_layer,))) == [("added", None), ("removed", None)]


def test_a_repeated_instruction_is_matched_in_order() -> None:
    first, second = step("a", MiB, "RUN /bin/sh -c make"), step("b", MiB, "RUN /bin/sh -c make")
    rebuilt_first, rebuilt_second = (
        step("c", 2 * MiB, first.created_by or ""),
        step("d", 3 * MiB, "RUN /bin/sh -c make"),
    )
    changes = match_layers((first, second), (rebuilt_first, rebuilt_second))
    assert [(c.old_index, c.new_index, c.size_delta) for c in changes] == [(0, 0, MiB), (1, 1, 2 * MiB)]


def test_platforms_are_compared_each_with_its_own_and_one_only_the_new_image_has_is_all_added() -> None:
    old = facts(platform_image(OS, APP_V1, platform=AMD64))
    new = facts(platform_image(OS, APP_V2, platform=AMD64), platform_image(OS, APP_V2, platform=ARM64, seed="arm"))
    amd, arm = diff_images(old, new).platforms
    assert (amd.platform, arm.platform) == (AMD64, ARM64)
    assert amd.compressed_delta == MiB
    assert arm.old is None
    assert {change.status for change in arm.layers} == {LayerStatus.ADDED}
    assert arm.compressed_delta == arm.new.compressed_size  # type: ignore[union-attr]


def test_the_base_of_each_is_found_and_a_new_base_is_a_change() -> None:
    old = facts(platform_image(OS, APP_V1, base=annotated(BASE)))
    same_base = facts(platform_image(OS, APP_V2, base=annotated(BASE)))
    new_base = facts(platform_image(OS, APP_V2, base=annotated("registry.example.com/base/debian:13")))
    (unchanged,) = diff_images(old, same_base).platforms
    (changed,) = diff_images(old, new_base).platforms
    assert [base.reference for base in unchanged.new_bases] == [BASE]
    assert not unchanged.base_changed
    assert changed.base_changed


def test_a_base_is_recognised_by_shared_layers_among_the_candidates() -> None:
    base = facts(platform_image(OS, seed="base"))
    old, new = facts(platform_image(OS, APP_V1)), facts(platform_image(OS, APP_V2))
    (platform,) = diff_images(old, new, base_candidates={BASE: base}).platforms
    assert [b.reference for b in platform.old_bases] == [BASE] == [b.reference for b in platform.new_bases]
    assert not platform.base_changed


def content(packages: tuple[str, ...], tools: tuple[FoundTool, ...] = (), wasted: int = 0) -> ContentFacts:
    return ContentFacts(
        packages=PackageCount(len(packages), names=packages),
        tools=tools,
        executables=(),
        efficiency=1.0,
        wasted_bytes=wasted,
        file_count=10,
    )


def test_with_contents_read_packages_added_and_removed_tools_that_appeared_and_the_change_in_waste() -> None:
    gcc = FoundTool("compilers", "usr/bin/gcc-12", by_package=False, layer_index=1)
    old = facts(replace(platform_image(OS, APP_V1), content=content(("libc6", "vim"), wasted=MiB)))
    new = facts(replace(platform_image(OS, COMPILERS, APP_V1), content=content(("gcc-12", "libc6"), (gcc,), 5 * MiB)))
    (platform,) = diff_images(old, new).platforms
    assert platform.content is not None
    assert platform.content.packages_added == ("gcc-12",)
    assert platform.content.packages_removed == ("vim",)
    assert platform.content.tools_appeared == ("compilers: usr/bin/gcc-12",)
    assert platform.content.wasted_bytes_delta == 4 * MiB


def test_without_contents_read_no_content_change_is_claimed() -> None:
    (platform,) = diff_images(facts(platform_image(OS)), facts(platform_image(OS, APP_V1))).platforms
    assert platform.content is None


def test_the_diff_json_shape_is_fixed() -> None:
    from slimguard.core.reports.image_diff import diff_document

    old = facts(platform_image(OS, APP_V1, base=annotated(BASE)))
    new = facts(platform_image(OS, COMPILERS, APP_V1, base=annotated(BASE)))
    document = diff_document(
        diff_images(old, new), old_image="app:1", new_image="app:2", source="registry", version="1.2.3", content=False
    )
    (platform,) = document.pop("platforms")
    assert document == {
        "schemaVersion": 1,
        "tool": {"name": "slimguard", "version": "1.2.3"},
        "command": "diff",
        "source": "registry",
        "content": False,
        "old": {"image": "app:1", "digest": old.digest},
        "new": {"image": "app:2", "digest": new.digest},
    }
    same, added, _ = platform.pop("layers")
    assert platform == {
        "platform": "linux/amd64",
        "old": {
            "manifestDigest": old.platforms[0].manifest_digest,
            "compressedSize": 32 * MiB,
            "uncompressedSize": 64 * MiB,
            "layerCount": 2,
        },
        "new": {
            "manifestDigest": new.platforms[0].manifest_digest,
            "compressedSize": 72 * MiB,
            "uncompressedSize": 144 * MiB,
            "layerCount": 3,
        },
        "compressedDelta": 40 * MiB,
        "uncompressedDelta": 80 * MiB,
        "bases": {
            "old": [{"reference": BASE, "method": "annotation", "digest": None}],
            "new": [{"reference": BASE, "method": "annotation", "digest": None}],
            "changed": False,
        },
        "content": None,
    }
    assert same["status"] == "same"
    assert added == {
        "status": "added",
        "instruction": "RUN apt-get install -y gcc",
        "createdBy": COMPILERS.created_by,
        "oldIndex": None,
        "newIndex": 1,
        "oldDigest": None,
        "newDigest": COMPILERS.digest,
        "oldSize": None,
        "newSize": 40 * MiB,
        "sizeDelta": 40 * MiB,
        "uncompressedDelta": 80 * MiB,
    }


def test_the_markdown_comment_lists_sizes_the_base_and_only_the_layers_that_changed() -> None:
    from slimguard.core.reports.image_diff import diff_document, diff_markdown

    old = facts(platform_image(OS, APP_V1, base=annotated(BASE)))
    new = facts(platform_image(OS, COMPILERS, APP_V1, base=annotated("registry.example.com/base/debian:13")))
    document = diff_document(
        diff_images(old, new), old_image="app:1", new_image="app:2", source="registry", version="1", content=False
    )
    assert diff_markdown(document) == (
        "### slimguard diff: `app:1` → `app:2`\n"
        "\n"
        "#### linux/amd64\n"
        "\n"
        "| | old | new | change |\n"
        "|---|---:|---:|---:|\n"
        "| compressed | 32 MiB | 72 MiB | +40 MiB |\n"
        "| uncompressed | 64 MiB | 144 MiB | +80 MiB |\n"
        "| layers | 2 | 3 | |\n"
        "\n"
        f"Base: **changed**: `{BASE}` → `registry.example.com/base/debian:13`\n"
        "\n"
        "| layer | status | size change | instruction |\n"
        "|---|---|---:|---|\n"
        "| 2 | added | +40 MiB | `RUN apt-get install -y gcc` |\n"
        "\n"
        "2 layers unchanged.\n"
    )
