"""OCI documents → facts: manifests, indexes, configs (and garbled ones), and uncompressed sizes from a few bytes."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from typing import Any

import pytest

from slimguard.core.facts import media_types as types
from slimguard.core.facts import oci
from slimguard.core.facts.image_facts import BaseImageMethod, Layer
from slimguard.core.facts.oci import zstd_content_size
from slimguard.core.model.platform import Platform

from .builders import digest

TAR = "application/vnd.oci.image.layer.v1.tar"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def manifest_document(*sizes: int, media_type: str = GZIP, **extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": types.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest("config"), "size": 321},
        "layers": [
            {"mediaType": media_type, "digest": digest(f"layer-{n}"), "size": size} for n, size in enumerate(sizes)
        ],
        **extra,
    }


def config_body(**config: Any) -> bytes:
    document = {
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": "2026-11-01T10:00:00Z",
        "config": {"User": "10001", "Labels": {"team": "shop"}},
        "rootfs": {"type": "layers", "diff_ids": [digest("diff-0"), digest("diff-1")]},
        "history": [
            {"created_by": "ADD rootfs.tar /"},
            {"created_by": "ENV PATH=/bin", "empty_layer": True},
            {"created_by": "RUN npm ci"},
        ],
    }
    document.update(config)
    return json.dumps(document).encode()


def test_a_manifest_and_its_config_give_layers_with_diff_ids_and_the_steps_that_made_them() -> None:
    parsed = oci.parse_manifest(manifest_document(100, 200))
    image = oci.platform_image(parsed, digest=digest("manifest"), config_body=config_body(), platform=None)
    assert image.platform == Platform("linux", "arm64", "v8")
    assert (image.user, image.labels, image.config_size) == ("10001", {"team": "shop"}, 321)
    assert [(layer.size, layer.diff_id, layer.created_by) for layer in image.layers] == [
        (100, digest("diff-0"), "ADD rootfs.tar /"),
        (200, digest("diff-1"), "RUN npm ci"),
    ]
    assert image.compressed_size == 621


def test_history_that_does_not_line_up_with_the_layers_blames_no_layer() -> None:
    # Images from builders older than empty_layer (and some hand-made ones) list every step, ENV included: the
    # second layer is not "ENV PATH=/bin". Aligning anyway would blame the wrong instruction; none is honest.
    unflagged = config_body(
        history=[{"created_by": "ADD rootfs.tar /"}, {"created_by": "ENV PATH=/bin"}, {"created_by": "RUN npm ci"}]
    )
    image = oci.platform_image(
        oci.parse_manifest(manifest_document(100, 200)), digest="d", config_body=unflagged, platform=None
    )
    assert [layer.created_by for layer in image.layers] == [None, None]
    short = config_body(history=[{"created_by": "RUN npm ci"}])
    image = oci.platform_image(
        oci.parse_manifest(manifest_document(100, 200)), digest="d", config_body=short, platform=None
    )
    assert [layer.created_by for layer in image.layers] == [None, None]


def test_history_entries_without_a_command_keep_their_place() -> None:
    history = [{"comment": "imported"}, {"created_by": "ENV A=b", "empty_layer": True}, {"created_by": "RUN x"}]
    image = oci.platform_image(
        oci.parse_manifest(manifest_document(100, 200)),
        digest="d",
        config_body=config_body(history=history),
        platform=None,
    )
    assert [layer.created_by for layer in image.layers] == [None, "RUN x"]


def test_the_base_is_read_from_manifest_annotations_or_else_config_labels() -> None:
    annotated = manifest_document(1, annotations={oci.BASE_NAME: "node:20-alpine", oci.BASE_DIGEST: digest("b")})
    image = oci.platform_image(oci.parse_manifest(annotated), digest="d", config_body=config_body(), platform=None)
    assert image.annotated_base is not None
    assert (image.annotated_base.reference, image.annotated_base.method) == (
        "node:20-alpine",
        BaseImageMethod.ANNOTATION,
    )
    labelled = config_body(config={"Labels": {oci.BASE_NAME: "debian:12"}})
    image = oci.platform_image(
        oci.parse_manifest(manifest_document(1)), digest="d", config_body=labelled, platform=None
    )
    assert image.annotated_base is not None
    assert image.annotated_base.reference == "debian:12"


def test_an_empty_base_digest_label_is_no_digest() -> None:
    # What `LABEL org.opencontainers.image.base.digest="${BASE_DIGEST}"` writes when built without the argument.
    labelled = config_body(config={"Labels": {oci.BASE_NAME: "debian:12", oci.BASE_DIGEST: ""}})
    image = oci.platform_image(
        oci.parse_manifest(manifest_document(1)), digest="d", config_body=labelled, platform=None
    )
    assert image.annotated_base is not None
    assert (image.annotated_base.reference, image.annotated_base.digest) == ("debian:12", None)


def test_an_index_lists_its_platforms_skips_attestations_and_picks_the_wanted_ones() -> None:
    index = oci.parse_index(
        {
            "manifests": [
                {"digest": digest("amd64"), "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": digest("arm64"), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"digest": digest("att"), "platform": {"os": "unknown", "architecture": "unknown"}},
            ],
            "annotations": {oci.BASE_NAME: "node:20"},
        },
        max_entries=10,
    )
    assert [str(entry.platform) for entry in index.entries] == ["linux/amd64", "linux/arm64/v8"]
    assert index.annotated_base is not None
    assert index.annotated_base.reference == "node:20"
    chosen = index.chosen(frozenset({Platform("linux", "arm64")}), limit=8)
    assert [entry.digest for entry in chosen] == [digest("arm64")]


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"\x00not json", "manifest"),
        (b"[1, 2]", "manifest"),
    ],
)
def test_a_document_that_is_not_a_json_object_is_garbled(body: bytes, what: str) -> None:
    with pytest.raises(oci.GarbledDocument) as raised:
        oci.load_document(body, what)
    assert raised.value.what == what


@pytest.mark.parametrize(
    "document",
    [
        {"layers": []},
        {"config": {"digest": 7}, "layers": []},
        {"config": {"digest": "sha256:x"}, "layers": "many"},
        {"config": {"digest": "sha256:x"}, "layers": [{"digest": "sha256:y", "size": -1}]},
        {"config": {"digest": "sha256:x"}, "layers": [{"digest": "sha256:y", "size": True}]},
        {"config": {"digest": "sha256:x"}, "layers": [{"size": 1}]},
    ],
)
def test_a_manifest_missing_its_config_or_with_bad_layers_is_garbled(document: dict[str, Any]) -> None:
    with pytest.raises(oci.GarbledDocument, match="image manifest"):
        oci.parse_manifest(document)


def test_an_index_without_a_manifest_list_or_with_a_digestless_entry_is_garbled() -> None:
    for document in ({"mediaType": types.OCI_INDEX}, {"manifests": [{"platform": {"os": "linux"}}]}):
        with pytest.raises(oci.GarbledDocument, match="image index"):
            oci.parse_index(document, max_entries=10)


def test_a_config_that_is_not_json_is_garbled() -> None:
    with pytest.raises(oci.GarbledDocument, match="image config"):
        oci.platform_image(oci.parse_manifest(manifest_document(1)), digest="d", config_body=b"{", platform=None)


def test_the_media_type_is_the_documents_own_else_as_served_else_by_shape() -> None:
    assert oci.media_type_of({"mediaType": types.DOCKER_MANIFEST}, types.OCI_INDEX) == types.DOCKER_MANIFEST
    assert oci.media_type_of({}, types.DOCKER_MANIFEST_LIST) == types.DOCKER_MANIFEST_LIST
    assert oci.media_type_of({"manifests": []}, "application/json") == types.OCI_INDEX
    assert oci.media_type_of({"layers": []}, "") == types.OCI_MANIFEST


def test_a_plain_tar_layer_is_its_own_exact_uncompressed_size_without_a_read() -> None:
    layer = Layer(digest=digest("tar"), size=5 * 2**20, media_type=TAR)
    known = oci.uncompressed_probe(layer)
    assert isinstance(known, Layer)
    assert (known.uncompressed_size, known.uncompressed_estimated) == (5 * 2**20, False)


def test_a_gzip_layer_is_sized_from_its_trailer_and_called_an_estimate() -> None:
    layer = Layer(digest=digest("gz"), size=1000, media_type=GZIP)
    probe = oci.uncompressed_probe(layer)
    assert probe == oci.ByteRange(996, 999)
    sized = oci.with_uncompressed(layer, struct.pack("<I", 4096))
    assert (sized.uncompressed_size, sized.uncompressed_estimated) == (4096, True)


def test_a_gzip_trailer_that_wrapped_past_4_gib_is_unwrapped() -> None:
    layer = Layer(digest=digest("gz"), size=2**31, media_type=GZIP)
    assert oci.with_uncompressed(layer, struct.pack("<I", 10)).uncompressed_size == 2**32 + 10
    incompressible = Layer(digest=digest("gz"), size=2**32 + 2**20, media_type=GZIP)  # 4 GiB of random bytes
    assert oci.with_uncompressed(incompressible, struct.pack("<I", 2**20 - 7000)).uncompressed_size == (
        2**32 + 2**20 - 7000
    )


def test_incompressible_data_smaller_than_its_gzip_is_not_taken_for_4_gib_more() -> None:
    """50 MiB of random bytes gzip to 50 MiB and a few KiB of deflate framing: the trailer's 50 MiB is right (it
    was read as 4.05 GiB, comparing `slimguard check --input` of a docker save tarball with the pushed image)."""
    data = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(8192))  # 256 KiB of noise
    packed = gzip.compress(data, compresslevel=6)
    assert len(packed) > len(data)
    layer = Layer(digest=digest("gz"), size=len(packed), media_type=GZIP)
    sized = oci.with_uncompressed(layer, packed[-4:])
    assert sized.uncompressed_size == len(data)
    fifty = Layer(digest=digest("gz"), size=52_445_044, media_type=GZIP)  # shop/wasted's 50 MiB layer, as pushed
    assert oci.with_uncompressed(fifty, struct.pack("<I", 52_439_040)).uncompressed_size == 52_439_040


def test_a_zstd_layer_is_sized_exactly_from_its_frame_header() -> None:
    layer = Layer(digest=digest("zst"), size=1000, media_type=ZSTD)
    assert oci.uncompressed_probe(layer) == oci.ByteRange(0, 17)
    sized = oci.with_uncompressed(layer, frame_header(0b0010_0000, b"\x2a"))
    assert (sized.uncompressed_size, sized.uncompressed_estimated) == (42, False)


def test_an_empty_layer_is_zero_and_an_unknown_compression_stays_unknown() -> None:
    empty = oci.uncompressed_probe(Layer(digest=digest("e"), size=0, media_type=GZIP))
    assert isinstance(empty, Layer)
    assert empty.uncompressed_size == 0
    odd = oci.uncompressed_probe(Layer(digest=digest("o"), size=99, media_type="application/x-lz4"))
    assert isinstance(odd, Layer)
    assert odd.uncompressed_size is None


def frame_header(descriptor: int, size_field: bytes, window: bytes = b"") -> bytes:
    return b"\x28\xb5\x2f\xfd" + bytes([descriptor]) + window + size_field


def test_a_single_segment_frame_with_a_one_byte_size() -> None:
    assert zstd_content_size(frame_header(0b0010_0000, b"\x2a")) == 42


def test_a_two_byte_size_field_is_offset_by_256() -> None:
    assert zstd_content_size(frame_header(0b0110_0000, (1000 - 256).to_bytes(2, "little"))) == 1000


def test_a_four_byte_size_after_the_window_descriptor() -> None:
    assert zstd_content_size(frame_header(0b1000_0000, (5_000_000).to_bytes(4, "little"), window=b"\x58")) == 5_000_000


def test_an_eight_byte_size() -> None:
    assert zstd_content_size(frame_header(0b1110_0000, (6 * 2**32).to_bytes(8, "little"))) == 6 * 2**32


def test_no_size_when_the_encoder_left_it_out_or_the_magic_is_wrong() -> None:
    assert zstd_content_size(frame_header(0b0000_0000, b"", window=b"\x58")) is None
    assert zstd_content_size(b"\x1f\x8b\x08\x00\x00\x00") is None
