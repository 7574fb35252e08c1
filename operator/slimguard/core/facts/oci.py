"""OCI and Docker image documents → facts. Pure: bytes in, dataclasses out.

The registry adapter fetches bytes and verifies digests; everything about what those bytes mean lives here,
so a local Docker image, a stored report or a unit test can be turned into the same facts.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from slimguard.core.facts.image_facts import BaseImage, BaseImageMethod, Layer, PlatformImage
from slimguard.core.facts.media_types import IMAGE_TYPES, INDEX_TYPES, OCI_INDEX, OCI_MANIFEST
from slimguard.core.model.platform import Platform

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
_GZIP_SUFFIXES = ("gzip", "tar.gzip", "diff.tar.gzip")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_TRAILER_BYTES = 4
ZSTD_HEADER_BYTES = 18
_SMALLEST_GZIP = 18  # header + trailer: anything shorter has no trailer to read


class GarbledDocument(ValueError):
    """A manifest, index or config that is not what its media type promises; ``what`` names which."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def load_document(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise GarbledDocument(what) from None
    if not isinstance(document, dict):
        raise GarbledDocument(what)
    return document


def media_type_of(document: Mapping[str, Any], served: str) -> str:
    """The document's own mediaType, else the one it was served as, else what its shape says."""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if served in INDEX_TYPES | IMAGE_TYPES:
        return served
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def annotated_base(annotations: Any) -> BaseImage | None:
    """The base named by OCI annotations (or, identically, config labels), if any."""
    if not isinstance(annotations, Mapping):
        return None
    name = annotations.get(BASE_NAME)
    if not isinstance(name, str) or not name:
        return None
    # An empty digest is no digest: a Dockerfile's `LABEL ...base.digest="${BASE_DIGEST}"` built without the
    # build argument writes "", as slimguard's own does outside `make release`.
    digest = annotations.get(BASE_DIGEST)
    return BaseImage(
        reference=name, method=BaseImageMethod.ANNOTATION, digest=digest if isinstance(digest, str) and digest else None
    )


@dataclass(frozen=True, slots=True)
class IndexEntry:
    platform: Platform
    digest: str


@dataclass(frozen=True, slots=True)
class ParsedIndex:
    entries: tuple[IndexEntry, ...]
    annotated_base: BaseImage | None

    def chosen(self, wanted: frozenset[Platform], *, limit: int) -> tuple[IndexEntry, ...]:
        """One entry per listed platform some wanted platform is satisfied by (the last listed), ``limit`` at most."""
        by_platform = {
            entry.platform: entry for entry in self.entries if any(entry.platform.satisfies(w) for w in wanted)
        }
        return tuple(by_platform.values())[:limit]


def parse_index(document: Mapping[str, Any], *, max_entries: int) -> ParsedIndex:
    """An image index's platform entries (attestations and entries without a platform are skipped)."""
    raw = document.get("manifests")
    if not isinstance(raw, list):
        raise GarbledDocument("image index")
    entries: list[IndexEntry] = []
    for item in raw[:max_entries]:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            raise GarbledDocument("image index")
        platform = _platform_of(item)
        if platform is not None:
            entries.append(IndexEntry(platform, item["digest"]))
    return ParsedIndex(tuple(entries), annotated_base(document.get("annotations")))


def _platform_of(descriptor: Mapping[str, Any]) -> Platform | None:
    raw = descriptor.get("platform")
    if not isinstance(raw, dict) or not _text(raw.get("os")) or not _text(raw.get("architecture")):
        return None
    if raw["os"] == "unknown":  # buildx attestation manifests
        return None
    # Only text: a list as variant made an unhashable Platform, a TypeError far from here (tests/unit/fuzz).
    return Platform(raw["os"], raw["architecture"], _text(raw.get("variant")))


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """An image manifest: its config descriptor and layers, before the config is read."""

    config_digest: str
    config_size: int | None
    layers: tuple[Layer, ...]
    annotated_base: BaseImage | None


def parse_manifest(document: Mapping[str, Any]) -> ParsedManifest:
    config = document.get("config")
    raw_layers = document.get("layers")
    if not isinstance(config, dict) or not isinstance(raw_layers, list) or not isinstance(config.get("digest"), str):
        raise GarbledDocument("image manifest")
    layers: list[Layer] = []
    for raw in raw_layers:
        if not isinstance(raw, dict) or not isinstance(raw.get("digest"), str):
            raise GarbledDocument("image manifest")
        size = raw.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise GarbledDocument("image manifest")
        layers.append(Layer(digest=raw["digest"], size=size, media_type=str(raw.get("mediaType") or "")))
    config_size = config.get("size")
    return ParsedManifest(
        config_digest=config["digest"],
        config_size=config_size if isinstance(config_size, int) and config_size >= 0 else None,
        layers=tuple(layers),
        annotated_base=annotated_base(document.get("annotations")),
    )


