"""Slimmer bases measured in the registry: the base's tag list, its slim variants' and named candidates' sizes.

Sizes come from manifests (an index, the platforms' manifests; a single-platform image's small config to learn
its platform), never from layers. Everything is cached for ``ttl`` seconds: a tag list at most once per
repository and credential, each candidate's size once per platform set, and each base's whole answer, so an
admission of a seen image asks the registry nothing. A base with no slimmer variant is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from slimguard.core.errors import InspectionError, InvalidReference
from slimguard.core.evaluation.slimmer_bases import BaseQuery, variant_references
from slimguard.core.facts import oci
from slimguard.core.facts.bases import BaseOptions, MeasuredImage
from slimguard.core.facts.media_types import IMAGE_TYPES, INDEX_TYPES
from slimguard.core.model.platform import Platform
from slimguard.core.model.reference import ImageReference
from slimguard.registry.cache import Coalescer, TtlCache
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential, credentials_for
from slimguard.registry.tags import list_tags
from slimguard.tasks import BackgroundTasks

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Looked:
    """A base looked up: its options, or None when the base itself could not be measured."""

    options: BaseOptions | None


class SlimmerBaseFinder:
    """Finds and measures slimmer candidates for bases, at most once per repository per TTL."""

    def __init__(
        self,
        client: RegistryClient,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        tasks: BackgroundTasks | None = None,
    ) -> None:
        self.client = client
        self.tasks = tasks if tasks is not None else BackgroundTasks("the slimmer-base finder")
        self._tags: TtlCache[tuple[str, str], tuple[str, ...]] = TtlCache(ttl, clock)
        self._sizes: TtlCache[tuple[str, str, frozenset[Platform]], MeasuredImage | None] = TtlCache(ttl, clock)
        self._answers: TtlCache[tuple[str, BaseQuery, str], Looked] = TtlCache(ttl, clock)
        self._listing: Coalescer[tuple[str, str], tuple[str, ...]] = Coalescer(self.tasks)
        self._measuring: Coalescer[tuple[str, str, frozenset[Platform]], MeasuredImage | None] = Coalescer(self.tasks)
        self._answering: Coalescer[tuple[str, BaseQuery, str], Looked] = Coalescer(self.tasks)
        self._said_none: set[str] = set()
        self.tag_lists_fetched = 0

    def cached(self, base: str, query: BaseQuery, credentials: Sequence[Credential]) -> Looked | None:
        """The answer from memory alone (None: not known yet); no task, no request."""
        return self._answers.get((base, query, _identity(base, credentials)))

    async def options(self, base: str, query: BaseQuery, credentials: Sequence[Credential]) -> Looked:
        key = (base, query, _identity(base, credentials))
        known = self._answers.get(key)
        if known is not None:
            return known
        return await self._answering.run(key, lambda: self._answer(key, base, query, credentials))

    async def _answer(
        self, key: tuple[str, BaseQuery, str], base: str, query: BaseQuery, credentials: Sequence[Credential]
    ) -> Looked:
        # Side by side: the tag list is asked for even when the base turns out unreadable, and cached either way.
        measured_base, variants = await asyncio.gather(
            self._measure(base, query.platforms, credentials),
            self._variants(base, credentials) if query.from_tags else _nothing(),
        )
        if measured_base is None:
            looked = Looked(None)
        else:
            references = tuple(dict.fromkeys(ref for ref in (*variants, *query.named) if ref != base))
            sizes = await asyncio.gather(*(self._measure(ref, query.platforms, credentials) for ref in references))
            measured = {ref: size for ref, size in zip(references, sizes, strict=True) if size is not None}
            looked = Looked(BaseOptions(measured_base, variants, measured))
            self._say_once_if_none(base, measured_base, measured)
        self._answers.put(key, looked)
        return looked

    def _say_once_if_none(self, base: str, measured_base: MeasuredImage, measured: dict[str, MeasuredImage]) -> None:
        smaller = any(
            (size := candidate.size_for(platform)) is not None and size < base_size
            for candidate in measured.values()
            for platform, base_size in measured_base.sizes.items()
        )
        if not smaller and base not in self._said_none:
            self._said_none.add(base)
            log.info("no slimmer variant of base %s found (%d candidates measured)", base, len(measured))

    async def _variants(self, base: str, credentials: Sequence[Credential]) -> tuple[str, ...]:
        try:
            reference = ImageReference.parse(base)
        except InvalidReference:
            return ()
        credential = next(iter(credentials_for(reference, credentials)), None)
        key = (reference.name, credential.username if credential else "")
        tags = self._tags.get(key)
        if tags is None:
            tags = await self._listing.run(key, lambda: self._list(key, reference, credential))
        return variant_references(base, tags)

    async def _list(
        self, key: tuple[str, str], reference: ImageReference, credential: Credential | None
    ) -> tuple[str, ...]:
        self.tag_lists_fetched += 1
        try:
            listed = await list_tags(self.client, reference, credential)
            tags = listed.tags
        except InspectionError as error:
            # A hint is a courtesy: a tag list the registry refuses (many do, anonymously) is no error finding.
            log.info("tag list of %s not read: %s", reference.name, error)
            tags = ()
        self._tags.put(key, tags)
        return tags

    async def _measure(
        self, image: str, platforms: frozenset[Platform], credentials: Sequence[Credential]
    ) -> MeasuredImage | None:
        try:
            reference = ImageReference.parse(image)
        except InvalidReference:
            return None
        credential = next(iter(credentials_for(reference, credentials)), None)
        key = (image, credential.username if credential else "", platforms)
        known = self._sizes.get(key)
        if known is not None:
            return known if known.sizes else None
        return await self._measuring.run(key, lambda: self._read_size(key, image, reference, credential, platforms))

    async def _read_size(
        self,
        key: tuple[str, str, frozenset[Platform]],
        image: str,
        reference: ImageReference,
        credential: Credential | None,
        platforms: frozenset[Platform],
    ) -> MeasuredImage | None:
        try:
            measured: MeasuredImage | None = await self._sizes_of(image, reference, credential, platforms)
        except (InspectionError, oci.GarbledDocument) as error:
            log.info("candidate base %s not measured: %s", image, error)
            measured = None
        if measured is not None:
            self._sizes.put(key, measured)
        else:
            self._sizes.put(key, MeasuredImage(image, {}))  # unreadable: an empty measurement fits nowhere
        return measured

    async def _sizes_of(
        self, image: str, reference: ImageReference, credential: Credential | None, platforms: frozenset[Platform]
    ) -> MeasuredImage | None:
        settings = self.client.settings
        manifest = await self.client.get_manifest(reference, reference.identifier, credential)
        document = oci.load_document(manifest.body, "manifest")
        media_type = oci.media_type_of(document, manifest.media_type)
        sizes: dict[Platform, int] = {}
        if media_type in INDEX_TYPES:
            index = oci.parse_index(document, max_entries=settings.max_platform_manifests * 2)
            for entry in index.chosen(platforms, limit=settings.max_platform_manifests):
                child = await self.client.get_manifest(reference, entry.digest, credential)
                sizes[entry.platform] = _compressed(oci.parse_manifest(oci.load_document(child.body, "manifest")))
        elif media_type in IMAGE_TYPES:
            parsed = oci.parse_manifest(document)
            config = await self.client.get_blob(
                reference, parsed.config_digest, credential, max_bytes=settings.max_config_bytes
            )
            platform = oci.platform_image(parsed, digest=manifest.digest, config_body=config, platform=None).platform
            sizes[platform] = _compressed(parsed)
        else:
            return None
        return MeasuredImage(image, sizes) if sizes else None


async def _nothing() -> tuple[str, ...]:
    return ()


def _compressed(manifest: oci.ParsedManifest) -> int:
    return (manifest.config_size or 0) + sum(layer.size for layer in manifest.layers)


def _identity(base: str, credentials: Sequence[Credential]) -> str:
    try:
        reference = ImageReference.parse(base)
    except InvalidReference:
        return ""
    credential = next(iter(credentials_for(reference, credentials)), None)
    return credential.username if credential else ""
