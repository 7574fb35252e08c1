"""One layer blob → its ``LayerContent``: streamed once, decompressed on the fly, tar headers walked, nothing stored.

Memory stays bounded whatever the layer holds: compressed bytes pass through in the chunks the caller gives,
decompression is read in small blocks (gzip), or with a bounded window (zstd), file contents are skipped
except package-database files (capped), and the uncompressed bytes and tar entries are counted against hard
caps. A layer that breaks a cap, escapes the root, is truncated or garbled, or does not hash to its digest is
an ``InspectionError`` with a reason, never an exception of the tar or zlib modules and never an OOM.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import tarfile
import threading
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Self, cast

import zstandard

from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.facts.content import EntryKind, LayerContent, LayerEntry
from slimguard.core.model.quantity import format_bytes

GIB = 1024**3
MIB = 1024**2
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_MAX_WINDOW = 128 * MIB  # zstd --long=27; what the window may cost in memory, at most
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_READ_SIZE = 256 * 1024
_CHUNK_WAIT_SECONDS = 300  # a loop that stopped answering must not hold a thread forever

PACKAGE_DATABASES = frozenset(
    {
        "var/lib/dpkg/status",
        "lib/apk/db/installed",
        "var/lib/rpm/rpmdb.sqlite",
        "var/lib/rpm/Packages",
        "var/lib/rpm/Packages.db",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/Packages",
        "usr/lib/sysimage/rpm/Packages.db",
    }
)
"""Package-database files whose content is kept (plus every file directly in ``var/lib/dpkg/status.d/``)."""
DPKG_STATUS_D = "var/lib/dpkg/status.d/"


def is_package_database(path: str) -> bool:
    if path in PACKAGE_DATABASES:
        return True
    return path.startswith(DPKG_STATUS_D) and "/" not in path[len(DPKG_STATUS_D) :] and path != DPKG_STATUS_D


@dataclass(frozen=True)
class LayerLimits:
    """Hard caps per layer; breaking one is an error finding (its reason says which), never a partial read."""

    max_uncompressed_bytes: int = 8 * GIB
    """The tar's size: large enough for CUDA and ML layers, small enough to stop a decompression bomb."""
    max_entries: int = 250_000
    """Tar entries: a layer of node_modules has ~100k; a million-entry tar is refused before it costs memory."""
    max_database_bytes: int = 64 * MIB
    """One package-database file kept whole (dpkg status of 1,000 packages: ~2 MiB; a large rpmdb: ~40 MiB)."""


def _error(digest: str, message: str, reason: InspectionReason) -> InspectionError:
    return InspectionError(f"layer {digest} {message}", reason=reason)


class _CompressedSource:
    """The blob as a readable file over the caller's chunks, hashing every byte as it passes."""

    def __init__(self, chunks: Iterable[bytes], digest: str, *, verify: bool = True) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self._offset = 0
        algorithm, _, expected = digest.partition(":")
        if not verify:
            algorithm, expected = "sha256", ""
        elif algorithm not in ("sha256", "sha512") or not expected:
            raise _error(
                digest, "has a digest slimguard cannot verify (sha256 or sha512 only)", InspectionReason.GARBLED_LAYER
            )
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self._expected: str | None = expected.lower() if verify else None
        self.size = 0

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._hash.update(chunk)
                self.size += len(chunk)
                self._buffer, self._offset = bytes(chunk), 0
                return True
        return False

    def read(self, size: int = -1) -> bytes:
        if self._offset >= len(self._buffer) and not self._fill():
            return b""
        end = len(self._buffer) if size < 0 else self._offset + size
        piece = self._buffer[self._offset : end]
        self._offset += len(piece)
        return piece

    def peek(self, size: int) -> bytes:
        while len(self._buffer) - self._offset < size:
            rest = self._buffer[self._offset :]
            if not self._fill():
                self._buffer, self._offset = rest, 0
                break
            self._buffer, self._offset = rest + self._buffer, 0
        return self._buffer[self._offset : self._offset + size]

    def drain(self) -> None:
        while self._fill():
            pass
        self._buffer, self._offset = b"", 0

    @property
    def matches(self) -> bool:
        return self._expected is None or self._hash.hexdigest() == self._expected

    @property
    def digest(self) -> str:
        """The digest of the bytes read (all of them once drained)."""
        return f"{self._algorithm}:{self._hash.hexdigest()}"


