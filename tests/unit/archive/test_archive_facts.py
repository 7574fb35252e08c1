"""An image archive as a facts source: what each kind of archive tells, read from the same bytes a registry
would serve, and layers read only when a rule needs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archive.archives import (
    NAME,
    app_image,
    crane_tarball,
    docker_save,
    docker_save_oci,
    multi_platform,
    oci_layout,
    tar_of,
    two_image_archive,
)
from slimguard.archive import ArchiveFacts
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.media_types import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from slimguard.core.model.platform import Platform
from slimguard_testbed.oci import Image
from slimguard_testbed.oci.artifacts import Platform as BuiltFor

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
SIZES = FactsNeeds(frozenset({AMD64}), uncompressed=True)
CONTENT = FactsNeeds(frozenset({AMD64}), content=True)


async def read(path: Path, needs: FactsNeeds, name: str = NAME, **options: bool) -> tuple[ImageFacts, ArchiveFacts]:
    source = ArchiveFacts.open(str(path), [name], **options)
    try:
        return await source.inspect(name, needs, credentials=()), source
    finally:
        source.close()


def layer_sizes(image: Image) -> list[int]:
    return [layer.blob.size for layer in image.layers]


async def test_an_oci_layout_gives_the_registrys_facts_compressed_sizes_as_stored(tmp_path: Path) -> None:
    image = app_image()
    facts, source = await read(oci_layout(tmp_path / "layout", image), SIZES)
    assert (facts.digest, facts.media_type) == (image.digest, OCI_MANIFEST)  # the digest a push keeps
    (platform,) = facts.platforms
    assert platform.compressed_measured
    assert [layer.size for layer in platform.layers] == layer_sizes(image)
    assert platform.compressed_size == image.size + image.config.size
    # Read from the gzip trailers, as from a registry: estimated (modulo 4 GiB), and right.
    assert platform.uncompressed_size == image.uncompressed_size
    assert platform.uncompressed_estimated
    assert [layer.created_by for layer in platform.layers] == [layer.created_by for layer in image.layers]
    assert source.layer_reads == 0  # sizes never read a whole layer


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
async def test_the_tar_of_a_layout_gives_the_same_facts_as_the_directory(tmp_path: Path, compress: bool) -> None:
    layout = oci_layout(tmp_path / "layout", app_image())
    from_directory, _ = await read(layout, CONTENT)
    from_tar, _ = await read(tar_of(layout, tmp_path / "image.tar", compress=compress, prefix="./"), CONTENT)
    assert from_tar == from_directory


async def test_a_docker_save_tarball_holds_layers_uncompressed_so_no_compressed_size_unless_measured(
    tmp_path: Path,
) -> None:
    image = app_image()
    saved = docker_save(tmp_path / "saved.tar", image)
    facts, source = await read(saved, SIZES)
    # No manifest in a docker save: the image is its config, as the Docker engine knows it (the image ID).
    assert (facts.digest, facts.media_type) == (image.config.digest, DOCKER_MANIFEST)
    (platform,) = facts.platforms
    assert not platform.compressed_measured
    assert platform.kept_uncompressed_in == f"the archive {saved}"
    assert [layer.size for layer in platform.layers] == [layer.uncompressed_size for layer in image.layers]
    assert platform.uncompressed_size == image.uncompressed_size
    assert not platform.uncompressed_estimated  # the tar's own size: exact
    assert platform.diff_ids == tuple(layer.diff_id for layer in image.layers)
    assert source.layer_reads == 0

    measured, source = await read(saved, SIZES, measure_compressed=True)
    (platform,) = measured.platforms
    assert platform.compressed_measured
    assert source.layer_reads == len(image.layers)
    for layer, pushed in zip(platform.layers, image.layers, strict=True):  # another gzip of the same tars
        assert abs(layer.size - pushed.blob.size) <= max(64, pushed.blob.size // 50)


async def test_a_crane_or_kaniko_tarball_keeps_the_compressed_layers_and_their_sizes(tmp_path: Path) -> None:
    image = app_image()
    facts, source = await read(crane_tarball(tmp_path / "kaniko.tar", image), SIZES)
    (platform,) = facts.platforms
    assert facts.digest == image.config.digest
    assert platform.compressed_measured
    assert [layer.size for layer in platform.layers] == layer_sizes(image)
    assert [layer.digest for layer in platform.layers] == [layer.blob.digest for layer in image.layers]
    assert platform.uncompressed_size == image.uncompressed_size
    assert source.layer_reads == 0
    with_content, _ = await read(tmp_path / "kaniko.tar", CONTENT)
    legacy, _ = await read(docker_save(tmp_path / "legacy.tar", image), CONTENT)
    assert with_content.platforms[0].content == legacy.platforms[0].content


async def test_docker_25_save_is_read_by_its_index_with_the_name_containerd_gives_it(tmp_path: Path) -> None:
    image = app_image()
    saved = docker_save_oci(tmp_path / "saved.tar", image, name="registry.example.com/shop/app:25")
    source = ArchiveFacts.open(str(saved), [])
    assert source.names == ("registry.example.com/shop/app:25",)
    facts = await source.inspect(source.names[0], CONTENT, credentials=())
    (platform,) = facts.platforms
    assert facts.media_type == OCI_MANIFEST
    assert not platform.compressed_measured  # its layers are .tar: uncompressed
    assert platform.uncompressed_size == image.uncompressed_size
    legacy, _ = await read(docker_save(tmp_path / "legacy.tar", image), CONTENT)
    assert platform.content == legacy.platforms[0].content


async def test_contents_read_from_every_kind_of_archive_are_the_same(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    contents = [
        (await read(path, CONTENT))[0].platforms[0].content
        for path in (layout, tar_of(layout, tmp_path / "oci.tar"), docker_save(tmp_path / "saved.tar", image))
    ]
    assert contents[0] == contents[1] == contents[2]
    content = contents[0]
    assert content is not None
    assert content.packages.count == 3
    assert [tool.what for tool in content.tools] == ["bin/sh"]
    assert content.wasted_bytes == 256 * 1024


async def test_layers_are_read_only_for_content_and_once_per_layer(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", app_image())
    source = ArchiveFacts.open(str(layout), [NAME])
    await source.inspect(NAME, SIZES, credentials=())
    assert source.layer_reads == 0
    with_content = await source.inspect(NAME, CONTENT, credentials=())
    assert source.layer_reads == 3
    assert with_content.platforms[0].uncompressed_size is not None  # what was asked before is still held
    assert source.cached(NAME, CONTENT, credentials=()) is with_content
    await source.inspect(NAME, CONTENT | SIZES, credentials=())
    assert source.layer_reads == 3


async def test_an_index_reads_only_the_platforms_asked_for_and_lists_them_all(tmp_path: Path) -> None:
    index = multi_platform()
    layout = oci_layout(tmp_path / "layout", index, tag="2.0")
    facts, _ = await read(layout, FactsNeeds(frozenset({ARM64}), uncompressed=True))
    assert (facts.digest, facts.media_type) == (index.digest, OCI_INDEX)
    assert facts.platform_names == ("linux/amd64", "linux/arm64/v8")
    (arm,) = facts.platforms
    assert arm.platform == Platform("linux", "arm64", "v8")
    assert arm.user == "10001"
    both, _ = await read(layout, FactsNeeds(frozenset({AMD64, ARM64})))
    assert [str(p.platform) for p in both.platforms] == ["linux/amd64", "linux/arm64/v8"]


async def test_platform_manifests_listed_side_by_side_in_index_json_are_one_image(tmp_path: Path) -> None:
    """index.json is itself an image index: a layout whose entries are the platform manifests (no nested index)
    is one multi-platform image."""
    index = multi_platform()
    layout = oci_layout(tmp_path / "layout", index, tag="2.0")
    descriptors = [image.descriptor() for image in index.images]
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [{**d, "annotations": {"org.opencontainers.image.ref.name": "2.0"}} for d in descriptors],
            }
        )
    )
    facts, _ = await read(layout, FactsNeeds(frozenset({AMD64, ARM64})))
    assert facts.media_type == OCI_INDEX
    assert facts.platform_names == ("linux/amd64", "linux/arm64/v8")
    assert len(facts.platforms) == 2


async def test_a_base_the_archive_does_not_hold_is_asked_of_the_registry(tmp_path: Path) -> None:
    class Registry:
        asked: list[str] = []

        async def inspect(self, image: str, needs: FactsNeeds, *, credentials: object) -> ImageFacts:
            self.asked.append(image)
            return ImageFacts(digest="sha256:" + "0" * 64, media_type=OCI_MANIFEST, platforms=())

    registry = Registry()
    source = ArchiveFacts.open(str(oci_layout(tmp_path / "layout", app_image())), [NAME], registry=registry)
    await source.inspect("registry.example.com/base/debian:12", SIZES, credentials=())
    assert registry.asked == ["registry.example.com/base/debian:12"]


async def test_an_archive_of_several_docker_save_images_names_each_by_its_repo_tag(tmp_path: Path) -> None:
    both = two_image_archive(tmp_path)
    source = ArchiveFacts.open(str(both), [])
    assert source.names == ("example.com/one:1", "example.com/two:2")
    facts = await source.inspect("example.com/two:2", SIZES, credentials=())
    assert facts.digest == app_image(BuiltFor("linux", "arm64")).config.digest
    assert facts.platforms[0].platform == ARM64