def platform_image(
    manifest: ParsedManifest, *, digest: str, config_body: bytes, platform: Platform | None
) -> PlatformImage:
    """One platform's image from its manifest and config: layers with their diff IDs and the steps that made them."""
    config = load_document(config_body, "image config")
    inner = _dict(config.get("config"))
    diff_ids = _list(_dict(config.get("rootfs")).get("diff_ids"))
    commands = _history_commands(config)
    if len(commands) != len(manifest.layers):
        # History that does not line up (builders older than empty_layer list ENV steps as layers; some tools
        # write none, or only the base's): matching by position would blame the wrong step, so blame none.
        commands = []
    layers = tuple(
        replace(
            layer,
            diff_id=str(diff_ids[position]) if position < len(diff_ids) else None,
            created_by=commands[position] if position < len(commands) else None,
        )
        for position, layer in enumerate(manifest.layers)
    )
    actual = Platform(
        _text(config.get("os")) or (platform.os if platform else "linux"),
        _text(config.get("architecture")) or (platform.architecture if platform else "amd64"),
        _text(config.get("variant")) or (platform.variant if platform else None),
    )
    labels = {str(k): str(v) for k, v in _dict(inner.get("Labels")).items()}
    return PlatformImage(
        platform=platform or actual,
        manifest_digest=digest,
        config_digest=manifest.config_digest,
        config_size=manifest.config_size if manifest.config_size is not None else len(config_body),
        layers=layers,
        user=str(inner.get("User") or ""),
        labels=labels,
        created=_created(config.get("created")),
        annotated_base=manifest.annotated_base or annotated_base(labels),
    )


# --- uncompressed sizes, from a few bytes of each layer ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Which bytes of a layer blob tell its uncompressed size (inclusive, as HTTP ranges are)."""

    start: int
    end: int


def uncompressed_probe(layer: Layer) -> ByteRange | Layer:
    """The bytes to read for ``layer``'s uncompressed size, or the layer already complete without a read."""
    if layer.size == 0:
        return replace(layer, uncompressed_size=0)
    if layer.media_type.endswith("tar"):  # not compressed: the blob is the tar
        return replace(layer, uncompressed_size=layer.size)
    if layer.media_type.endswith("zstd"):
        return ByteRange(0, min(layer.size, ZSTD_HEADER_BYTES) - 1)
    if layer.media_type.endswith(_GZIP_SUFFIXES) or layer.media_type == "":
        if layer.size < _SMALLEST_GZIP:
            return layer
        return ByteRange(layer.size - GZIP_TRAILER_BYTES, layer.size - 1)
    return layer  # a compression slimguard cannot read sizes of: unknown


def with_uncompressed(layer: Layer, probe: bytes) -> Layer:
    """``layer`` with the uncompressed size its probe bytes (see ``uncompressed_probe``) say."""
    if layer.media_type.endswith("zstd"):
        return replace(layer, uncompressed_size=zstd_content_size(probe))
    if len(probe) != GZIP_TRAILER_BYTES:
        return layer
    (isize,) = struct.unpack("<I", probe)
    # ISIZE is the size modulo 2**32: a layer over 4 GiB wraps, and is then smaller than its gzip. Incompressible
    # data (random bytes, media, already compressed files) is smaller than its gzip too, by deflate's framing:
    # only a size below what that framing allows has wrapped. That guess is why a trailer's size is an estimate.
    slack = gzip_expansion(layer.size)
    if isize + slack < layer.size:  # arithmetic, not a loop: a manifest may claim a layer of 2**62 bytes
        isize += -((isize + slack - layer.size) // 2**32) * 2**32
    return replace(layer, uncompressed_size=isize, uncompressed_estimated=True)


def gzip_expansion(compressed: int) -> int:
    """The most a gzip blob of ``compressed`` bytes can exceed the data it holds, with room to spare: deflate's
    stored blocks add 5 bytes per 64 KiB (zlib's ``compressBound``: about 0.03%), the member's header and trailer
    18 bytes and up (a file name, a comment)."""
    return compressed // 1000 + 1024


def zstd_content_size(head: bytes) -> int | None:
    """Frame_Content_Size from a zstd frame header, when the encoder wrote it."""
    if len(head) < 6 or head[:4] != _ZSTD_MAGIC:
        return None
    descriptor = head[4]
    size_flag = descriptor >> 6
    single_segment = (descriptor >> 5) & 1
    dict_flag = descriptor & 3
    position = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    field_size = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    if field_size == 0 or len(head) < position + field_size:
        return None
    value = int.from_bytes(head[position : position + field_size], "little")
    return value + 256 if field_size == 2 else value


def _text(value: Any) -> str | None:
    """A non-empty string field, else None: registries may serve any JSON where a string belongs."""
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _created(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _history_commands(config: Mapping[str, Any]) -> list[str | None]:
    """``created_by`` of each history entry that made a layer (empty_layer entries made none)."""
    return [
        str(entry.get("created_by") or "") or None
        for entry in _list(config.get("history"))
        if isinstance(entry, dict) and not entry.get("empty_layer")
    ]
