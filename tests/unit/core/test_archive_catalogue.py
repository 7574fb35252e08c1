"""An archive's catalogue (OCI ``index.json``, ``docker save``'s ``manifest.json``) → the images it holds and what
they are called; and which image a name given on the command line means."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slimguard.core.errors import InspectionError
from slimguard.core.facts.archive import (
    ArchivedImage,
    Descriptor,
    SavedImage,
    blob_path,
    digest_in_name,
    layout_images,
    saved_images,
    select_images,
)
from slimguard.core.facts.media_types import OCI_INDEX, OCI_MANIFEST
from slimguard.core.facts.oci import GarbledDocument
from slimguard.core.model.platform import Platform

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def index_json(*manifests: dict[str, Any]) -> bytes:
    return json.dumps({"schemaVersion": 2, "manifests": list(manifests)}).encode()


def entry(digest: str, media_type: str = OCI_MANIFEST, *, platform: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": 100}
    if platform:
        os, architecture = platform.split("/")
        found["platform"] = {"os": os, "architecture": architecture}
    return found


def test_names_come_from_containerds_annotation_and_a_ref_name_that_is_a_full_reference() -> None:
    (image,) = layout_images(
        index_json(
            {
                **entry(A),
                "annotations": {
                    "io.containerd.image.name": "docker.io/shop/api:1.0",
                    "org.opencontainers.image.ref.name": "1.0",
                },
            }
        ),
        max_entries=10,
    )
    assert (image.names, image.tags) == (("docker.io/shop/api:1.0",), ("1.0",))
    (buildah,) = layout_images(
        index_json({**entry(A), "annotations": {"org.opencontainers.image.ref.name": "localhost/api:dev"}}),
        max_entries=10,
    )
    assert (buildah.names, buildah.tags) == (("localhost/api:dev",), ())


def test_one_digest_under_several_names_is_one_image() -> None:
    images = layout_images(
        index_json(
            {**entry(A), "annotations": {"io.containerd.image.name": "example.com/api:1"}},
            {**entry(A), "annotations": {"io.containerd.image.name": "example.com/api:latest"}},
        ),
        max_entries=10,
    )
    assert images == (
        ArchivedImage(("example.com/api:1", "example.com/api:latest"), descriptor=Descriptor(OCI_MANIFEST, A, 100)),
    )


def test_platform_manifests_side_by_side_are_one_image_and_anything_else_is_one_image_each() -> None:
    (together,) = layout_images(
        index_json(entry(A, platform="linux/amd64"), entry(B, platform="linux/arm64")), max_entries=10
    )
    assert together.descriptor is None
    assert [d.platform for d in together.listed] == [Platform("linux", "amd64"), Platform("linux", "arm64")]
    apart = layout_images(index_json(entry(A, OCI_INDEX), entry(B, OCI_INDEX)), max_entries=10)
    assert len(apart) == 2
    same_platform = layout_images(
        index_json(entry(A, platform="linux/amd64"), entry(B, platform="linux/amd64")), max_entries=10
    )
    assert len(same_platform) == 2


@pytest.mark.parametrize(
    "body",
    [b"[]", b'{"manifests": [1]}', b'{"manifests": [{"digest": 3, "size": 1}]}', b'{"manifests": [{"digest": "x"}]}'],
)
def test_a_garbled_index_json_is_refused(body: bytes) -> None:
    with pytest.raises(GarbledDocument):
        layout_images(body, max_entries=10)


def test_docker_save_names_images_by_their_repo_tags() -> None:
    body = json.dumps(
        [
            {"Config": "c.json", "RepoTags": ["shop/api:1", "not a reference"], "Layers": ["a/layer.tar"]},
            {"Config": "d.json", "RepoTags": None, "Layers": []},
        ]
    ).encode()
    assert saved_images(body, max_entries=10) == (
        ArchivedImage(("shop/api:1",), saved=SavedImage("c.json", ("a/layer.tar",))),
        ArchivedImage((), saved=SavedImage("d.json", ())),
    )
    with pytest.raises(GarbledDocument):
        saved_images(b'[{"Config": "c.json", "Layers": [1]}]', max_entries=10)


ONE = ArchivedImage(("shop/api:1",), saved=SavedImage("c.json", ()))
TWO = ArchivedImage(("example.com/shop/web:2",), ("2",), descriptor=Descriptor(OCI_MANIFEST, A, 1))
TAGGED = ArchivedImage((), ("3.1",), descriptor=Descriptor(OCI_MANIFEST, B, 1))


@pytest.mark.parametrize(
    ("requested", "chosen"),
    [
        ((), {"shop/api:1": ONE, "example.com/shop/web:2": TWO}),
        (("shop/api:1",), {"shop/api:1": ONE}),
        (("docker.io/shop/api:1",), {"docker.io/shop/api:1": ONE}),  # the same reference, spelt out
        (("registry.example.com/team/web:2",), {"registry.example.com/team/web:2": TWO}),  # by its ref.name tag
    ],
)
def test_a_name_means_the_image_the_archive_calls_so(
    requested: tuple[str, ...], chosen: dict[str, ArchivedImage]
) -> None:
    assert select_images([ONE, TWO], requested, where="a.tar") == chosen


def test_names_that_mean_no_image_or_several_are_refused_naming_what_the_archive_holds() -> None:
    with pytest.raises(InspectionError, match=r"a.tar holds no image called shop/db:1 \(it holds 2: shop/api:1, "):
        select_images([ONE, TWO], ["shop/db:1"], where="a.tar")
    twin = ArchivedImage(("shop/api:1",), descriptor=Descriptor(OCI_MANIFEST, B, 1))
    with pytest.raises(InspectionError, match=r"a\.tar holds 2 images called shop/api:1"):
        select_images([ONE, twin], ["shop/api:1"], where="a.tar")
    with pytest.raises(InspectionError, match=r"a\.tar holds no image"):
        select_images([], [], where="a.tar")


def test_an_unnamed_image_must_be_named_to_be_checked_and_is_shown_by_its_tag() -> None:
    with pytest.raises(InspectionError, match=r"a.tar holds an image with no name \(tag 3.1\)"):
        select_images([TAGGED], [], where="a.tar")
    assert select_images([TAGGED], [], where="a.tar", unnamed_ok=True) == {"tag 3.1": TAGGED}
    assert select_images([TAGGED], ["example.com/x:9"], where="a.tar") == {"example.com/x:9": TAGGED}


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:" + "a" * 32, "a" * 64])
def test_a_descriptor_can_never_name_a_path_of_its_choosing(digest: str) -> None:
    with pytest.raises(InspectionError) as refused:
        blob_path(digest)
    assert refused.value.reason == "UnsupportedDigest"
    assert blob_path(A) == "blobs/sha256/" + "a" * 64


@pytest.mark.parametrize(
    ("path", "digest"),
    [
        ("blobs/sha256/" + "a" * 64, A),
        ("a" * 64 + ".json", A),
        ("sha256:" + "a" * 64, A),
        ("a" * 64 + ".tar.gz", A),
        ("0123456789abcdef/layer.tar", None),
        ("blobs/sha256/xyz", None),
    ],
)
def test_docker_save_files_named_by_a_digest(path: str, digest: str | None) -> None:
    assert digest_in_name(path) == digest
