"""The fixtures of the layer-content checks (issue 11), published on demand next to the session's fixtures:
the wasted-bytes image, the hostile layers, a fleet of images on one fat base, and `docker save` archives
of the fat and the wasted-bytes images for dive and syft.

Only the tests that need them pay for them: the wasted-bytes image is cached by recipe (~3 s to build), the
hostile ones are built in memory (the bomb's diff_id is cached), the fleet pushes 100 tiny top layers while
its base blobs are mounted (one request each), and the archives are cached by image digest.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slimguard_testbed.images.docker_archive import docker_archive
from slimguard_testbed.images.hostile import (
    absolute_layer,
    bomb_layer,
    escaping_layer,
    on_busybox,
    replace_blob_in_storage,
    swapped_layer,
    truncated_layer,
)
from slimguard_testbed.images.one_off import _client_for, push_image
from slimguard_testbed.images.publish import _as_image
from slimguard_testbed.images.published import FixtureImage, FixtureImages, fixture_image
from slimguard_testbed.images.recipe_cache import cached
from slimguard_testbed.images.wasted import RECIPE as WASTED_RECIPE
from slimguard_testbed.images.wasted import build_wasted_bytes
from slimguard_testbed.oci import Blob, EndpointLike, Image, Layer, image_from_parts


@dataclass(frozen=True)
class HostileImages:
    """shop/hostile-*:1.0, each the busybox base plus one hostile layer (the image's second layer)."""

    gzip_bomb: FixtureImage
    escaping: FixtureImage  # entries climb out with ../
    absolute: FixtureImage  # entries named /etc/..., /usr/bin/...
    truncated: FixtureImage  # a gzip stream cut halfway
    swapped: FixtureImage  # the registry serves bytes that are not the layer's digest

    def all(self) -> dict[str, FixtureImage]:
        return {
            "gzip_bomb": self.gzip_bomb,
            "escaping": self.escaping,
            "absolute": self.absolute,
            "truncated": self.truncated,
            "swapped": self.swapped,
        }

    @staticmethod
    def hostile_layer(image: FixtureImage) -> str:
        """The digest of the hostile (top) layer."""
        artifact = image.artifact
        assert isinstance(artifact, Image)
        return artifact.layers[-1].blob.digest


def wasted_bytes_image(busybox: FixtureImage) -> Image:
    """The wasted-bytes image (slimguard_testbed.images.wasted), from the cache or built (~3 s)."""
    base = _as_image(busybox.artifact)
    return _as_image(
        cached("wasted-bytes", {**WASTED_RECIPE, "base": base.digest}, lambda _work: build_wasted_bytes(base))
    )


def publish_wasted_bytes(endpoint: EndpointLike, fixtures: FixtureImages) -> FixtureImage:
    """shop/wasted:1.0 pushed (its base mounted from base/busybox)."""
    image = wasted_bytes_image(fixtures.busybox)
    _client_for(endpoint).push("shop/wasted", "1.0", image, mount_from=(fixtures.busybox.repository,))
    return fixture_image(endpoint.host, "shop/wasted", "1.0", image)


def publish_hostile_images(endpoint: EndpointLike, storage_dir: Path, fixtures: FixtureImages) -> HostileImages:
    """Push every hostile image; for `swapped`, rewrite its layer in `storage_dir` (the registry's storage
    directory) after the push, so the registry serves other bytes under the verified digest."""
    busybox = _as_image(fixtures.busybox.artifact)
    client = _client_for(endpoint)
    mount = (fixtures.busybox.repository,)

    def push(name: str, image: Image) -> FixtureImage:
        repository = f"shop/hostile-{name}"
        client.push(repository, "1.0", image, mount_from=mount)
        return fixture_image(endpoint.host, repository, "1.0", image)

    swap = swapped_layer()
    swapped = push("swapped", on_busybox(busybox, swap.layer))
    replace_blob_in_storage(storage_dir, swap.layer.blob.digest, swap.replacement)
    return HostileImages(
        gzip_bomb=push("gzip-bomb", on_busybox(busybox, bomb_layer())),
        escaping=push("escaping", on_busybox(busybox, escaping_layer())),
        absolute=push("absolute", on_busybox(busybox, absolute_layer())),
        truncated=push("truncated", on_busybox(busybox, truncated_layer())),
        swapped=swapped,
    )


def fleet_base_image(debian: FixtureImage) -> Image:
    """The fat Debian image under a layer blob no other fixture has: an empty gzip member, then the debootstrap
    layer's gzip as it is (a multi-member gzip, as pigz and concatenating tools write). The same tar, so the
    same diff_id, packages and tools, under another digest: no other test reads this blob, so a count of its
    fetches is exact whatever ran before in the session. Cached (a copy of ~337 MB, once per machine)."""
    original = _as_image(debian.artifact)

    def build(work: Path) -> Image:
        layers = []
        for layer in original.layers:
            out = work / f"{layer.blob.digest.split(':')[1]}.fleet.gz"
            digest = hashlib.sha256()
            with out.open("wb") as target, layer.blob.open() as source:
                for chunk in (gzip.compress(b"", mtime=0), *iter(lambda: source.read(1 << 20), b"")):
                    target.write(chunk)
                    digest.update(chunk)
            blob = Blob(f"sha256:{digest.hexdigest()}", out.stat().st_size, path=out)
            layers.append(Layer(blob, layer.diff_id, layer.uncompressed_size, layer.created_by))
        return image_from_parts(original.config, layers, platform=original.platform, docker=True)

    return _as_image(cached("fleet-base", {"base": original.digest, "prefix": "empty gzip member"}, build))


def publish_fleet_base(endpoint: EndpointLike, debian: FixtureImage) -> FixtureImage:
    """base/fleet-debian:bookworm: `fleet_base_image` pushed (~337 MB of upload into a fresh registry)."""
    image = fleet_base_image(debian)
    _client_for(endpoint).push("base/fleet-debian", "bookworm", image)
    return fixture_image(endpoint.host, "base/fleet-debian", "bookworm", image)


def push_fleet(
    endpoint: EndpointLike, base: FixtureImage, *, count: int = 100, repository_prefix: str = "shop/fleet"
) -> tuple[FixtureImage, ...]:
    """`count` images `<prefix>-NNN:1.0`, each `base` plus its own tiny top layer. The base blobs are mounted
    from the base's repository (one request each), never uploaded again."""
    return tuple(
        push_image(
            endpoint,
            f"{repository_prefix}-{number:03d}",
            "1.0",
            [{"/app/instance.txt": f"fleet member {number}\n".encode()}],
            base=base,
            cmd=["/bin/sh"],
        )
        for number in range(count)
    )


def archive_of(image: FixtureImage) -> Path:
    """The `docker save` archive of a fixture image (cached by digest; the fat one is ~700 MB)."""
    return docker_archive(_as_image(image.artifact), repo_tag=f"{image.repository}:{image.tag}")


def base_layer_digests(image: FixtureImage) -> Sequence[str]:
    artifact = _as_image(image.artifact)
    return [layer.blob.digest for layer in artifact.layers]


__all__ = [
    "HostileImages",
    "archive_of",
    "base_layer_digests",
    "fleet_base_image",
    "publish_fleet_base",
    "publish_hostile_images",
    "publish_wasted_bytes",
    "push_fleet",
    "wasted_bytes_image",
]
