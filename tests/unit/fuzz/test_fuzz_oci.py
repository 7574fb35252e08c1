"""Registries serve whatever they serve: any bytes as a manifest, index or config are facts or a GarbledDocument."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from slimguard.core.facts import oci
from slimguard.core.facts.image_facts import Layer
from slimguard.core.model.platform import Platform

from .strategies import json_values, scalars

_KEYS = st.one_of(
    st.sampled_from(
        [
            "mediaType",
            "manifests",
            "platform",
            "os",
            "architecture",
            "variant",
            "digest",
            "size",
            "config",
            "layers",
            "annotations",
            "rootfs",
            "diff_ids",
            "history",
            "created_by",
            "empty_layer",
            "created",
            "User",
            "Labels",
            "org.opencontainers.image.base.name",
            "org.opencontainers.image.base.digest",
        ]
    ),
    st.text(max_size=5),
)
documents = json_values(
    keys=_KEYS, leaves=st.one_of(scalars, st.sampled_from(["linux", "amd64", "arm64", "v8", "sha256:" + "a" * 64]))
)
bodies = st.one_of(
    st.binary(max_size=200),
    documents.map(lambda value: json.dumps(value).encode()),
)
WANTED = frozenset({Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "arm")})


def _use(image: Any) -> None:
    """Touch what evaluation touches: sizes, the platform as a dict key and in messages, labels, the base."""
    assert image.compressed_size >= 0
    _ = image.uncompressed_size, image.diff_ids, image.annotated_base, str(image.platform)
    _ = {image.platform: image}
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in image.labels.items())


@given(bodies)
def test_any_body_is_a_json_object_or_garbled(body: bytes) -> None:
    try:
        document = oci.load_document(body, "manifest")
    except oci.GarbledDocument as error:
        what = error.what
    else:
        assert isinstance(document, dict)
        return
    assert what == "manifest"


@given(documents, st.sampled_from(["", oci.OCI_INDEX, oci.OCI_MANIFEST, "text/html"]))
@example(
    {"manifests": [{"digest": "sha256:1", "platform": {"os": "linux", "architecture": "arm", "variant": ["v7"]}}]}, ""
)
@example({"manifests": [{"digest": "sha256:1", "platform": {"os": "linux", "architecture": "arm", "variant": {}}}]}, "")
def test_any_index_is_entries_or_garbled(document: Any, served: str) -> None:
    if not isinstance(document, dict):
        document = {"manifests": document}
    assert isinstance(oci.media_type_of(document, served), str)
    try:
        index = oci.parse_index(document, max_entries=32)
        chosen = index.chosen(WANTED, limit=16)
    except oci.GarbledDocument:
        return
    assert len(chosen) <= 16
    for entry in index.entries:
        _ = {entry.platform: entry}, str(entry.platform), entry.platform.satisfies(Platform("linux", "arm"))


@given(documents, bodies, st.sampled_from([None, Platform("linux", "amd64")]))
@example({"config": {"digest": "sha256:1"}, "layers": []}, b'{"variant": ["v8"]}', None)
@example({"config": {"digest": "sha256:1"}, "layers": []}, b'{"os": {}, "config": {"User": 0, "Labels": []}}', None)
def test_any_manifest_and_config_are_an_image_or_garbled(
    document: Any, config: bytes, platform: Platform | None
) -> None:
    if not isinstance(document, dict):
        document = {"config": {"digest": "sha256:1"}, "layers": document}
    try:
        manifest = oci.parse_manifest(document)
        image = oci.platform_image(manifest, digest="sha256:2", config_body=config, platform=platform)
    except oci.GarbledDocument:
        return
    _use(image)


layers = st.builds(
    Layer,
    digest=st.just("sha256:" + "b" * 64),
    size=st.integers(min_value=0, max_value=2**63),
    media_type=st.sampled_from(
        [
            "",
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/x-unknown",
        ]
    ),
)


@given(layers, st.binary(max_size=32))
@example(
    Layer(digest="sha256:" + "b" * 64, size=2**62, media_type="application/vnd.oci.image.layer.v1.tar+gzip"),
    b"\0\0\0\0",
)
def test_any_probe_bytes_give_a_size_or_none(layer: Layer, probe: bytes) -> None:
    planned = oci.uncompressed_probe(layer)
    if isinstance(planned, oci.ByteRange):
        assert 0 <= planned.start <= planned.end < layer.size
    done = oci.with_uncompressed(layer, probe)
    assert done.uncompressed_size is None or done.uncompressed_size >= 0
    if layer.media_type.endswith("gzip") and done.uncompressed_size is not None:
        # A wrapped ISIZE is read as the next 4 GiB, not as less than deflate's framing allows.
        assert done.uncompressed_size >= layer.size - oci.gzip_expansion(layer.size)
