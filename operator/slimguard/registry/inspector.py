"""Image facts from the registry: manifest and config first, layer trailers only when a rule needs them, and
whole layers (streamed once per layer digest) only when a content rule does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from slimguard import metrics
from slimguard.core.errors import InspectionError, InspectionReason, InvalidReference
from slimguard.core.facts import oci
from slimguard.core.facts.content import ContentFacts, LayerContent
from slimguard.core.facts.content_analysis import analyse_content
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts, Layer, PlatformImage
from slimguard.core.facts.media_types import IMAGE_TYPES, INDEX_TYPES
from slimguard.core.model.platform import Platform
from slimguard.core.model.reference import ImageReference
from slimguard.layers.walker import LayerLimits, LayerRefused, walk_layer_stream
from slimguard.registry.cache import Coalescer, LruCache, RevalidatingCache, TtlCache
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential, credentials_for
from slimguard.tasks import BackgroundTasks


class DigestStore(Protocol):
    """Facts kept by digest outside the inspector (in the cluster: the ImageReports), which the inspector asks
    between resolving a reference and fetching it, and tells what it answered.

    A digest never changes, so what a store holds about one is as good as reading the registry again: a digest
    reference it covers costs no request, even while the registry is down. A tag moves: it is still resolved
    (with its HEAD, unless the tag cache knows it), and only what it resolves to is looked up, so a tag costs
    the requests it cost before when the store has nothing. The store is asked before the inspector's own
    cache because it can know more than this process read (a webhook reads no layer; the controller wrote their
    contents). Its lookups are counted as the ``reports`` cache. Called on the event loop.
    """

    def facts_for(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        """The facts kept for ``digest`` in memory, if they hold all ``needs`` asks (``ImageFacts.holds``); None
        otherwise. No I/O: what a warm admission asks (``ImageInspector.cached``)."""
        ...

    async def read(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        """As ``facts_for``, reading them from where they are kept if they are not in memory (the ImageReports:
        one GET by name), when an inspection may wait for it."""
        ...

    def would_read(self, digest: str) -> bool:
        """Facts are kept for ``digest`` that are not in memory: ``read`` would fetch them. The warm path then
        leaves the answer to ``inspect``, rather than answer from the inspector's own memory, which may know less
        (a webhook's: no layer contents)."""
        ...

    def remember(self, image: str, facts: ImageFacts, *, learned: bool) -> None:
        """``image`` was answered with ``facts``: ``learned`` when they came from the registry or the inspector's
        memory (news the store may keep), not when the store itself gave them."""
        ...


def _garbled(reference: ImageReference, what: str) -> InspectionError:
    return InspectionError(
        f"registry {reference.registry} served a garbled {what} for {reference}",
        reason=InspectionReason.GARBLED_MANIFEST,
    )


class ImageInspector:
    """Turns image references into ImageFacts, at the least cost to the registry.

    - A tag is resolved with one HEAD, cached per repository, tag and credential for a short TTL (tags move);
      resolving per credential is what keeps a private image private to workloads that hold its secret.
      A seen tag is answered from memory and re-resolved in the background, ahead of its TTL and for a
      bounded staleness past it (`RevalidatingCache`): no admission of a seen image waits on a HEAD.
    - Facts are cached by digest, forever (a digest never changes), in an LRU.
    - Concurrent requests for the same tag or digest share one fetch.
    - With contents needed and ``read_layers`` on (the controller), each layer blob is streamed once through
      the layer walker and its LayerContent kept by layer digest (an LRU bounded by tar entries), so a base's
      layers are read once for every image built on it. The webhook passes ``read_layers=False``: it never
      downloads a layer, and ``PlatformImage.content`` stays None (content rules then say ContentPending).
    - With a ``store`` (``DigestStore``: the ImageReports), a digest it covers is answered from it, before the
      failure cache and any request for a digest reference, after the HEAD for a tag.
    """

    def __init__(
        self,
        client: RegistryClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        read_layers: bool = True,
        layer_limits: LayerLimits | None = None,
        layer_cache_entries: int = 2_000_000,
        tasks: BackgroundTasks | None = None,
        store: DigestStore | None = None,
    ) -> None:
        self.client = client
        self.store = store
        # Coalesced reads and background re-resolves: cancelled by `stop_background` before the client closes.
        self.tasks = tasks if tasks is not None else BackgroundTasks("the image inspector")
        self.read_layers = read_layers
        self.layer_limits = layer_limits or LayerLimits()
        # ~150 bytes an entry: 2M entries is ~300 MB at most, the layers of a few hundred typical images.
        self._layers: LruCache[str, LayerContent] = LruCache(
            layer_cache_entries, weigh=lambda content: len(content.entries) + 1
        )
        self._reading: Coalescer[str, LayerContent] = Coalescer(self.tasks)
        # A layer refused for what its verified bytes hold stays refused: a digest's content never changes.
        self._refused: LruCache[str, LayerRefused] = LruCache(4096)
        self.layer_reads = 0
        """Layer blobs streamed (cache misses): what a base shared by many images must cost once."""
        settings = client.settings
        self._tags: RevalidatingCache[tuple[str, str, str], str] = RevalidatingCache(
            ttl=settings.tag_ttl_seconds,
            max_stale=settings.tag_max_stale_seconds,
            refresh_after=settings.tag_refresh_after_seconds,
            retry_seconds=settings.failure_ttl_seconds,
            clock=clock,
            tasks=self.tasks,
        )
        # A registry that is down or refuses us is asked again only after a pause: an outage must not make
        # every admission wait out its deadline, nor every re-audit hammer the registry.
        self._failures: TtlCache[tuple[str, str], InspectionError] = TtlCache(settings.failure_ttl_seconds, clock)
        self._facts: LruCache[str, ImageFacts] = LruCache(settings.facts_cache_size)
        self._resolving: Coalescer[tuple[str, str, str], str] = Coalescer(self.tasks)
        self._fetching: Coalescer[tuple[str, FactsNeeds], ImageFacts] = Coalescer(self.tasks)

    @property
    def tags_revalidating(self) -> int:
        """Tags being re-resolved in the background right now."""
        return self._tags.revalidating

    async def tags_settled(self) -> None:
        """Returns once no tag is being re-resolved in the background."""
        await self._tags.settled()

    async def stop_background(self) -> None:
        """Cancel and await every read and re-resolve in flight (and refuse new ones): at shutdown they would
        otherwise still be sending when the client closes."""
        await self.tasks.aclose()

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential] = ()
    ) -> ImageFacts | InspectionError | None:
        """What ``inspect`` would return, if it can be answered from memory alone; None otherwise.

        The admission path asks this first: a warm decision then never yields to the event loop, so other
        requests' work does not land inside its latency.
        """
        reads = self._reads(needs)
        try:
            reference, credential = self._identify(image, credentials)
            if self.store is not None:
                # A digest, or the one a tag last resolved to: the store is asked before the failure cache. A tag
                # past its refresh point is re-resolved in the background here too, as below.
                known = reference.digest or self._tags.get(
                    self._tag_key(reference, credential), self._revalidation(reference, credential)
                )
                if known is not None and (stored := self._stored(known, reads)) is not None:
                    self._remember(image, stored, learned=False)
                    return stored
                if known is not None and self.store.would_read(known):
                    return None  # the store keeps a report it has not read yet: it may know more than memory does
            self._raise_recent_failure(reference, credential, count_miss=False)
        except InspectionError as error:
            return error
        digest = self._tags.get(self._tag_key(reference, credential), self._revalidation(reference, credential))
        facts = self._facts.get(digest) if digest is not None else None
        if facts is not None and facts.holds(reads):
            # Counted only when memory answers: otherwise `inspect` follows and counts the lookups it makes.
            metrics.cache_lookup("tags", hit=True)
            metrics.cache_lookup("facts", hit=True)
            self._remember(image, facts, learned=True)
            return facts
        return None

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential] = ()) -> ImageFacts:
        """Facts for ``image`` holding what ``needs`` asks: its platforms, their layer sizes and contents if asked."""
        reference, credential = self._identify(image, credentials)
        reads = self._reads(needs)
        # Before the failure cache and any request: a store answers a digest even while the registry is down.
        if reference.digest is not None and (stored := await self._read_stored(reference.digest, reads)) is not None:
            self._remember(image, stored, learned=False)
            return stored
        self._raise_recent_failure(reference, credential, count_miss=True)
        try:
            facts, learned = await self._inspect(reference, credential, reads)
        except InspectionError as error:
            metrics.INSPECTION_FAILURES.labels(reason=error.reason).inc()
            self._failures.put(self._failure_key(reference, credential), error)
            raise
        self._remember(image, facts, learned=learned)
        return facts

    def _reads(self, needs: FactsNeeds) -> FactsNeeds:
        """What is read for this request: what is needed, contents only if this inspector reads layers at all."""
        return needs if self.read_layers or not needs.content else replace(needs, content=False)

    @staticmethod
    def _failure_key(reference: ImageReference, credential: Credential | None) -> tuple[str, str]:
        return (str(reference), credential.username if credential else "")

    def _identify(self, image: str, credentials: Sequence[Credential]) -> tuple[ImageReference, Credential | None]:
        """Parse the reference and pick its credential."""
        try:
            reference = ImageReference.parse(image)
        except InvalidReference as error:
            metrics.INSPECTION_FAILURES.labels(reason=InspectionReason.INVALID_REFERENCE).inc()
            raise InspectionError(str(error), reason=InspectionReason.INVALID_REFERENCE) from None
        return reference, next(iter(credentials_for(reference, credentials)), None)

    def _raise_recent_failure(
        self, reference: ImageReference, credential: Credential | None, *, count_miss: bool
    ) -> None:
        """Raise a recent failure for the same reference and credential again."""
        failed = self._failures.get(self._failure_key(reference, credential))
        if failed is not None:
            metrics.cache_lookup("failures", hit=True)
            raise failed
        if count_miss:  # `cached` probes first and `inspect` follows: count the miss once
            metrics.cache_lookup("failures", hit=False)

    def _stored(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        """The store's facts for ``digest`` in memory, if they hold all that is needed (``cached`` probes; a miss is
        counted by the ``inspect`` that follows)."""
        if self.store is None:
            return None
        facts = self.store.facts_for(digest, needs)
        if facts is not None:
            metrics.cache_lookup("reports", hit=True)
        return facts

    async def _read_stored(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        """The store's facts for ``digest``, read from where it keeps them if need be (``inspect`` may wait)."""
        if self.store is None:
            return None
        facts = await self.store.read(digest, needs)
        metrics.cache_lookup("reports", hit=facts is not None)
        return facts

    def _remember(self, image: str, facts: ImageFacts, *, learned: bool) -> None:
        if self.store is not None:
            self.store.remember(image, facts, learned=learned)

    async def _inspect(
        self, reference: ImageReference, credential: Credential | None, needs: FactsNeeds
    ) -> tuple[ImageFacts, bool]:
        """The facts, and whether they were learned (from the registry or memory) rather than given by the store.
        ``needs`` is what this inspector reads (never contents for the webhook): a stored report without the
        layers' contents then still answers, and content rules say ContentPending until the controller's does."""
        digest = await self._resolve(reference, credential)
        if (stored := await self._read_stored(digest, needs)) is not None:
            return stored, False
        return await self._facts_of(reference, digest, credential, needs), True

    async def _facts_of(
        self, reference: ImageReference, digest: str, credential: Credential | None, needs: FactsNeeds
    ) -> ImageFacts:
        """A resolved digest's facts: from memory when complete enough, else read once (coalesced)."""
        cached = self._facts.get(digest)
        hit = cached is not None and cached.holds(needs)
        metrics.cache_lookup("facts", hit=hit)
        if cached is not None and hit:
            return cached
        return await self._fetching.run((digest, needs), lambda: self._fetch(reference, digest, credential, needs))

    @staticmethod
    def _tag_key(reference: ImageReference, credential: Credential | None) -> tuple[str, str, str]:
        return (reference.name, reference.identifier, credential.username if credential else "")

    def _revalidation(
        self, reference: ImageReference, credential: Credential | None
    ) -> Callable[[], Coroutine[Any, Any, str]]:
        return lambda: self._resolve_now(reference, credential)

    async def _resolve(self, reference: ImageReference, credential: Credential | None) -> str:
        cached = self._tags.get(self._tag_key(reference, credential), self._revalidation(reference, credential))
        metrics.cache_lookup("tags", hit=cached is not None)
        if cached is not None:
            return cached
        return await self._resolve_now(reference, credential)

    async def _resolve_now(self, reference: ImageReference, credential: Credential | None) -> str:
        """Ask the registry (one HEAD, shared by concurrent callers and the background re-resolve)."""
        key = self._tag_key(reference, credential)

        async def head() -> str:
            result = await self.client.head_manifest(reference, credential)
            if result is not None:
                digest = result.digest
            else:  # some registries omit the digest header on HEAD
                manifest = await self.client.get_manifest(reference, reference.identifier, credential)
                digest = manifest.digest
            if reference.digest and digest != reference.digest:
                raise InspectionError(
                    f"registry {reference.registry} answered {reference} with digest {digest}",
                    reason=InspectionReason.DIGEST_MISMATCH,
                )
            self._tags.put(key, digest)
            return digest

        return await self._resolving.run(key, head)

    async def _fetch(
        self, reference: ImageReference, digest: str, credential: Credential | None, needs: FactsNeeds
    ) -> ImageFacts:
        """Read one digest's facts from the registry (timed: this is the cost a cache miss has)."""
        with metrics.INSPECTION_SECONDS.time():
            return await self._read_facts(reference, digest, credential, needs)

    async def _read_facts(
        self, reference: ImageReference, digest: str, credential: Credential | None, needs: FactsNeeds
    ) -> ImageFacts:
        previous = self._facts.get(digest)
        manifest = await self.client.get_manifest(reference, digest, credential)
        try:
            document = oci.load_document(manifest.body, "manifest")
            media_type = oci.media_type_of(document, manifest.media_type)
            if media_type in INDEX_TYPES:
                known = {image.platform: image for image in previous.platforms} if previous else {}
                index = oci.parse_index(document, max_entries=self.client.settings.max_platform_manifests * 2)
                images = await self._platform_images(reference, index, credential, needs, known)
                facts = ImageFacts(
                    digest=manifest.digest,
                    media_type=media_type,
                    platforms=images,
                    annotated_base=index.annotated_base,
                    listed_platforms=tuple(entry.platform for entry in index.entries),
                )
            elif media_type in IMAGE_TYPES:
                image = await self._platform_image(
                    reference, oci.parse_manifest(document), manifest.digest, credential, None, needs
                )
                facts = ImageFacts(
                    digest=digest, media_type=media_type, platforms=(image,), annotated_base=image.annotated_base
                )
            else:
                raise InspectionError(
                    f"{reference} has a manifest of type {media_type or 'unknown'}, which slimguard does not read "
                    "(Docker schema 1 is deprecated: push the image again with a current builder)",
                    reason=InspectionReason.UNSUPPORTED_MANIFEST,
                )
        except oci.GarbledDocument as garbled:
            raise _garbled(reference, garbled.what) from None
        self._facts.put(digest, facts)
        return facts

    async def _platform_images(
        self,
        reference: ImageReference,
        index: oci.ParsedIndex,
        credential: Credential | None,
        needs: FactsNeeds,
        known: Mapping[Platform, PlatformImage],
    ) -> tuple[PlatformImage, ...]:
        """The wanted platforms' images of an index; those already known (and complete enough) are not read again."""

        async def one(entry: oci.IndexEntry) -> PlatformImage:
            cached = known.get(entry.platform)
            if cached is not None and not (needs.uncompressed and cached.uncompressed_size is None):
                if needs.content and cached.content is None:
                    return replace(cached, content=await self._content(reference, cached, credential))
                return cached
            child = await self.client.get_manifest(reference, entry.digest, credential)
            try:
                document = oci.load_document(child.body, "platform manifest")
            except oci.GarbledDocument as garbled:
                raise _garbled(reference, garbled.what) from None
            parsed = oci.parse_manifest(document)
            return await self._platform_image(reference, parsed, entry.digest, credential, entry.platform, needs)

        chosen = index.chosen(needs.platforms, limit=self.client.settings.max_platform_manifests)
        return tuple(await asyncio.gather(*(one(entry) for entry in chosen)))

    async def _platform_image(
        self,
        reference: ImageReference,
        manifest: oci.ParsedManifest,
        digest: str,
        credential: Credential | None,
        platform: Platform | None,
        needs: FactsNeeds,
    ) -> PlatformImage:
        config_body = await self.client.get_blob(
            reference, manifest.config_digest, credential, max_bytes=self.client.settings.max_config_bytes
        )
        image = oci.platform_image(manifest, digest=digest, config_body=config_body, platform=platform)
        if needs.uncompressed:
            layers = await asyncio.gather(
                *(self._with_uncompressed(reference, layer, credential) for layer in image.layers)
            )
            image = replace(image, layers=tuple(layers))
        if needs.content:
            image = replace(image, content=await self._content(reference, image, credential))
        return image

    async def _content(
        self, reference: ImageReference, image: PlatformImage, credential: Credential | None
    ) -> ContentFacts:
        """What the image's layers hold: each layer read once per digest (cached), then analysed off the loop."""
        contents = await asyncio.gather(*(self._layer(reference, layer, credential) for layer in image.layers))
        return await asyncio.to_thread(analyse_content, image.layers, contents)

    async def _layer(self, reference: ImageReference, layer: Layer, credential: Credential | None) -> LayerContent:
        cached = self._layers.get(layer.digest)
        if cached is not None:
            return cached
        refused = self._refused.get(layer.digest)
        if refused is not None:  # a fresh error each time: re-raising one object would grow its traceback
            raise LayerRefused(str(refused), reason=refused.reason, verified=True)

        async def read() -> LayerContent:
            self.layer_reads += 1
            try:
                content = await self.client.stream_blob(
                    reference,
                    layer.digest,
                    credential,
                    max_bytes=layer.size,
                    sink=lambda chunks: walk_layer_stream(
                        chunks, digest=layer.digest, media_type=layer.media_type, limits=self.layer_limits
                    ),
                )
            except LayerRefused as error:
                if error.verified:
                    self._refused.put(layer.digest, error)
                raise
            self._layers.put(layer.digest, content)
            return content

        return await self._reading.run(layer.digest, read)

    async def _with_uncompressed(self, reference: ImageReference, layer: Layer, credential: Credential | None) -> Layer:
        """Read the uncompressed size from a few bytes of the layer: its gzip trailer or its zstd frame header."""
        probe = oci.uncompressed_probe(layer)
        if isinstance(probe, Layer):
            return probe
        head = await self.client.get_blob_range(reference, layer.digest, credential, start=probe.start, end=probe.end)
        return oci.with_uncompressed(layer, head)
