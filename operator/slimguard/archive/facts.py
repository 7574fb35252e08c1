"""An image archive as a facts source, beside the registry and the Docker engine: ``slimguard check --input``.

The archive's manifests, index and configs are read and turned into facts by the registry's own codec
(``core/facts/oci.py``), so an OCI layout copied from a registry gives the registry's facts byte for byte: the
same digests, the compressed sizes as stored, the uncompressed sizes from each gzip trailer or zstd header
(a few bytes read where the layer is), the steps from the config's history. Whole layers are read only when a
content rule needs them, or to measure what a push would send (``measure_compressed``), through the same
layer walker as the registry's blobs. Every document is checked against its digest and its size before it is
believed; a layer, against its digest as it is walked. Base images a policy names are read from their registry.

``docker save`` keeps layers uncompressed: their size is exact, and what a push would send is not known
(``PlatformImage.compressed_measured`` False) unless measured, as for the Docker engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from slimguard.archive.store import ArchiveFiles, open_files, unreadable
from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.facts import oci
from slimguard.core.facts.archive import (
    DOCKER_SAVE_MANIFEST,
    LAYOUT_INDEX,
    ArchivedImage,
    SavedImage,
    blob_path,
    digest_in_name,
    layout_images,
    saved_images,
    select_images,
)
from slimguard.core.facts.content import LayerContent
from slimguard.core.facts.content_analysis import analyse_content
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts, Layer, PlatformImage
from slimguard.core.facts.local_image import DOCKER_LAYER_TAR
from slimguard.core.facts.media_types import DOCKER_MANIFEST, IMAGE_TYPES, INDEX_TYPES, OCI_INDEX
from slimguard.core.model.platform import Platform
from slimguard.core.model.quantity import format_bytes
from slimguard.layers.compression import GzipCounter
from slimguard.layers.walker import LayerLimits, walk_layer
from slimguard.registry.credentials import Credential

MAX_CATALOGUE_BYTES = 4 << 20
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20
MAX_IMAGES = 1000
"""Images one catalogue may list."""
MAX_PLATFORMS = 16
"""Platform manifests of one index read at most, as the registry inspector's default."""
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Registry(Protocol):
    """Where a base the archive does not hold is read from (the registry inspector)."""

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts: ...


@dataclass(frozen=True)
class Archive:
    """An opened archive: its files and the images its catalogue lists."""

    files: ArchiveFiles
    images: tuple[ArchivedImage, ...]
    catalogue_digest: str
    """The sha256 of ``index.json`` (or ``manifest.json``): the digest of an index that is ``index.json`` itself."""

    @property
    def where(self) -> str:
        return self.files.where


def open_archive(path: str) -> Archive:
    """The archive at ``path`` and the images it lists; one clear error when it is none."""
    files = open_files(path)
    try:
        for catalogue, parse in ((LAYOUT_INDEX, layout_images), (DOCKER_SAVE_MANIFEST, saved_images)):
            size = files.size(catalogue)
            if size is None:
                continue
            if size > MAX_CATALOGUE_BYTES:
                raise unreadable(
                    path,
                    f"holds a {catalogue} of {format_bytes(size)}, more than the {format_bytes(MAX_CATALOGUE_BYTES)}"
                    " slimguard reads of one",
                )
            body = files.read(catalogue)
            try:
                images = parse(body, max_entries=MAX_IMAGES)
            except oci.GarbledDocument as garbled:
                raise unreadable(path, f"holds a garbled {garbled.what}") from None
            if images or catalogue == DOCKER_SAVE_MANIFEST:
                return Archive(files, images, f"sha256:{hashlib.sha256(body).hexdigest()}")
        raise unreadable(
            path,
            f"is no image archive: it has no {LAYOUT_INDEX} (an OCI layout) nor {DOCKER_SAVE_MANIFEST} (docker save)",
        )
    except InspectionError:
        files.close()
        raise


