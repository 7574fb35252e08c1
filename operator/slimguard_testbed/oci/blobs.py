"""Blobs and layers: deterministic tars, gzip at mtime 0, digests computed while writing."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_MEDIA_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
MANIFEST_MEDIA_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
ACCEPT_MANIFESTS = ", ".join([MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST])

# Every fixture plays an image published on the Debian snapshot date the machine's sources pin.
SOURCE_DATE_EPOCH = 1747699200
CREATED = "2025-05-20T00:00:00Z"

GZIP_LEVEL = 6  # what docker and containerd use: ~3x faster than 9 for a few % in size
_COPY_CHUNK = 1 << 20
UPLOAD_CHUNK = 16 << 20  # PATCH size for chunked uploads, and the largest blob sent in one PUT
_REF_NAME = "org.opencontainers.image.ref.name"
_SIDECAR = "slimguard-layout.json"


class RegistryError(RuntimeError):
    """The registry (or its token issuer) answered something other than what the protocol promises."""


class EndpointLike(Protocol):
    """What `push` needs of a registry: `slimguard_testbed.registry.RegistryEndpoint` fits."""

    @property
    def host(self) -> str: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- blobs and layers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes, held in memory (`data`) or in a file (`path`) so big layers stay on disk."""

    digest: str
    size: int
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(sha256_digest(data), len(data), data=data)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")


@dataclass(frozen=True)
class Layer:
    """A gzipped layer blob, the sha256 of its tar (diff_id), and the history line that made it."""

    blob: Blob
    diff_id: str
    uncompressed_size: int
    created_by: str = ""

    def with_created_by(self, created_by: str) -> Layer:
        return dataclasses.replace(self, created_by=created_by)


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Directory:
    mode: int = 0o755


# What a file in `layer_from_files` may be: bytes (mode 0644), (bytes, mode), a symlink or a directory.
FileSpec = bytes | tuple[bytes, int] | Symlink | Directory


class _HashingSink:
    """A write-only file that hashes and counts what passes through it on the way to `target`."""

    def __init__(self, target: IO[bytes] | _HashingSink | gzip.GzipFile | None) -> None:
        self.sha = hashlib.sha256()
        self.size = 0
        self._target = target

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self._target is not None:
            self._target.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class _LayerWriter:
    """tar bytes in -> (diff_id, size) of the tar and (digest, size) of its gzip, written to `out`."""

    def __init__(self, out: IO[bytes]) -> None:
        self.compressed = _HashingSink(out)
        # filename="" and mtime=0: no name or time in the gzip header, so equal tars give equal blobs.
        self._gzip = gzip.GzipFile(
            filename="",
            mode="wb",
            compresslevel=GZIP_LEVEL,
            fileobj=self.compressed,
            mtime=0,
        )
        self.uncompressed = _HashingSink(self._gzip)

    def tar(self) -> tarfile.TarFile:
        # Stream mode ("w|") never seeks or tells, so the sink need not be a real file.
        tar: tarfile.TarFile = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115 (closed by callers)
            fileobj=self.uncompressed, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_COPY_CHUNK
        )
        return tar

    def finish(self, out_path: Path | None, data: bytes | None, created_by: str) -> Layer:
        self._gzip.close()
        blob = Blob(self.compressed.digest, self.compressed.size, data=data, path=out_path)
        return Layer(blob, self.uncompressed.digest, self.uncompressed.size, created_by)


