"""Image facts from the registry: manifest and config first, layer trailers only when a rule needs them."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from slimguard.core.errors import InspectionError, InvalidReference
from slimguard.core.facts import BaseImage, BaseImageMethod, ImageFacts, Layer, Platform, PlatformImage
from slimguard.core.reference import ImageReference
from slimguard.registry.cache import Coalescer, LruCache, TtlCache
from slimguard.registry.client import Manifest, RegistryClient
from slimguard.registry.credentials import Credential, credentials_for

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
_INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
_IMAGE_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
_GZIP_TYPES = ("gzip", "tar.gzip", "diff.tar.gzip")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _garbled(reference: ImageReference, what: str) -> InspectionError:
    return InspectionError(
        f"registry {reference.registry} served a garbled {what} for {reference}", reason="GarbledManifest"
    )


def _load_json(body: bytes, reference: ImageReference, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _garbled(reference, what) from None
    if not isinstance(document, dict):
        raise _garbled(reference, what)
    return document


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _annotated_base(annotations: Mapping[str, Any] | None) -> BaseImage | None:
    if not annotations or not isinstance(annotations.get(BASE_NAME), str) or not annotations[BASE_NAME]:
        return None
    digest = annotations.get(BASE_DIGEST)
    return BaseImage(
        reference=annotations[BASE_NAME],
        method=BaseImageMethod.ANNOTATION,
        digest=digest if isinstance(digest, str) else None,
    )


def _media_type(manifest: Manifest, document: Mapping[str, Any]) -> str:
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if manifest.media_type in _INDEX_TYPES | _IMAGE_TYPES:
        return manifest.media_type
    return (
        "application/vnd.oci.image.index.v1+json"
        if "manifests" in document
        else ("application/vnd.oci.image.manifest.v1+json")
    )


def _platform_of(descriptor: Mapping[str, Any]) -> Platform | None:
    raw = descriptor.get("platform")
    if not isinstance(raw, dict) or not raw.get("os") or not raw.get("architecture"):
        return None
    if raw["os"] == "unknown":  # buildx attestation manifests
        return None
    return Platform(str(raw["os"]), str(raw["architecture"]), raw.get("variant") or None)


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


class ImageInspector:
    """Turns image references into ImageFacts, at the least cost to the registry.

    - A tag is resolved with one HEAD, cached per repository, tag and credential for a short TTL (tags move);
      resolving per credential is what keeps a private image private to workloads that hold its secret.
    - Facts are cached by digest, forever (a digest never changes), in an LRU.
    - Concurrent requests for the same tag or digest share one fetch.
    """

    def __init__(
        self,
        client: RegistryClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        settings = client.settings
        self._tags: TtlCache[tuple[str, str, str], str] = TtlCache(settings.tag_ttl_seconds, clock)
        # A registry that is down or refuses us is asked again only after a pause: an outage must not make
        # every admission wait out its deadline, nor every re-audit hammer the registry.
        self._failures: TtlCache[tuple[str, str], InspectionError] = TtlCache(settings.failure_ttl_seconds, clock)
        self._facts: LruCache[str, ImageFacts] = LruCache(settings.facts_cache_size)
        self._resolving: Coalescer[tuple[str, str, str], str] = Coalescer()
        self._fetching: Coalescer[tuple[str, frozenset[Platform], bool], ImageFacts] = Coalescer()

    def cached(
        self,
        image: str,
        *,
        credentials: Sequence[Credential] = (),
        platforms: Iterable[Platform],
        uncompressed: bool = False,
    ) -> ImageFacts | InspectionError | None:
        """What ``inspect`` would return, if it can be answered from memory alone; None otherwise.

        The admission path asks this first: a warm decision then never yields to the event loop, so other
        requests' work does not land inside its latency.
        """
        try:
            reference, credential = self._identify(image, credentials)
        except InspectionError as error:
            return error
        identity = credential.username if credential else ""
        digest = self._tags.get((reference.name, reference.identifier, identity))
        facts = self._facts.get(digest) if digest is not None else None
        if facts is not None and self._complete(facts, frozenset(platforms), uncompressed):
            return facts
        return None

    async def inspect(
        self,
        image: str,
        *,
        credentials: Sequence[Credential] = (),
        platforms: Iterable[Platform],
        uncompressed: bool = False,
    ) -> ImageFacts:
        """Facts for ``image`` with the given platforms fetched (and uncompressed sizes if asked)."""
        reference, credential = self._identify(image, credentials)
        try:
            return await self._inspect(reference, credential, frozenset(platforms), uncompressed)
        except InspectionError as error:
            self._failures.put(self._failure_key(reference, credential), error)
            raise

    @staticmethod
    def _failure_key(reference: ImageReference, credential: Credential | None) -> tuple[str, str]:
        return (str(reference), credential.username if credential else "")

    def _identify(self, image: str, credentials: Sequence[Credential]) -> tuple[ImageReference, Credential | None]:
        """Parse the reference and pick its credential; raises a recent failure for the same pair again."""
        try:
            reference = ImageReference.parse(image)
        except InvalidReference as error:
            raise InspectionError(str(error), reason="InvalidReference") from None
        credential = next(iter(credentials_for(reference, credentials)), None)
        failed = self._failures.get(self._failure_key(reference, credential))
        if failed is not None:
            raise failed
        return reference, credential

    async def _inspect(
        self, reference: ImageReference, credential: Credential | None, wanted: frozenset[Platform], uncompressed: bool
    ) -> ImageFacts:
        digest = await self._resolve(reference, credential)
        cached = self._facts.get(digest)
        if cached is not None and self._complete(cached, wanted, uncompressed):
            return cached
        return await self._fetching.run(
            (digest, wanted, uncompressed),
            lambda: self._fetch(reference, digest, credential, wanted, uncompressed),
        )

    @staticmethod
    def _complete(facts: ImageFacts, wanted: frozenset[Platform], uncompressed: bool) -> bool:
        for platform in wanted:
            image = facts.for_platform(platform)
            listed = any(p.satisfies(platform) for p in facts.listed_platforms) if facts.is_index else False
            if image is None and listed:
                return False
            if image is not None and uncompressed and image.uncompressed_size is None:
                return False
        return True

    async def _resolve(self, reference: ImageReference, credential: Credential | None) -> str:
        identity = credential.username if credential else ""
        key = (reference.name, reference.identifier, identity)
        cached = self._tags.get(key)
        if cached is not None:
            return cached

        async def head() -> str:
            result = await self.client.head_manifest(reference, credential)
            if result is not None:
                digest = result.digest
            else:  # some registries omit the digest header on HEAD
                manifest = await self.client.get_manifest(reference, reference.identifier, credential)
                digest = manifest.digest
            if reference.digest and digest != reference.digest:
                raise InspectionError(
                    f"registry {reference.registry} answered {reference} with digest {digest}", reason="DigestMismatch"
                )
            self._tags.put(key, digest)
            return digest

        return await self._resolving.run(key, head)

    async def _fetch(
        self,
        reference: ImageReference,
        digest: str,
        credential: Credential | None,
        wanted: frozenset[Platform],
        uncompressed: bool,
    ) -> ImageFacts:
        previous = self._facts.get(digest)
        manifest = await self.client.get_manifest(reference, digest, credential)
        document = _load_json(manifest.body, reference, "manifest")
        media_type = _media_type(manifest, document)
        known = {image.platform: image for image in previous.platforms} if previous else {}
        if media_type in _INDEX_TYPES:
            facts = await self._from_index(reference, manifest, document, credential, wanted, known, uncompressed)
        elif media_type in _IMAGE_TYPES:
            image = await self._platform_image(reference, manifest.digest, document, credential, None, uncompressed)
            facts = ImageFacts(
                digest=digest, media_type=media_type, platforms=(image,), annotated_base=image.annotated_base
            )
        else:
            raise InspectionError(
                f"{reference} has a manifest of type {media_type or 'unknown'}, which slimguard does not read "
                "(Docker schema 1 is deprecated: push the image again with a current builder)",
                reason="UnsupportedManifest",
            )
        self._facts.put(digest, facts)
        return facts

    async def _from_index(
        self,
        reference: ImageReference,
        manifest: Manifest,
        document: Mapping[str, Any],
        credential: Credential | None,
        wanted: frozenset[Platform],
        known: Mapping[Platform, PlatformImage],
        uncompressed: bool,
    ) -> ImageFacts:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise _garbled(reference, "image index")
        listed: list[tuple[Platform, str]] = []
        for entry in entries[: self.client.settings.max_platform_manifests * 2]:
            if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
                raise _garbled(reference, "image index")
            platform = _platform_of(entry)
            if platform is not None:
                listed.append((platform, entry["digest"]))
        index_base = _annotated_base(document.get("annotations"))
        chosen = {platform: child for platform, child in listed if any(platform.satisfies(w) for w in wanted)}
        jobs = []
        for platform, child in list(chosen.items())[: self.client.settings.max_platform_manifests]:
            cached = known.get(platform)
            if cached is not None and not (uncompressed and cached.uncompressed_size is None):
                jobs.append(asyncio.sleep(0, cached))
            else:
                jobs.append(self._child(reference, child, credential, platform, uncompressed))
        images = tuple(await asyncio.gather(*jobs))
        return ImageFacts(
            digest=manifest.digest,
            media_type=_media_type(manifest, document),
            platforms=images,
            annotated_base=index_base,
            listed_platforms=tuple(platform for platform, _ in listed),
        )

    async def _child(
        self,
        reference: ImageReference,
        digest: str,
        credential: Credential | None,
        platform: Platform,
        uncompressed: bool,
    ) -> PlatformImage:
        manifest = await self.client.get_manifest(reference, digest, credential)
        document = _load_json(manifest.body, reference, "platform manifest")
        return await self._platform_image(reference, digest, document, credential, platform, uncompressed)

    async def _platform_image(
        self,
        reference: ImageReference,
        digest: str,
        document: Mapping[str, Any],
        credential: Credential | None,
        platform: Platform | None,
        uncompressed: bool,
    ) -> PlatformImage:
        config_descriptor = document.get("config")
        raw_layers = document.get("layers")
        if not isinstance(config_descriptor, dict) or not isinstance(raw_layers, list):
            raise _garbled(reference, "image manifest")
        config_digest = config_descriptor.get("digest")
        if not isinstance(config_digest, str):
            raise _garbled(reference, "image manifest")
        config_body = await self.client.get_blob(
            reference, config_digest, credential, max_bytes=self.client.settings.max_config_bytes
        )
        config = _load_json(config_body, reference, "image config")
        inner = _dict(config.get("config"))
        diff_ids = _list(_dict(config.get("rootfs")).get("diff_ids"))
        commands = _history_commands(config)
        layers: list[Layer] = []
        for position, raw in enumerate(raw_layers):
            if not isinstance(raw, dict) or not isinstance(raw.get("digest"), str):
                raise _garbled(reference, "image manifest")
            size = raw.get("size")
            if not isinstance(size, int) or size < 0:
                raise _garbled(reference, "image manifest")
            layers.append(
                Layer(
                    digest=raw["digest"],
                    size=size,
                    media_type=str(raw.get("mediaType") or ""),
                    diff_id=str(diff_ids[position]) if position < len(diff_ids) else None,
                    created_by=commands[position] if position < len(commands) else None,
                )
            )
        if uncompressed:
            layers = list(
                await asyncio.gather(*(self._with_uncompressed(reference, layer, credential) for layer in layers))
            )
        actual_platform = Platform(
            str(config.get("os") or (platform.os if platform else "linux")),
            str(config.get("architecture") or (platform.architecture if platform else "amd64")),
            config.get("variant") or (platform.variant if platform else None),
        )
        labels = _dict(inner.get("Labels"))
        return PlatformImage(
            platform=platform or actual_platform,
            manifest_digest=digest,
            config_digest=config_digest,
            config_size=int(config_descriptor.get("size") or len(config_body)),
            layers=tuple(layers),
            user=str(inner.get("User") or ""),
            labels={str(k): str(v) for k, v in labels.items()},
            created=_created(config.get("created")),
            annotated_base=_annotated_base(document.get("annotations")) or _annotated_base(labels),
        )

    async def _with_uncompressed(self, reference: ImageReference, layer: Layer, credential: Credential | None) -> Layer:
        """Read the uncompressed size from the layer's last 4 bytes (gzip ISIZE) or its zstd frame header."""
        if layer.size == 0:
            return replace(layer, uncompressed_size=0)
        if layer.media_type.endswith("zstd"):
            head = await self.client.get_blob_range(
                reference, layer.digest, credential, start=0, end=min(layer.size, 18) - 1
            )
            return replace(layer, uncompressed_size=zstd_content_size(head))
        if layer.media_type.endswith(_GZIP_TYPES) or layer.media_type == "":
            if layer.size < 18:
                return layer
            tail = await self.client.get_blob_range(
                reference, layer.digest, credential, start=layer.size - 4, end=layer.size - 1
            )
            (isize,) = struct.unpack("<I", tail)
            # ISIZE is the size modulo 2**32: a layer that compresses better than 1:1 and is over 4 GiB would wrap.
            while isize < layer.size:
                isize += 2**32
            return replace(layer, uncompressed_size=isize)
        if layer.media_type.endswith("tar"):  # uncompressed layer
            return replace(layer, uncompressed_size=layer.size)
        return layer


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
