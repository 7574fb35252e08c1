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
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from slimguard.core.errors import InspectionError
from slimguard.core.facts import ImageFacts, Platform
from slimguard.core.local_image import local_image_facts, with_compressed_sizes, with_config
from slimguard.registry.credentials import Credential

_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
_MAX_CONFIG_BYTES = 4 << 20
_CHUNK = 1 << 20


class _Registry(Protocol):
    """Where a base the engine lacks is read from (the registry inspector; engine.facts.FactsSource's inspect)."""

    async def inspect(
        self, image: str, *, credentials: Sequence[Credential], platforms: Iterable[Platform], uncompressed: bool
    ) -> ImageFacts: ...


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
            f"cannot reach the Docker engine at {where}: {_short(error)}", reason="DockerUnreachable"
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
    ) -> None:
        self.client = client
        self.registry = registry
        self.local_only = frozenset(local_only)
        self.measure_compressed = measure_compressed
        self._facts: dict[str, ImageFacts] = {}

    def cached(
        self, image: str, *, credentials: Sequence[Credential], platforms: Iterable[Platform], uncompressed: bool
    ) -> ImageFacts | InspectionError | None:
        return self._facts.get(image)

    async def inspect(
        self, image: str, *, credentials: Sequence[Credential], platforms: Iterable[Platform], uncompressed: bool
    ) -> ImageFacts:
        """The engine's facts for ``image``; a base the engine lacks comes from its registry."""
        if image in self._facts:
            return self._facts[image]
        facts = await asyncio.to_thread(self._read, image)
        if facts is None:
            if image in self.local_only or self.registry is None:
                raise InspectionError(f"the local Docker engine has no image {image}", reason="ImageNotFound")
            return await self.registry.inspect(
                image, credentials=credentials, platforms=platforms, uncompressed=uncompressed
            )
        self._facts[image] = facts
        return facts

    async def platforms_of(self, image: str) -> tuple[Platform, ...]:
        """The platform the engine holds ``image`` for (one), or none when it does not have it."""
        facts = await asyncio.to_thread(self._read, image, save=False)
        return facts.listed_platforms if facts is not None else ()

    def _read(self, image: str, *, save: bool = True) -> ImageFacts | None:
        try:
            found = self.client.images.get(image)
            history = found.history()
        except docker.errors.ImageNotFound:
            return None
        except _ENGINE_ERRORS as error:
            raise InspectionError(
                f"the Docker engine could not be asked about {image}: {_short(error)}", reason="DockerUnreachable"
            ) from None
        facts = local_image_facts(found.attrs, history)
        if save and self.measure_compressed:
            facts = self._measured(found, facts)
        return facts

    def _measured(self, image: Any, facts: ImageFacts) -> ImageFacts:
        """Stream ``docker save`` once: each blob's sha256 (a layer's is its diff ID) and gzipped size, and
        the config (the blob whose digest is the image ID)."""
        compressed: dict[str, int] = {}
        config: bytes | None = None
        try:
            with tarfile.open(fileobj=_ChunkReader(image.save(chunk_size=_CHUNK)), mode="r|") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    stream = archive.extractfile(member)
                    if stream is None:
                        continue
                    digest, size, head = _digest_and_gzip_size(stream, keep=member.size <= _MAX_CONFIG_BYTES)
                    compressed[digest] = size
                    if digest == facts.digest and head is not None:
                        config = head
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            OSError,
            tarfile.TarError,
        ) as error:
            raise InspectionError(
                f"the Docker engine's export of {facts.digest} could not be read: {_short(error)}",
                reason="DockerSaveFailed",
            ) from None
        measured = with_compressed_sizes(facts, compressed)
        return with_config(measured, config) if config is not None else measured


def _digest_and_gzip_size(stream: io.BufferedReader | Any, *, keep: bool) -> tuple[str, int, bytes | None]:
    sha = hashlib.sha256()
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip, at the level `docker push` compresses with
    size = 0
    kept = bytearray() if keep else None
    while chunk := stream.read(_CHUNK):
        sha.update(chunk)
        size += len(gzip.compress(chunk))
        if kept is not None:
            kept += chunk
    size += len(gzip.flush())
    return f"sha256:{sha.hexdigest()}", size, bytes(kept) if kept is not None else None


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
