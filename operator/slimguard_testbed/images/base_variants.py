"""Stand-in bases of known sizes, for slimmer-base hints and stale-base checks: tiny, deterministic, quick.

`node:20-bookworm`, `node:20-slim` and `node:20-alpine` are one incompressible layer each (so what the
registry stores is what the test pushed), an app is built on the fat one, and a repository can be given a
few hundred more tags (one manifest PUT each) to make its tag list paginate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slimguard_testbed import oci
from slimguard_testbed.images.common import BASE_DIGEST_LABEL, BASE_NAME_LABEL
from slimguard_testbed.images.one_off import _client_for
from slimguard_testbed.images.published import FixtureImage, fixture_image
from slimguard_testbed.images.recipe_cache import _pseudo_random
from slimguard_testbed.oci import EndpointLike, Image, Index, Platform

KiB = 1024
MiB = 1024 * KiB
BOOKWORM_BYTES = 3 * MiB
SLIM_BYTES = 1 * MiB
ALPINE_BYTES = 300 * KiB
APP_BYTES = 200 * KiB


def stand_in(seed: str, size: int, *, platform: Platform | None = None, base: Image | None = None) -> Image:
    """An image of one incompressible layer of ``size`` bytes (on ``base``'s layers, if given)."""
    layer = oci.layer_from_files(
        {f"/opt/{seed}.bin": _pseudo_random(seed, size)}, created_by=f"ADD {seed}.bin /opt/ # stand-in"
    )
    return oci.build_image([layer], base=base, platform=platform, user="10001")


def pull_bytes(image: Image) -> int:
    """What slimguard counts as an image's compressed size: its layers and its config, as the manifest says."""
    return image.size + image.config.size


def push(
    endpoint: EndpointLike,
    repository: str,
    tag: str,
    artifact: Image | Index,
    *,
    mount_from: Sequence[str] = (),
) -> FixtureImage:
    _client_for(endpoint).push(repository, tag, artifact, mount_from=mount_from, check_tag=False)
    return fixture_image(endpoint.host, repository, tag, artifact)


def annotated(image: Image, base: FixtureImage) -> Image:
    """``image`` with the OCI base-image annotations naming ``base`` (as BuildKit writes them)."""
    return oci.with_annotations(image, {BASE_NAME_LABEL: base.ref, BASE_DIGEST_LABEL: base.digest})


@dataclass(frozen=True)
class BaseVariants:
    bookworm: FixtureImage
    slim: FixtureImage
    alpine: FixtureImage
    app: FixtureImage
    """An app on ``bookworm`` (its layer plus 200 KiB), without base annotations: found by shared layers."""
    sizes: Mapping[str, int]
    """Bytes slimguard should measure, by reference."""


def push_base_variants(endpoint: EndpointLike, repository: str = "base/node", *, app: str = "shop/fat") -> BaseVariants:
    bookworm = stand_in(f"{repository}-bookworm", BOOKWORM_BYTES)
    slim = stand_in(f"{repository}-slim", SLIM_BYTES)
    alpine = stand_in(f"{repository}-alpine", ALPINE_BYTES)
    on_bookworm = stand_in(f"{app}-app", APP_BYTES, base=bookworm)
    pushed = {
        "bookworm": push(endpoint, repository, "20-bookworm", bookworm),
        "slim": push(endpoint, repository, "20-slim", slim),
        "alpine": push(endpoint, repository, "20-alpine", alpine),
        "app": push(endpoint, app, "1.0", on_bookworm, mount_from=(repository,)),
    }
    push(endpoint, repository, "20-bullseye", stand_in(f"{repository}-bullseye", SLIM_BYTES))  # not a slim name
    sizes = {
        pushed[name].ref: pull_bytes(image)
        for name, image in (("bookworm", bookworm), ("slim", slim), ("alpine", alpine), ("app", on_bookworm))
    }
    return BaseVariants(**pushed, sizes=sizes)


def add_tags(endpoint: EndpointLike, repository: str, image: FixtureImage, tags: Sequence[str]) -> None:
    """Point more ``tags`` of ``repository`` at ``image`` (already pushed there): one manifest PUT each."""
    client = _client_for(endpoint)
    artifact = image.artifact
    for tag in tags:
        client.put_manifest(repository, tag, artifact.manifest, artifact.media_type)


def multiarch_base(seed: str, *, arm64_seed: str) -> Index:
    """A linux/amd64 + linux/arm64 base; a new ``arm64_seed`` changes the index but not the amd64 manifest."""
    amd64 = stand_in(f"{seed}-amd64", 256 * KiB)
    arm64 = stand_in(arm64_seed, 256 * KiB, platform=Platform("linux", "arm64", "v8"))
    return oci.build_index([amd64, arm64])