def _tarinfo(name: str, kind: bytes, mode: int, *, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = SOURCE_DATE_EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _clean_path(path: str) -> str:
    parts = [part for part in path.strip("/").split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"bad path in a layer: {path!r}")
    return "/".join(parts)


def layer_from_files(files: Mapping[str, FileSpec], *, created_by: str = "") -> Layer:
    """A layer (in memory) holding `files`; missing parent directories are added with mode 0755."""
    entries: dict[str, FileSpec] = {}
    for raw, spec in files.items():
        path = _clean_path(raw)
        entries[path] = spec
        parent = path.rpartition("/")[0]
        while parent and parent not in entries:
            entries[parent] = Directory()
            parent = parent.rpartition("/")[0]
    buffer = io.BytesIO()
    writer = _LayerWriter(buffer)
    with writer.tar() as tar:
        # Sorted paths put every parent before its children ("a" < "a-b" < "a/b").
        for path in sorted(entries):
            spec = entries[path]
            if isinstance(spec, Directory):
                tar.addfile(_tarinfo(path + "/", tarfile.DIRTYPE, spec.mode))
            elif isinstance(spec, Symlink):
                tar.addfile(_tarinfo(path, tarfile.SYMTYPE, 0o777, linkname=spec.target))
            else:
                content, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
                tar.addfile(_tarinfo(path, tarfile.REGTYPE, mode, size=len(content)), io.BytesIO(content))
    layer = writer.finish(None, None, created_by)
    return dataclasses.replace(layer, blob=dataclasses.replace(layer.blob, data=buffer.getvalue()))


def layer_from_directory(
    root: Path, out: Path, *, created_by: str = "", empty_dirs: Iterable[str] = ("proc", "sys", "dev")
) -> Layer:
    """Tar the tree under `root` deterministically into the gzip file `out`, streaming (a rootfs is big).

    Hard links stay hard links; device nodes, fifos and sockets are left out (the runtime makes /dev), and
    the directories in `empty_dirs` (relative to `root`) are kept empty, as in real base images.
    """
    skip_contents = {_clean_path(d) for d in empty_dirs}
    with out.open("wb") as handle:
        writer = _LayerWriter(handle)
        with writer.tar() as tar:
            seen: dict[tuple[int, int], str] = {}

            def walk(directory: Path, prefix: str) -> None:
                with os.scandir(directory) as scan:
                    names = sorted(entry.name for entry in scan)
                for name in names:
                    full = directory / name
                    rel = f"{prefix}{name}"
                    st = full.lstat()
                    mode = stat.S_IMODE(st.st_mode)
                    if stat.S_ISDIR(st.st_mode):
                        tar.addfile(_tarinfo(rel + "/", tarfile.DIRTYPE, mode))
                        if rel not in skip_contents:
                            walk(full, rel + "/")
                    elif stat.S_ISLNK(st.st_mode):
                        tar.addfile(_tarinfo(rel, tarfile.SYMTYPE, 0o777, linkname=os.readlink(full)))
                    elif stat.S_ISREG(st.st_mode):
                        key = (st.st_dev, st.st_ino)
                        if st.st_nlink > 1 and key in seen:
                            tar.addfile(_tarinfo(rel, tarfile.LNKTYPE, mode, linkname=seen[key]))
                            continue
                        seen[key] = rel
                        with full.open("rb") as content:
                            tar.addfile(_tarinfo(rel, tarfile.REGTYPE, mode, size=st.st_size), content)

            walk(root, "")
        return writer.finish(out, None, created_by)


def layer_from_tar_bytes(tar: bytes, *, created_by: str = "") -> Layer:
    """Gzip a tar held in memory as it is, however it was made (hostile fixtures write names `layer_from_files`
    refuses, such as `../x`)."""
    buffer = io.BytesIO()
    writer = _LayerWriter(buffer)
    writer.uncompressed.write(tar)
    layer = writer.finish(None, None, created_by)
    return dataclasses.replace(layer, blob=dataclasses.replace(layer.blob, data=buffer.getvalue()))


def layer_from_tar(source: IO[bytes], out: Path, *, created_by: str = "") -> Layer:
    """Gzip an existing tar stream as it is (its diff_id is kept), e.g. a layer from `docker save`."""
    with out.open("wb") as handle:
        writer = _LayerWriter(handle)
        while chunk := source.read(_COPY_CHUNK):
            writer.uncompressed.write(chunk)
        return writer.finish(out, None, created_by)