class _Counted:
    """The decompressed tar as a readable file, counted against the uncompressed cap as it is read."""

    def __init__(self, decoded: Any, limit: int, digest: str) -> None:
        self._decoded = decoded
        self._limit = limit
        self._digest = digest
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        want = _READ_SIZE if size < 0 else min(size, _READ_SIZE)
        try:
            data = cast(bytes, self._decoded.read(want))
        except (EOFError, zstandard.ZstdError) as error:
            raise _error(
                self._digest, f"is truncated or garbled ({_cause(error)})", InspectionReason.GARBLED_LAYER
            ) from None
        except (OSError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
            raise _error(
                self._digest, f"is not a valid compressed stream ({_cause(error)})", InspectionReason.GARBLED_LAYER
            ) from None
        self.size += len(data)
        if self.size > self._limit:
            raise _error(
                self._digest,
                f"unpacks to more than {format_bytes(self._limit)}, the most slimguard reads of one layer "
                "(a decompression bomb, or a layer far larger than an image should have)",
                InspectionReason.LAYER_TOO_LARGE,
            )
        return data

    def drain(self) -> None:
        while self.read(_READ_SIZE):
            pass


def _cause(error: BaseException) -> str:
    return str(error) or type(error).__name__


class _BadHeader(Exception):
    """A tar header that is garbage or cut short; tarfile would take it for the end of the archive."""


# tarfile's own names for a garbage header and one cut short (private, hence looked up); it reads both as the end.
_CUT_OR_GARBAGE: tuple[type[Exception], ...] = (
    getattr(tarfile, "InvalidHeaderError"),  # noqa: B009
    getattr(tarfile, "TruncatedHeaderError"),  # noqa: B009
)


class _StrictTarInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile_)
        except _CUT_OR_GARBAGE as error:
            raise _BadHeader(_cause(error)) from None


def _decoder(source: _CompressedSource) -> Any:
    """What reads the tar out of the blob; told by its first bytes, whatever the media type says."""
    head = source.peek(4)
    if head.startswith(_GZIP_MAGIC):
        return _GzipReader(source)
    if head == _ZSTD_MAGIC:
        return _ZstdReader(source)
    return source


class _GzipReader:
    """gzip members, one after another (as ``gzip -d`` reads them), decoded by zlib in C, CRC and size checked.

    Output per call is bounded (``max_length``), so a bomb never costs more than one block of memory; zero
    bytes after the last member are padding, anything else there is garbage.
    """

    def __init__(self, source: _CompressedSource) -> None:
        self._source = source
        self._member = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._in_member = False
        self._padding = False

    def read(self, size: int = -1) -> bytes:
        want = _READ_SIZE if size < 0 else max(1, size)
        while True:
            if not self._pending:
                self._pending = self._source.read(_READ_SIZE)
                if not self._pending:
                    if self._in_member:
                        raise EOFError("the gzip stream ends inside a member")
                    return b""
            if self._padding:
                if self._pending.strip(b"\0"):
                    raise OSError("data after the last gzip member is not gzip")
                self._pending = b""
                continue
            if not self._in_member and not self._pending.startswith(_GZIP_MAGIC[: len(self._pending)]):
                if not self._pending.strip(b"\0"):
                    self._padding = True
                    continue
                raise OSError("data after a gzip member is not gzip")
            self._in_member = True
            data = self._member.decompress(self._pending, want)
            self._pending = self._member.unconsumed_tail or self._member.unused_data
            if self._member.eof:  # the next member, if any, starts with what this one did not use
                self._member = zlib.decompressobj(wbits=31)
                self._in_member = False
            if data:
                return data


