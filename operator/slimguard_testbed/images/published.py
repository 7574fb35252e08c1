"""What publishing returns: fixture images as references, digests and sizes a test can assert on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slimguard_testbed.oci import Artifact, Index

if TYPE_CHECKING:
    pass


# -- what publishing returns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformImage:
    """One platform's manifest within a fixture."""

    platform: str  # "linux/amd64", "linux/arm64/v8"
    digest: str
    compressed_size: int
    uncompressed_size: int
    layers: int


@dataclass(frozen=True)
class FixtureImage:
    """A fixture image as pushed: `ref` is `host/repository:tag`, `digest` its manifest (or index) digest."""

    host: str
    repository: str
    tag: str
    digest: str
    media_type: str
    platforms: tuple[PlatformImage, ...]
    artifact: Artifact = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        """The reference by digest: `host/repository@sha256:...`."""
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def is_index(self) -> bool:
        return isinstance(self.artifact, Index)

    @property
    def compressed_size(self) -> int:
        """Sum of the layer sizes of the first platform (what a size policy on the manifest adds up)."""
        return self.platforms[0].compressed_size

    @property
    def uncompressed_size(self) -> int:
        return self.platforms[0].uncompressed_size

    def platform(self, name: str) -> PlatformImage:
        for item in self.platforms:
            if item.platform == name or item.platform.startswith(name + "/"):
                return item
        raise KeyError(f"{self.ref} has no {name} image (it has {[p.platform for p in self.platforms]})")

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True)
class FixtureImages:
    """Every fixture image in one registry."""

    host: str
    debian_fat: FixtureImage  # base/debian:bookworm, debootstrap, ~700 MB, 170+ dpkg packages
    node_base: FixtureImage  # base/node:20-bookworm = debian + /usr/local/bin/node
    fat_app: FixtureImage  # shop/api:1.0-fat = node_base's layers + an app layer, runs as root
    busybox: FixtureImage  # base/busybox:1.36, ~1 MB
    distroless: FixtureImage  # base/distroless:12, no shell, user 65532
    slim_app: FixtureImage  # shop/api:1.0-slim, multi-stage `docker build` on busybox, user 10001
    private_slim: FixtureImage  # private/api:1.0-slim, the same image where pulls need credentials
    multiarch: FixtureImage  # shop/multi:1.0, index linux/amd64 + linux/arm64 (different sizes)
    arm64_only: FixtureImage  # shop/arm-only:1.0, index with linux/arm64 only
    annotated: FixtureImage  # shop/annotated:1.0, manifest annotations naming the distroless base
    annotated_index: FixtureImage  # shop/annotated-index:1.0, the same annotations on an index
    garbled: FixtureImage  # shop/garbled:1.0, a config blob that is not JSON
    huge_layers: FixtureImage  # shop/many-layers:1.0, 40 small layers

    def all(self) -> dict[str, FixtureImage]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "host"}


def fixture_image(host: str, repository: str, tag: str, artifact: Artifact) -> FixtureImage:
    images = artifact.images if isinstance(artifact, Index) else (artifact,)
    platforms = tuple(
        PlatformImage(str(i.platform), i.digest, i.size, i.uncompressed_size, len(i.layers)) for i in images
    )
    return FixtureImage(host, repository, tag, artifact.digest, artifact.media_type, platforms, artifact)
