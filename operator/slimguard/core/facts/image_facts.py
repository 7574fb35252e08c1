"""What slimguard knows about an image, read from its registry and cached by digest, and what to read of one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from slimguard.core.errors import InspectionError
from slimguard.core.facts.content import ContentFacts
from slimguard.core.facts.media_types import INDEX_TYPES
from slimguard.core.model.platform import Platform


class BaseImageMethod(StrEnum):
    ANNOTATION = "annotation"
    LAYERS = "layers"


@dataclass(frozen=True, slots=True)
class BaseImage:
    """The image this one was built on, and how slimguard found out."""

    reference: str
    method: BaseImageMethod
    digest: str | None = None
    shared_layers: int | None = None


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    size: int
    media_type: str
    diff_id: str | None = None
    uncompressed_size: int | None = None
    created_by: str | None = None
    uncompressed_estimated: bool = False
    """True when the uncompressed size was inferred (a gzip trailer holds it modulo 4 GiB), not read exactly."""


@dataclass(frozen=True, slots=True)
class PlatformImage:
    """One platform's image manifest and config."""

    platform: Platform
    manifest_digest: str
    config_digest: str
    config_size: int
    layers: tuple[Layer, ...]
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    annotated_base: BaseImage | None = None
    content: ContentFacts | None = None
    """What the layers hold; read only when a content rule applies (None: not read)."""
    compressed_measured: bool = True
    """False for an image read where its layers are kept uncompressed (a local Docker engine, a ``docker save``
    archive): each layer's ``size`` is then its uncompressed size, and ``compressed_size`` what a push would
    compress (at most that, give or take gzip's few bytes of framing)."""
    kept_uncompressed_in: str = "the local Docker engine"
    """Where the layers were read uncompressed (``compressed_measured`` False), as a message names it."""

    @property
    def compressed_size(self) -> int:
        """What a node pulls: the layers plus the config."""
        return self.config_size + sum(layer.size for layer in self.layers)

    @property
    def uncompressed_size(self) -> int | None:
        sizes = [layer.uncompressed_size for layer in self.layers]
        if any(size is None for size in sizes):
            return None
        return sum(size for size in sizes if size is not None)

    @property
    def uncompressed_estimated(self) -> bool:
        return any(layer.uncompressed_estimated for layer in self.layers)

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id or layer.digest for layer in self.layers)


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """Facts about one image digest (a single manifest or an index of several platforms)."""

    digest: str
    media_type: str
    platforms: tuple[PlatformImage, ...]
    annotated_base: BaseImage | None = None
    listed_platforms: tuple[Platform, ...] = ()
    """Every platform an index lists; only those a policy asks for are fetched into ``platforms``."""

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def for_platform(self, required: Platform) -> PlatformImage | None:
        for image in self.platforms:
            if image.platform.satisfies(required):
                return image
        return None

    @property
    def platform_names(self) -> tuple[str, ...]:
        listed = self.listed_platforms or tuple(image.platform for image in self.platforms)
        return tuple(str(platform) for platform in listed)

    def holds(self, needs: FactsNeeds) -> bool:
        """Whether these facts answer ``needs`` without reading more: each wanted platform the image has was read
        (a platform an index lists but was not fetched is missing), with its layers' sizes and contents if asked.
        A wanted platform the image does not have is no gap: evaluation says so from what is here."""
        for platform in needs.platforms:
            image = self.for_platform(platform)
            listed = any(p.satisfies(platform) for p in self.listed_platforms) if self.is_index else False
            if image is None and listed:
                return False
            if image is not None and needs.uncompressed and image.uncompressed_size is None:
                return False
            if image is not None and needs.content and image.content is None:
                return False
        return True


FactsOrError = ImageFacts | InspectionError
"""An image's facts, or why they could not be had (evaluation makes the latter an error finding)."""


@dataclass(frozen=True, slots=True)
class FactsNeeds:
    """What to read about one image: which platforms' manifests and configs, whether layer sizes, whether contents."""

    platforms: frozenset[Platform]
    uncompressed: bool = False
    content: bool = False
    """Layer contents (packages, tools, wasted bytes): the only need that reads whole layer blobs."""

    def __or__(self, other: FactsNeeds) -> FactsNeeds:
        return FactsNeeds(
            self.platforms | other.platforms,
            self.uncompressed or other.uncompressed,
            self.content or other.content,
        )