class _ZstdReader:
    """zstd frames, one after another, decoded with bounded memory and a cut-short frame reported as such.

    The library's stream reader returns a clean end for a truncated frame, and its decompressobj has no output
    bound, so input is fed in small pieces: a zstd block of 4 bytes can expand to 128 KiB (a bomb's ratio),
    so a piece of 1 KiB yields 32 MiB at most before the uncompressed cap is checked.
    """

    _PIECE = 1024

    def __init__(self, source: _CompressedSource) -> None:
        self._source = source
        self._decompressor = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._frame = self._decompressor.decompressobj()
        self._fed = False
        self._pending = b""
        self._output = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        while self._offset >= len(self._output):
            if not self._decode_more():
                return b""
        end = len(self._output) if size < 0 else self._offset + size
        piece = self._output[self._offset : end]
        self._offset += len(piece)
        return piece

    def _decode_more(self) -> bool:
        if not self._pending:
            self._pending = self._source.read(_READ_SIZE)
            if not self._pending:
                if self._fed and not self._frame.eof:
                    raise EOFError("the zstd stream ends inside a frame")
                return False
        piece, self._pending = self._pending[: self._PIECE], self._pending[self._PIECE :]
        self._fed = True
        self._output, self._offset = self._frame.decompress(piece), 0
        if self._frame.eof:  # the next frame starts with what this one did not use
            self._pending = self._frame.unused_data + self._pending
            self._frame = self._decompressor.decompressobj()
            self._fed = False
        return True


def normalised_path(name: str, digest: str) -> str:
    """A tar name as a path from the image root; ``..`` escapes and absolute names are refused."""
    if name.startswith("/"):
        raise _error(digest, f"has an entry with an absolute path {name[:200]!r}", InspectionReason.UNSAFE_LAYER_PATH)
    cleaned = posixpath.normpath(name)
    if cleaned == ".":
        return ""
    if cleaned == ".." or cleaned.startswith("../"):
        raise _error(
            digest, f"has an entry escaping the image root: {name[:200]!r}", InspectionReason.UNSAFE_LAYER_PATH
        )
    return cleaned


def _entry(member: tarfile.TarInfo, path: str, digest: str) -> LayerEntry:
    parent, base = posixpath.split(path)
    if base == _OPAQUE:
        return LayerEntry(parent, 0, EntryKind.OPAQUE)
    if base.startswith(_WHITEOUT):
        return LayerEntry(posixpath.join(parent, base[len(_WHITEOUT) :]), 0, EntryKind.WHITEOUT)
    executable = bool(member.mode & 0o111)
    if member.isreg():
        return LayerEntry(path, member.size, EntryKind.FILE, executable=executable)
    if member.isdir():
        return LayerEntry(path, member.size, EntryKind.DIRECTORY)
    if member.issym():
        return LayerEntry(path, member.size, EntryKind.SYMLINK, link_target=member.linkname)
    if member.islnk():
        target = normalised_path(member.linkname, digest)
        return LayerEntry(path, member.size, EntryKind.HARDLINK, executable=executable, link_target=target)
    return LayerEntry(path, member.size, EntryKind.OTHER)


def walk_layer(
    chunks: Iterable[bytes],
    *,
    digest: str,
    media_type: str = "",
    limits: LayerLimits | None = None,
    verify: bool = True,
) -> LayerContent:
    """Read one layer blob, given as its compressed chunks in order, into its entries and package databases.

    Raises InspectionError with reason LayerDigestMismatch, LayerTooLarge, TooManyLayerEntries, GarbledLayer
    or UnsafeLayerPath. ``media_type`` is only for messages: the compression is told by the blob's magic bytes.
    ``verify=False`` is for a trusted local source whose blobs' digests are not known before they are read
    (``docker save`` names layers by v1 IDs, in no useful order): ``digest`` then only names the layer in
    messages, and the content carries the sha256 of the bytes read, for the caller to place.
    """
    limits = limits or LayerLimits()
    source = _CompressedSource(chunks, digest, verify=verify)
    try:
        return _walk(source, digest, media_type, limits, verify=verify)
    except InspectionError as error:
        if error.reason not in REFUSALS:
            raise
        # The blob is refused for what it is: hash the rest (no decompression) so the refusal can be kept by
        # digest, and a bomb costs one read, not one per retry.
        source.drain()
        raise LayerRefused(str(error), reason=error.reason, verified=source.matches) from None


REFUSALS = frozenset(
    {InspectionReason.LAYER_TOO_LARGE, InspectionReason.TOO_MANY_LAYER_ENTRIES, InspectionReason.UNSAFE_LAYER_PATH}
)


