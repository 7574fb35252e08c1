"""Image facts from the local Docker Engine, before anything is pushed: a facts source of its own.

Read through the ``docker`` SDK: ``inspect`` for size, layers (diff IDs), user and labels, ``history`` for the
step that made each layer. The layers are uncompressed in the engine; ``measure_compressed`` streams
``image.save()`` once, never to disk, gzipping each layer to count what a push would send, and takes the
image's own config from the same stream (exact ``created_by`` per layer). Base images the policies name are
read from the engine when it has them, else from their registry (``registry``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.facts.content import LayerContent
from slimguard.core.facts.content_analysis import analyse_content
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.local_image import DOCKER_LAYER_TAR, local_image_facts, with_compressed_sizes, with_config
from slimguard.core.model.platform import Platform
from slimguard.layers.compression import GzipCounter
from slimguard.layers.walker import LayerLimits, walk_layer
from slimguard.registry.credentials import Credential

_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
_MAX_CONFIG_BYTES = 4 << 20
_CHUNK = 1 << 20


class _Registry(Protocol):
    """Where a base the engine lacks is read from (the registry inspector; engine.facts.FactsSource's inspect)."""

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts: ...


def connect(base_url: str | None = None, *, timeout: int = 300) -> docker.DockerClient:
    """A client for ``base_url``, else the engine ``$DOCKER_HOST`` (or the default socket) names; checked with a
    ping, so an engine that is not there is one clear error here, not a traceback later."""
    try:
        client = (
            docker.DockerClient(base_url=base_url, timeout=timeout) if base_url else docker.from_env(timeout=timeout)
        )
        client.ping()
    except _ENGINE_ERRORS as error:
        where = base_url or "$DOCKER_HOST or the default socket"
        raise InspectionError(
            f"cannot reach the Docker engine at {where}: {_short(error)}", reason=InspectionReason.DOCKER_UNREACHABLE
        ) from None
    return client


class DockerFacts:
    """A FactsSource over a local engine; ``local_only`` images are never looked for anywhere else."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        registry: _Registry | None = None,
        local_only: Iterable[str] = (),
        measure_compressed: bool = False,
        limits: LayerLimits | None = None,
    ) -> None:
        self.client = client
        self.registry = registry
        self.local_only = frozenset(local_only)
        self.measure_compressed = measure_compressed
        self.limits = limits or LayerLimits()
        self._facts: dict[tuple[str, bool], ImageFacts] = {}

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None:
        return self._facts.get((image, needs.content)) or self._facts.get((image, True))

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        """The engine's facts for ``image`` (its layer contents too when needed; an engine holds one platform,
        with its layers uncompressed, so nothing else in ``needs`` changes what it reads); a base the engine
        lacks comes from its registry."""
        known = self._facts.get((image, needs.content)) or self._facts.get((image, True))
        if known is not None:
            return known
        facts = await asyncio.to_thread(self._read, image, content=needs.content)
        if facts is None:
            if image in self.local_only or self.registry is None:
                raise InspectionError(
                    f"the local Docker engine has no image {image}", reason=InspectionReason.IMAGE_NOT_FOUND
                )
            return await self.registry.inspect(image, needs, credentials=credentials)
        self._facts[(image, needs.content)] = facts
        return facts

    async def platforms_of(self, image: str) -> tuple[Platform, ...]:
        """The platform the engine holds ``image`` for (one), or none when it does not have it."""
        facts = await asyncio.to_thread(self._read, image, save=False)
        return facts.listed_platforms if facts is not None else ()

    def _read(self, image: str, *, save: bool = True, content: bool = False) -> ImageFacts | None:
        try:
            found = self.client.images.get(image)
            history = found.history()
        except docker.errors.ImageNotFound:
            return None
        except _ENGINE_ERRORS as error:
            raise InspectionError(
                f"the Docker engine could not be asked about {image}: {_short(error)}",
                reason=InspectionReason.DOCKER_UNREACHABLE,
            ) from None
        facts = local_image_facts(found.attrs, history)
        if save and (self.measure_compressed or content):
            facts = self._from_save(found, facts, content=content)
        return facts

    def _from_save(self, image: Any, facts: ImageFacts, *, content: bool) -> ImageFacts:
        """Stream ``docker save`` once, never to disk: the config (the blob whose digest is the image ID) for
        exact steps, each layer tar gzipped to count what a push would send (``measure_compressed``), and each
        layer walked into its contents (``content``). A saved layer tar is uncompressed: its sha256 is its diff
        ID, which the walker verifies."""
        expected = [layer.digest for layer in facts.platforms[0].layers]
        compressed: dict[str, int] = {}
        contents: dict[str, LayerContent] = {}
        config: bytes | None = None
        try:
            with tarfile.open(fileobj=_ChunkReader(image.save(chunk_size=_CHUNK)), mode="r|") as archive:
                for member in archive:
                    stream = archive.extractfile(member) if member.isfile() else None
                    if stream is None:
                        continue
                    if _is_layer(member.name, expected):
                        # The classic format names a layer by its v1 ID, in sorted order: its diff ID is known
                        # once its bytes are read (a saved layer tar is uncompressed, so its sha256 is it).
                        gzip = GzipCounter() if self.measure_compressed else None
                        sha = hashlib.sha256()
                        chunks = _read_chunks(stream, gzip, sha)
                        if content:
                            walked = walk_layer(
                                chunks,
                                digest=f"{member.name} of {facts.digest}",
                                media_type=DOCKER_LAYER_TAR,
                                limits=self.limits,
                                verify=False,
                            )
                            contents[walked.digest] = walked
                        else:
                            for _ in chunks:
                                pass
                        digest = f"sha256:{sha.hexdigest()}"
                        if gzip is not None:
                            compressed[digest] = gzip.size
                    elif member.size <= _MAX_CONFIG_BYTES:
                        body = stream.read()
                        if f"sha256:{hashlib.sha256(body).hexdigest()}" == facts.digest:
                            config = body
        except (*_ENGINE_ERRORS, tarfile.TarError) as error:
            raise InspectionError(
                f"the Docker engine's export of {facts.digest} could not be read: {_short(error)}",
                reason=InspectionReason.DOCKER_SAVE_FAILED,
            ) from None
        if config is not None:
            facts = with_config(facts, config)
        if self.measure_compressed:
            facts = with_compressed_sizes(facts, compressed)
        if content:
            image_facts = facts.platforms[0]
            missing = [digest for digest in expected if digest not in contents]
            if missing:
                raise InspectionError(
                    f"the Docker engine's export of {facts.digest} lacks layer {missing[0]}",
                    reason=InspectionReason.DOCKER_SAVE_FAILED,
                )
            analysed = analyse_content(image_facts.layers, [contents[digest] for digest in expected])
            facts = replace(facts, platforms=(replace(image_facts, content=analysed),))
        return facts


def _is_layer(name: str, expected: Sequence[str]) -> bool:
    """``<id>/layer.tar`` in the classic save format (dockerd before 25); in the OCI one, a blob under
    ``blobs/sha256/`` named by one of the image's diff IDs (an uncompressed layer's digest is its diff ID)."""
    if name.startswith("blobs/sha256/"):
        return "sha256:" + name.rsplit("/", 1)[1] in expected
    return name.endswith("/layer.tar") or name == "layer.tar"


def _read_chunks(stream: Any, gzip: GzipCounter | None, sha: Any) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        sha.update(chunk)
        if gzip is not None:
            gzip.update(chunk)
        yield chunk


class _ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks (``image.save()``), for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
