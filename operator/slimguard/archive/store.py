"""The files of an image archive, by their path inside it: a directory (an OCI image layout) or a tar (``docker
save``, ``oci-archive:``; gzip-compressed too), read in place, never unpacked to disk.

Nothing here trusts the archive: a tar member whose path is absolute or escapes the archive refuses the whole
archive; a link is followed only to a file inside it; in a directory, only regular files inside it are read (a
symlink out of it is refused); a tar cut short is found when it is opened, by the sizes its headers promise. Every
refusal is an ``InspectionError`` naming the archive, never an exception of tarfile or the OS.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol, cast

from slimguard.core.errors import InspectionError, InspectionReason

MAX_MEMBERS = 200_000
"""Tar members indexed at most: an OCI layout has one per blob, ``docker save`` three per layer."""
_MAX_LINK_HOPS = 8
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def unreadable(where: str, message: str) -> InspectionError:
    return InspectionError(f"{where} {message}", reason=InspectionReason.ARCHIVE_UNREADABLE)


class ArchiveFiles(Protocol):
    """Files of an archive by their path inside it (``index.json``, ``blobs/sha256/<hex>``, ``<id>/layer.tar``)."""

    where: str
    """The archive as the user named it: every message says it."""

    def size(self, name: str) -> int | None:
        """The file's size, or None when the archive has no such file."""
        ...

    def read(self, name: str, *, start: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes of the file from ``start`` (all of the rest without ``length``)."""
        ...

    def chunks(self, name: str) -> Iterator[bytes]:
        """The whole file, in chunks of at most 1 MiB."""
        ...

    def close(self) -> None: ...


def open_files(path: str) -> ArchiveFiles:
    """The archive at ``path``: a directory, or a (gzip-compressed) tar."""
    location = Path(path)
    try:
        if location.is_dir():
            return DirectoryFiles(path)
        if location.is_file():
            return TarFiles(path)
    except OSError as error:
        raise unreadable(path, f"cannot be read ({error.strerror or error})") from None
    raise unreadable(path, "is neither a file nor a directory (an image archive is a tar or an OCI layout)")


def clean_name(name: str, where: str) -> str:
    """A path inside the archive, normalised (``./index.json`` is ``index.json``); an absolute one, or one
    escaping the archive, refuses the archive."""
    if name.startswith("/") or "\0" in name:
        raise unreadable(where, f"holds a path outside the archive: {name[:200]!r}")
    cleaned = posixpath.normpath(name)
    if cleaned == ".." or cleaned.startswith("../"):
        raise unreadable(where, f"holds a path escaping the archive: {name[:200]!r}")
    return "" if cleaned == "." else cleaned


class DirectoryFiles:
    """An OCI image layout directory: each file read where it is, if it is a regular file inside the layout."""

    def __init__(self, path: str) -> None:
        self.where = path
        self._root = os.path.realpath(path)

    def _path(self, name: str) -> str | None:
        cleaned = clean_name(name, self.where)
        joined = os.path.join(self._root, cleaned)
        real = os.path.realpath(joined)
        if os.path.commonpath([self._root, real]) != self._root:
            raise unreadable(self.where, f"links {cleaned!r} to a file outside it")
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            return None
        except OSError as error:
            raise unreadable(self.where, f"cannot read {cleaned} ({error.strerror or error})") from None
        if not stat.S_ISREG(mode):
            raise unreadable(self.where, f"holds {cleaned}, which is not a regular file")
        return real

    def size(self, name: str) -> int | None:
        path = self._path(name)
        return None if path is None else os.path.getsize(path)

    def _open(self, name: str) -> IO[bytes]:
        path = self._path(name)
        if path is None:
            raise unreadable(self.where, f"has no file {name}")
        try:
            return open(path, "rb")
        except OSError as error:
            raise unreadable(self.where, f"cannot read {name} ({error.strerror or error})") from None

    def read(self, name: str, *, start: int = 0, length: int | None = None) -> bytes:
        with self._open(name) as file:
            try:
                file.seek(start)
                return file.read(-1 if length is None else length)
            except OSError as error:
                raise unreadable(self.where, f"cannot read {name} ({error.strerror or error})") from None

    def chunks(self, name: str) -> Iterator[bytes]:
        with self._open(name) as file:
            try:
                while chunk := file.read(_CHUNK):
                    yield chunk
            except OSError as error:
                raise unreadable(self.where, f"cannot read {name} ({error.strerror or error})") from None

    def close(self) -> None:
        return None


class TarFiles:
    """A tar read in place: its headers indexed once (the member data is skipped, not read), each file then read by
    seeking. A gzip-compressed tar works the same, decompressing as it seeks (slower: a plain tar is better)."""

    def __init__(self, path: str) -> None:
        self.where = path
        # One tar file object, one position: reads are serialised (the facts source reads from a worker thread).
        self._lock = threading.Lock()
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - kept open until close()
        except OSError as error:
            raise unreadable(path, f"cannot be read ({error.strerror or error})") from None
        try:
            compressed = self._file.read(2) == _GZIP_MAGIC
            self._file.seek(0)
            length = os.fstat(self._file.fileno()).st_size
            self._tar = tarfile.open(fileobj=self._file, mode="r:gz" if compressed else "r:")  # noqa: SIM115
            self._members = self._index(length if not compressed else None)
        except InspectionError:
            self._file.close()
            raise
        except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
            self._file.close()
            raise unreadable(path, f"is not a readable tar: truncated or garbled ({_cause(error)})") from None

    def _index(self, length: int | None) -> dict[str, tarfile.TarInfo]:
        """Every member by its cleaned path (a later one of the same path wins, as tar extracts), checked: a path
        inside the archive, data within the file (a plain tar cut short is found here, not mid-read)."""
        members: dict[str, tarfile.TarInfo] = {}
        count = 0
        while (member := self._tar.next()) is not None:
            cast(Any, self._tar).members.clear()  # tarfile keeps every member: bounded by us
            count += 1
            if count > MAX_MEMBERS:
                raise unreadable(self.where, f"holds more than {MAX_MEMBERS:,} files, more than an image archive has")
            name = clean_name(member.name, self.where)
            if member.isfile() and length is not None and member.offset_data + member.size > length:
                raise unreadable(
                    self.where,
                    f"is cut short: {name} needs {member.offset_data + member.size:,} bytes, the file has {length:,}",
                )
            if name:
                members[name] = member
        return members

    def _member(self, name: str) -> tarfile.TarInfo | None:
        """The regular file ``name`` is, following links inside the archive."""
        current = clean_name(name, self.where)
        for _ in range(_MAX_LINK_HOPS):
            member = self._members.get(current)
            if member is None:
                return None
            if member.isfile():
                return member
            if member.issym():
                target = posixpath.join(posixpath.dirname(current), member.linkname)
            elif member.islnk():
                target = member.linkname
            else:
                raise unreadable(self.where, f"holds {current}, which is not a regular file")
            current = clean_name(target, self.where)
        raise unreadable(self.where, f"links {name} through more than {_MAX_LINK_HOPS} links")

    def size(self, name: str) -> int | None:
        member = self._member(name)
        return None if member is None else member.size

    def _extracted(self, name: str) -> IO[bytes]:
        member = self._member(name)
        if member is None:
            raise unreadable(self.where, f"has no file {name}")
        extracted = self._tar.extractfile(member)
        if extracted is None:  # not reached for a regular file
            raise unreadable(self.where, f"holds {name}, which is not a regular file")
        return extracted

    def read(self, name: str, *, start: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            try:
                extracted = self._extracted(name)
                extracted.seek(start)
                return extracted.read(-1 if length is None else length)
            except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
                raise unreadable(self.where, f"cannot read {name}: truncated or garbled ({_cause(error)})") from None

    def chunks(self, name: str) -> Iterator[bytes]:
        offset = 0
        size = self.size(name)
        if size is None:
            raise unreadable(self.where, f"has no file {name}")
        while offset < size:
            # One chunk per lock: a layer walked slowly never holds the archive for another reader.
            chunk = self.read(name, start=offset, length=min(_CHUNK, size - offset))
            if not chunk:
                raise unreadable(self.where, f"cannot read {name}: it ends after {offset:,} of {size:,} bytes")
            offset += len(chunk)
            yield chunk

    def close(self) -> None:
        self._tar.close()
        self._file.close()


def _cause(error: BaseException) -> str:
    return (str(error) or type(error).__name__).splitlines()[0][:200]


__all__ = ["MAX_MEMBERS", "ArchiveFiles", "DirectoryFiles", "TarFiles", "clean_name", "open_files", "unreadable"]