class LayerRefused(InspectionError):
    """A layer refused for its content (a cap broken, an escaping path); ``verified``: its bytes are the digest's."""

    def __init__(self, message: str, *, reason: InspectionReason, verified: bool) -> None:
        super().__init__(message, reason=reason)
        self.verified = verified


def _walk(
    source: _CompressedSource, digest: str, media_type: str, limits: LayerLimits, *, verify: bool = True
) -> LayerContent:
    counted = _Counted(_decoder(source), limits.max_uncompressed_bytes, digest)
    read = _Members(digest, limits)
    try:
        with tarfile.open(
            fileobj=cast(BinaryIO, counted), mode="r|", tarinfo=_StrictTarInfo, bufsize=_READ_SIZE
        ) as archive:
            read.all_of(archive)
    except tarfile.ReadError as error:
        # An empty stream holds no entries (tarfile calls it "empty file"); its digest still has to match.
        if str(error) != "empty file" or read.entries:
            raise _garbled(digest, media_type, _cause(error)) from None
    except (_BadHeader, tarfile.TarError, EOFError, zlib.error) as error:
        raise _garbled(digest, media_type, _cause(error)) from None
    try:
        counted.drain()  # the rest of the tar (end blocks, padding) and the gzip trailer, CRC checked
    except EOFError as error:
        raise _garbled(digest, media_type, _cause(error)) from None
    source.drain()
    if not source.matches:
        raise _error(
            digest,
            "does not match its digest (the registry served other bytes)",
            InspectionReason.LAYER_DIGEST_MISMATCH,
        )
    return LayerContent(
        digest=digest if verify else source.digest,
        entries=tuple(read.entries),
        uncompressed_bytes=counted.size,
        package_databases=read.databases,
        oversized_databases=tuple(read.oversized),
    )


class _Members:
    """What the walk keeps of a tar's members: every entry, and the package databases' contents."""

    def __init__(self, digest: str, limits: LayerLimits) -> None:
        self.digest = digest
        self.limits = limits
        self.entries: list[LayerEntry] = []
        self.databases: dict[str, bytes] = {}
        self.oversized: list[str] = []

    def all_of(self, archive: tarfile.TarFile) -> None:
        while (member := archive.next()) is not None:
            cast(Any, archive).members.clear()  # tarfile keeps every member it read; a million of them would be the OOM
            if len(self.entries) >= self.limits.max_entries:
                raise _error(
                    self.digest,
                    f"has more than {self.limits.max_entries:,} entries, the most slimguard reads of one layer",
                    InspectionReason.TOO_MANY_LAYER_ENTRIES,
                )
            path = normalised_path(member.name, self.digest)
            if not path:
                continue  # the root directory itself
            entry = _entry(member, path, self.digest)
            self.entries.append(entry)
            if entry.kind is EntryKind.FILE and is_package_database(path):
                if member.size > self.limits.max_database_bytes:
                    self.oversized.append(path)
                else:
                    extracted = archive.extractfile(member)
                    self.databases[path] = extracted.read() if extracted is not None else b""


def _garbled(digest: str, media_type: str, cause: str) -> InspectionError:
    kind = f" ({media_type})" if media_type else ""
    return _error(
        digest, f"is not a readable tar{kind}: truncated or garbled ({cause})", InspectionReason.GARBLED_LAYER
    )


async def walk_layer_stream(
    chunks: AsyncIterator[bytes], *, digest: str, media_type: str = "", limits: LayerLimits | None = None
) -> LayerContent:
    """``walk_layer`` over an async stream, in a worker thread: the event loop only moves chunks.

    The thread asks the loop for one chunk at a time, so no more than one chunk is in flight whatever the
    layer's size, and a slow walk slows the download instead of piling chunks up in memory.
    """
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def pulled() -> Iterator[bytes]:
        while not stop.is_set():
            future = asyncio.run_coroutine_threadsafe(_next_chunk(chunks), loop)
            chunk = future.result(timeout=_CHUNK_WAIT_SECONDS)
            if chunk is None:
                return
            yield chunk

    try:
        return await asyncio.to_thread(walk_layer, pulled(), digest=digest, media_type=media_type, limits=limits)
    finally:
        stop.set()


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


__all__ = [
    "REFUSALS",
    "LayerLimits",
    "LayerRefused",
    "is_package_database",
    "normalised_path",
    "walk_layer",
    "walk_layer_stream",
]