class ArchiveFacts:
    """A FactsSource over one archive: the images chosen by name (``select_images``) are read from it; any other
    (a base a policy names) from ``registry``."""

    def __init__(
        self,
        archive: Archive,
        chosen: Mapping[str, ArchivedImage],
        *,
        registry: _Registry | None = None,
        measure_compressed: bool = False,
        limits: LayerLimits | None = None,
    ) -> None:
        self.archive = archive
        self.files = archive.files
        self.chosen = dict(chosen)
        self.registry = registry
        self.measure_compressed = measure_compressed
        self.limits = limits or LayerLimits()
        self._facts: dict[str, tuple[FactsNeeds, ImageFacts]] = {}
        self._contents: dict[str, LayerContent] = {}
        self._measured: dict[str, int] = {}
        self._lock = threading.Lock()
        self.layer_reads = 0
        """Layer files read whole: once per layer digest, whatever reads them."""

    @classmethod
    def open(
        cls,
        path: str,
        requested: Sequence[str],
        *,
        registry: _Registry | None = None,
        measure_compressed: bool = False,
        unnamed_ok: bool = False,
    ) -> ArchiveFacts:
        """The archive at ``path``, reading the images ``requested`` names (``select_images``)."""
        archive = open_archive(path)
        try:
            chosen = select_images(archive.images, requested, where=path, unnamed_ok=unnamed_ok)
        except InspectionError:
            archive.files.close()
            raise
        return cls(archive, chosen, registry=registry, measure_compressed=measure_compressed)

    @property
    def names(self) -> tuple[str, ...]:
        """The images read from the archive, by the names policies match."""
        return tuple(self.chosen)

    def close(self) -> None:
        self.files.close()

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None:
        known = self._facts.get(image)
        if known is None or not known[1].holds(needs):
            return None
        return known[1]

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        """The archive's facts for ``image`` (what ``needs`` asks, and what was asked before); another image is
        read from its registry."""
        entry = self.chosen.get(image)
        if entry is None:
            if self.registry is None:
                raise InspectionError(
                    f"{image} is not in {self.archive.where}", reason=InspectionReason.IMAGE_NOT_FOUND
                )
            return await self.registry.inspect(image, needs, credentials=credentials)
        known = self._facts.get(image)
        if known is not None and known[1].holds(needs):
            return known[1]
        wanted = needs | known[0] if known is not None else needs
        facts = await asyncio.to_thread(self._read_locked, entry, wanted)
        self._facts[image] = (wanted, facts)
        return facts

    # --- reading, in a worker thread ---------------------------------------------------------------------

    def _read_locked(self, entry: ArchivedImage, needs: FactsNeeds) -> ImageFacts:
        with self._lock:
            try:
                return self._read(entry, needs)
            except oci.GarbledDocument as garbled:
                raise InspectionError(
                    f"{self.archive.where} holds a garbled {garbled.what} for {entry.label}",
                    reason=InspectionReason.GARBLED_MANIFEST,
                ) from None

    def _read(self, entry: ArchivedImage, needs: FactsNeeds) -> ImageFacts:
        if entry.saved is not None:
            return self._saved(entry.saved, needs)
        if entry.descriptor is None:  # platform manifests index.json lists side by side: it is their index
            listed = oci.ParsedIndex(
                tuple(oci.IndexEntry(d.platform, d.digest) for d in entry.listed if d.platform), None
            )
            sizes = {d.digest: d.size for d in entry.listed}
            return self._index(self.archive.catalogue_digest, OCI_INDEX, listed, needs, sizes)
        descriptor = entry.descriptor
        body = self._document(descriptor.digest, "manifest", size=descriptor.size, limit=MAX_MANIFEST_BYTES)
        document = oci.load_document(body, "manifest")
        media_type = oci.media_type_of(document, descriptor.media_type)
        if media_type in INDEX_TYPES:
            index = oci.parse_index(document, max_entries=MAX_PLATFORMS * 2)
            return self._index(descriptor.digest, media_type, index, needs, {})
        if media_type in IMAGE_TYPES:
            image = self._manifest_image(oci.parse_manifest(document), descriptor.digest, None, needs)
            return ImageFacts(
                digest=descriptor.digest, media_type=media_type, platforms=(image,), annotated_base=image.annotated_base
            )
        raise InspectionError(
            f"{self.archive.where} holds {entry.label} as a manifest of type {media_type or 'unknown'}, which "
            "slimguard does not read",
            reason=InspectionReason.UNSUPPORTED_MANIFEST,
        )

    def _index(
        self, digest: str, media_type: str, index: oci.ParsedIndex, needs: FactsNeeds, sizes: Mapping[str, int]
    ) -> ImageFacts:
        images = []
        for entry in index.chosen(needs.platforms, limit=MAX_PLATFORMS):
            body = self._document(
                entry.digest, "platform manifest", size=sizes.get(entry.digest), limit=MAX_MANIFEST_BYTES
            )
            manifest = oci.parse_manifest(oci.load_document(body, "platform manifest"))
            images.append(self._manifest_image(manifest, entry.digest, entry.platform, needs))
        return ImageFacts(
            digest=digest,
            media_type=media_type,
            platforms=tuple(images),
            annotated_base=index.annotated_base,
            listed_platforms=tuple(entry.platform for entry in index.entries),
        )

    def _manifest_image(
        self, manifest: oci.ParsedManifest, digest: str, platform: Platform | None, needs: FactsNeeds
    ) -> PlatformImage:
        config = self._document(
            manifest.config_digest, "image config", size=manifest.config_size, limit=MAX_CONFIG_BYTES
        )
        paths = [blob_path(layer.digest) for layer in manifest.layers]
        for layer, path in zip(manifest.layers, paths, strict=True):
            stored = self.files.size(path)
            if stored is None:
                raise unreadable(self.archive.where, f"lacks the layer {layer.digest} of {digest}")
            if stored != layer.size:
                raise unreadable(
                    self.archive.where,
                    f"holds the layer {layer.digest} as {stored:,} bytes where its manifest says {layer.size:,}",
                )
        image = oci.platform_image(manifest, digest=digest, config_body=config, platform=platform)
        return self._completed(image, paths, needs)

    def _saved(self, saved: SavedImage, needs: FactsNeeds) -> ImageFacts:
        """An image of ``docker save``'s ``manifest.json``: its config file and layer files; no manifest, so the
        image is known by its config's digest (its image ID), as the Docker engine knows it."""
        where = self.archive.where
        named = digest_in_name(saved.config)
        config = self._file(saved.config, "image config", digest=named, limit=MAX_CONFIG_BYTES)
        config_digest = named or f"sha256:{hashlib.sha256(config).hexdigest()}"
        rootfs = oci.load_document(config, "image config").get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if (
            not isinstance(diff_ids, list)
            or len(diff_ids) != len(saved.layers)
            or not all(isinstance(diff_id, str) for diff_id in diff_ids)
        ):
            raise oci.GarbledDocument(f"image config (its diff_ids do not match the {len(saved.layers)} layers listed)")
        layers = []
        for path, diff_id in zip(saved.layers, diff_ids, strict=True):
            size = self.files.size(path)
            if size is None:
                raise unreadable(where, f"lacks the layer {path} of {config_digest}")
            head = self.files.read(path, length=4)
            media_type = (
                DOCKER_LAYER_GZIP
                if head.startswith(_GZIP_MAGIC)
                else DOCKER_LAYER_ZSTD
                if head == _ZSTD_MAGIC
                else DOCKER_LAYER_TAR
            )
            # A layer kept uncompressed is its own diff ID (its tar's sha256); a compressed one must be named by its
            # digest (go-containerregistry's <hex>.tar.gz, Docker 25's blobs/sha256/<hex>) to be verified.
            digest = digest_in_name(path) or (diff_id if media_type == DOCKER_LAYER_TAR else None)
            if digest is None:
                raise unreadable(where, f"holds the compressed layer {path}, named by no digest slimguard could verify")
            layers.append(Layer(digest=digest, size=size, media_type=media_type))
        manifest = oci.ParsedManifest(config_digest, len(config), tuple(layers), annotated_base=None)
        image = oci.platform_image(manifest, digest=config_digest, config_body=config, platform=None)
        image = self._completed(image, list(saved.layers), needs)
        return ImageFacts(
            digest=config_digest, media_type=DOCKER_MANIFEST, platforms=(image,), annotated_base=image.annotated_base
        )

    def _completed(self, image: PlatformImage, paths: Sequence[str], needs: FactsNeeds) -> PlatformImage:
        """Uncompressed sizes when asked (a few bytes per layer), then what needs whole layers: contents, and the
        compressed size of layers kept uncompressed when measuring."""
        # A layer kept uncompressed is its own uncompressed size (no read); another's is read only when asked.
        layers = [
            self._with_uncompressed(layer, path) if needs.uncompressed or _kept_uncompressed(layer) else layer
            for layer, path in zip(image.layers, paths, strict=True)
        ]
        kept = any(_kept_uncompressed(layer) for layer in layers)
        measure = self.measure_compressed and kept
        contents: list[LayerContent] = []
        if needs.content or measure:
            for position, (layer, path) in enumerate(zip(layers, paths, strict=True)):
                content, measured = self._whole_layer(layer, path, content=needs.content, measure=measure)
                if content is not None:
                    contents.append(content)
                if measured is not None:
                    layers[position] = replace(layer, size=measured)
        image = replace(image, layers=tuple(layers))
        if kept and not measure:
            image = replace(image, compressed_measured=False, kept_uncompressed_in=f"the archive {self.archive.where}")
        if needs.content:
            image = replace(image, content=analyse_content(image.layers, contents))
        return image

    def _with_uncompressed(self, layer: Layer, path: str) -> Layer:
        probe = oci.uncompressed_probe(layer)
        if isinstance(probe, Layer):
            return probe
        head = self.files.read(path, start=probe.start, length=probe.end - probe.start + 1)
        return oci.with_uncompressed(layer, head)

    def _whole_layer(
        self, layer: Layer, path: str, *, content: bool, measure: bool
    ) -> tuple[LayerContent | None, int | None]:
        """The layer read once: walked into its contents, gzipped to count, or both from the same chunks."""
        known = self._contents.get(layer.digest) if content else None
        measured = self._measured.get(layer.digest) if measure and _kept_uncompressed(layer) else None
        walk = content and known is None
        count = measure and _kept_uncompressed(layer) and measured is None
        if not walk and not count:
            return known, measured
        counter = GzipCounter() if count else None
        chunks = _counted(self.files.chunks(path), counter)
        self.layer_reads += 1
        try:
            if walk:
                known = walk_layer(chunks, digest=layer.digest, media_type=layer.media_type, limits=self.limits)
                self._contents[layer.digest] = known
            else:
                _verify(chunks, layer.digest)
        except InspectionError as error:
            if error.reason == InspectionReason.LAYER_DIGEST_MISMATCH:
                raise InspectionError(
                    f"{self.archive.where} holds other bytes than the layer {layer.digest} ({path} does not match "
                    "its digest)",
                    reason=InspectionReason.LAYER_DIGEST_MISMATCH,
                ) from None
            raise
        if counter is not None:
            measured = self._measured[layer.digest] = counter.size
        return known, measured

    def _document(self, digest: str, what: str, *, size: int | None, limit: int) -> bytes:
        """A manifest, index or config blob, by its digest: its size (the descriptor's, and the cap) checked
        before it is read, its digest after."""
        return self._file(blob_path(digest), what, digest=digest, size=size, limit=limit)

    def _file(self, path: str, what: str, *, digest: str | None, limit: int, size: int | None = None) -> bytes:
        where = self.archive.where
        stored = self.files.size(path)
        if stored is None:
            raise unreadable(where, f"lacks the {what} {digest or path}")
        if stored > limit:
            raise unreadable(
                where,
                f"holds a {what} of {format_bytes(stored)} ({path}), more than the {format_bytes(limit)} slimguard "
                "reads of one",
            )
        if size is not None and stored != size:
            raise unreadable(where, f"holds the {what} {path} as {stored:,} bytes where its descriptor says {size:,}")
        body = self.files.read(path)
        if digest is not None and _digest_of(body, digest) != digest:
            raise InspectionError(
                f"{where} holds other bytes than the {what} {digest} ({path} does not match its digest)",
                reason=InspectionReason.DIGEST_MISMATCH,
            )
        return body


def _kept_uncompressed(layer: Layer) -> bool:
    return layer.media_type.endswith("tar")


def _digest_of(body: bytes, like: str) -> str:
    algorithm = like.partition(":")[0]
    if algorithm not in ("sha256", "sha512"):
        raise InspectionError(
            f"{like[:150]!r} is not a sha256 or sha512 digest", reason=InspectionReason.UNSUPPORTED_DIGEST
        )
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def _counted(chunks: Iterable[bytes], counter: GzipCounter | None) -> Iterator[bytes]:
    for chunk in chunks:
        if counter is not None:
            counter.update(chunk)
        yield chunk


def _verify(chunks: Iterable[bytes], digest: str) -> None:
    algorithm = digest.partition(":")[0]
    hashed = hashlib.new(algorithm if algorithm in ("sha256", "sha512") else "sha256")
    for chunk in chunks:
        hashed.update(chunk)
    if f"{algorithm}:{hashed.hexdigest()}" != digest:
        raise InspectionError(
            f"layer {digest} does not match its digest", reason=InspectionReason.LAYER_DIGEST_MISMATCH
        )


__all__ = ["Archive", "ArchiveFacts", "open_archive"]
