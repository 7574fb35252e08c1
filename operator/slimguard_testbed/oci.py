"""A small OCI image builder and registry pusher, in Python, without Docker.

Layers are deterministic tars (sorted entries, fixed mtimes, uid/gid 0) compressed with gzip at mtime 0, so
the same recipe gives the same digests on every machine. Images are plain data (`Image`, `Index`) holding
their blobs in memory or in files; `push` uploads them to a registry speaking the auth real registries use
(anonymous, Basic, Bearer tokens), and `save_layout`/`load_layout` keep them as an OCI image layout on disk.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import ssl
import stat
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import httpx

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


def layer_from_tar(source: IO[bytes], out: Path, *, created_by: str = "") -> Layer:
    """Gzip an existing tar stream as it is (its diff_id is kept), e.g. a layer from `docker save`."""
    with out.open("wb") as handle:
        writer = _LayerWriter(handle)
        while chunk := source.read(_COPY_CHUNK):
            writer.uncompressed.write(chunk)
        return writer.finish(out, None, created_by)


# -- images and indexes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def as_dict(self) -> dict[str, str]:
        result = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            result["variant"] = self.variant
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "linux")),
            architecture=str(data.get("architecture", "amd64")),
            variant=data.get("variant") or None,
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class History:
    """One `history` entry of an image config; `empty_layer` entries (ENV, CMD, ...) have no layer."""

    created_by: str
    empty_layer: bool = False
    comment: str | None = None


@dataclass(frozen=True)
class Image:
    """One image manifest with its config and layers."""

    manifest: Blob
    media_type: str
    config: Blob
    config_media_type: str
    layers: tuple[Layer, ...]
    platform: Platform
    annotations: Mapping[str, str] | None = None

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def size(self) -> int:
        """Compressed size: the sum of the layer sizes in the manifest (what `docker pull` downloads)."""
        return sum(layer.blob.size for layer in self.layers)

    @property
    def uncompressed_size(self) -> int:
        return sum(layer.uncompressed_size for layer in self.layers)

    def config_json(self) -> dict[str, Any]:
        loaded = json.loads(self.config.read())
        if not isinstance(loaded, dict):
            raise ValueError(f"config {self.config.digest} is not a JSON object")
        return loaded

    def blobs(self) -> list[Blob]:
        return [self.config, *(layer.blob for layer in self.layers)]

    def descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.manifest.size,
            "platform": self.platform.as_dict(),
        }


@dataclass(frozen=True)
class Index:
    """An image index (or Docker manifest list): one manifest per platform."""

    manifest: Blob
    media_type: str
    images: tuple[Image, ...]
    annotations: Mapping[str, str] | None = None

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def image_for(self, platform: str) -> Image:
        for image in self.images:
            if str(image.platform) == platform or str(dataclasses.replace(image.platform, variant=None)) == platform:
                return image
        raise KeyError(f"no {platform} image in index {self.digest}")


Artifact = Image | Index


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def image_from_parts(
    config: Blob,
    layers: Sequence[Layer],
    *,
    platform: Platform | None = None,
    docker: bool = False,
    annotations: Mapping[str, str] | None = None,
    config_media_type: str | None = None,
) -> Image:
    """The manifest for a config blob and layers, as they are (the config need not even be JSON)."""
    if docker and annotations:
        raise ValueError("Docker schema2 manifests have no annotations: use an OCI manifest")
    media_type = MEDIA_DOCKER_MANIFEST if docker else MEDIA_OCI_MANIFEST
    config_type = config_media_type or (MEDIA_DOCKER_CONFIG if docker else MEDIA_OCI_CONFIG)
    layer_type = MEDIA_DOCKER_LAYER_GZIP if docker else MEDIA_OCI_LAYER_GZIP
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": layer_type, "digest": layer.blob.digest, "size": layer.blob.size} for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Image(
        Blob.of(_json_bytes(manifest)),
        media_type,
        config,
        config_type,
        tuple(layers),
        platform or Platform(),
        dict(annotations) if annotations else None,
    )


def build_image(
    layers: Sequence[Layer] = (),
    *,
    base: Image | None = None,
    platform: Platform | None = None,
    user: str | None = None,
    labels: Mapping[str, str] | None = None,
    env: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
    working_dir: str | None = None,
    created: str = CREATED,
    history: Sequence[History] | None = None,
    annotations: Mapping[str, str] | None = None,
    docker: bool = False,
) -> Image:
    """An image of `base`'s layers (if any) plus `layers`, with a config saying so.

    `history` lists the new history entries; without it each layer gets one from its `created_by`. Config
    fields not given are inherited from `base` (labels and env are merged), as `FROM` does.
    """
    if history is None:
        history = [History(layer.created_by) for layer in layers]
    if sum(1 for entry in history if not entry.empty_layer) != len(layers):
        raise ValueError("history must have exactly one non-empty entry per layer")
    if base is not None:
        config = copy.deepcopy(base.config_json())
        platform = platform or base.platform
        all_layers = (*base.layers, *layers)
    else:
        platform = platform or Platform()
        config = {"rootfs": {"type": "layers", "diff_ids": []}, "history": []}
        all_layers = tuple(layers)
    config.update(platform.as_dict())
    if platform.variant is None:
        config.pop("variant", None)
    config["created"] = created
    runtime: dict[str, Any] = config.setdefault("config", {})
    if user is not None:
        runtime["User"] = user
    if labels is not None:
        runtime["Labels"] = {**(runtime.get("Labels") or {}), **labels}
    if env is not None:
        runtime["Env"] = [*(runtime.get("Env") or []), *env]
    if cmd is not None:
        runtime["Cmd"] = list(cmd)
    if entrypoint is not None:
        runtime["Entrypoint"] = list(entrypoint)
    if working_dir is not None:
        runtime["WorkingDir"] = working_dir
    config["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in all_layers]}
    for entry in history:
        item: dict[str, Any] = {"created": created, "created_by": entry.created_by}
        if entry.comment:
            item["comment"] = entry.comment
        if entry.empty_layer:
            item["empty_layer"] = True
        config.setdefault("history", []).append(item)
    return image_from_parts(
        Blob.of(_json_bytes(config)), all_layers, platform=platform, docker=docker, annotations=annotations
    )


def with_config(image: Image, change: Callable[[dict[str, Any]], None]) -> Image:
    """The same layers under a config changed by `change` (e.g. a label naming the registry host)."""
    config = image.config_json()
    change(config)
    return image_from_parts(
        Blob.of(_json_bytes(config)),
        image.layers,
        platform=image.platform,
        docker=image.media_type == MEDIA_DOCKER_MANIFEST,
        annotations=image.annotations,
        config_media_type=image.config_media_type,
    )


def with_annotations(image: Image, annotations: Mapping[str, str] | None) -> Image:
    """The same config and layers under a manifest with `annotations` (OCI manifests only)."""
    return image_from_parts(
        image.config,
        image.layers,
        platform=image.platform,
        docker=image.media_type == MEDIA_DOCKER_MANIFEST,
        annotations=annotations,
        config_media_type=image.config_media_type,
    )


def build_index(
    images: Sequence[Image], *, annotations: Mapping[str, str] | None = None, docker: bool = False
) -> Index:
    """An OCI image index (or, with `docker`, a Docker manifest list) of per-platform images."""
    if docker and annotations:
        raise ValueError("Docker manifest lists have no annotations: use an OCI index")
    media_type = MEDIA_DOCKER_LIST if docker else MEDIA_OCI_INDEX
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [image.descriptor() for image in images],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return Index(Blob.of(_json_bytes(index)), media_type, tuple(images), dict(annotations) if annotations else None)


# -- OCI image layout on disk --------------------------------------------------------------------------


def _place_blob(blobs_dir: Path, blob: Blob) -> None:
    target = blobs_dir / blob.digest.replace(":", "/", 1)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if blob.path is not None:
        try:
            # A hard link: the 300 MB Debian layer is shared by several cached images, stored once.
            os.link(blob.path, target)
            return
        except OSError:
            shutil.copyfile(blob.path, target)
            return
    target.write_bytes(blob.read())


def save_layout(directory: Path, artifact: Artifact, *, ref_name: str = "latest") -> None:
    """Write `artifact` as an OCI image layout (plus a sidecar with what manifests do not record)."""
    directory.mkdir(parents=True, exist_ok=True)
    blobs_dir = directory / "blobs"
    images = artifact.images if isinstance(artifact, Index) else (artifact,)
    sidecar: dict[str, Any] = {"layers": {}, "platforms": {}}
    for image in images:
        for blob in (image.manifest, *image.blobs()):
            _place_blob(blobs_dir, blob)
        sidecar["platforms"][image.digest] = image.platform.as_dict()
        for layer in image.layers:
            sidecar["layers"][layer.blob.digest] = {
                "diff_id": layer.diff_id,
                "size": layer.uncompressed_size,
                "created_by": layer.created_by,
            }
    _place_blob(blobs_dir, artifact.manifest)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / _SIDECAR).write_text(json.dumps(sidecar, indent=1, sort_keys=True))
    descriptor = {
        "mediaType": artifact.media_type,
        "digest": artifact.digest,
        "size": artifact.manifest.size,
        "annotations": {_REF_NAME: ref_name},
    }
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}, indent=1))


def load_layout(directory: Path) -> Artifact:
    """The artifact `save_layout` wrote (layer blobs stay on disk, referenced by path)."""
    top = json.loads((directory / "index.json").read_text())["manifests"][0]
    sidecar = json.loads((directory / _SIDECAR).read_text())

    def blob(digest: str, size: int, *, in_memory: bool) -> Blob:
        path = directory / "blobs" / digest.replace(":", "/", 1)
        if in_memory:
            return Blob(digest, size, data=path.read_bytes())
        return Blob(digest, size, path=path)

    def image(digest: str, size: int) -> Image:
        manifest_blob = blob(digest, size, in_memory=True)
        manifest = json.loads(manifest_blob.read())
        layers = tuple(
            Layer(
                blob(d["digest"], d["size"], in_memory=False),
                sidecar["layers"][d["digest"]]["diff_id"],
                sidecar["layers"][d["digest"]]["size"],
                sidecar["layers"][d["digest"]]["created_by"],
            )
            for d in manifest["layers"]
        )
        config = manifest["config"]
        return Image(
            manifest_blob,
            manifest["mediaType"],
            blob(config["digest"], config["size"], in_memory=True),
            config["mediaType"],
            layers,
            Platform.from_dict(sidecar["platforms"][digest]),
            manifest.get("annotations"),
        )

    if top["mediaType"] in INDEX_MEDIA_TYPES:
        index_blob = blob(top["digest"], top["size"], in_memory=True)
        index = json.loads(index_blob.read())
        images = tuple(image(d["digest"], d["size"]) for d in index["manifests"])
        return Index(index_blob, top["mediaType"], images, index.get("annotations"))
    return image(top["digest"], top["size"])


# -- the registry client -------------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="https://..",service="..",scope="a b"` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def _once(data: bytes) -> Iterator[bytes]:
    yield data


def _repo_scope(repo: str, actions: str) -> str:
    return f"repository:{repo}:{actions}"


@dataclass
class _Token:
    value: str
    expires: float


class RegistryClient:
    """An HTTP client for one registry's /v2/ API that answers its auth challenges.

    Keeps one keep-alive connection, one token per scope set and what it has pushed where (to mount blobs
    across repositories instead of uploading them again). Use it as a context manager, or `close()` it.
    """

    def __init__(
        self, endpoint: EndpointLike, *, timeout: float = 120.0, user_agent: str = "slimguard-testbed"
    ) -> None:
        self.endpoint = endpoint
        scheme = "https" if endpoint.ca_file else "http"
        self.base_url = f"{scheme}://{endpoint.host}"
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(endpoint.ca_file)) if endpoint.ca_file else False
        )
        self._http = httpx.Client(verify=verify, timeout=timeout, headers={"User-Agent": user_agent})
        self._basic = False
        self._bearer: dict[str, str] | None = None  # realm and service, once the registry has named them
        self._tokens: dict[frozenset[str], _Token] = {}
        self._holders: dict[str, set[str]] = {}  # blob digest -> repositories known to hold it

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # auth

    def _credentials(self) -> tuple[str, str] | None:
        if self.endpoint.username is None:
            return None
        return self.endpoint.username, self.endpoint.password or ""

    def _authorization(self, scopes: frozenset[str]) -> str | None:
        if self._basic:
            credentials = self._credentials()
            if credentials is None:
                return None
            return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        if self._bearer is None:
            return None
        token = self._tokens.get(scopes)
        if token is None or token.expires <= time.monotonic():
            token = self._fetch_token(scopes)
        return f"Bearer {token.value}"

    def _fetch_token(self, scopes: frozenset[str]) -> _Token:
        assert self._bearer is not None
        params: list[tuple[str, str | int | float | bool | None]] = [("service", self._bearer.get("service", ""))]
        params += [("scope", scope) for scope in sorted(scopes)]
        credentials = self._credentials()
        if credentials:
            params.append(("account", credentials[0]))
        response = self._http.get(
            self._bearer["realm"], params=params, auth=httpx.BasicAuth(*credentials) if credentials else None
        )
        if response.status_code != 200:
            raise RegistryError(
                f"token request to {self._bearer['realm']} failed: {response.status_code} {response.text[:300]}"
            )
        body = response.json()
        value = body.get("token") or body.get("access_token")
        if not value:
            raise RegistryError(f"token response from {self._bearer['realm']} has no token")
        # Renew a little early: a token that expires mid-upload fails the upload.
        token = _Token(value, time.monotonic() + max(int(body.get("expires_in", 60)) - 15, 5))
        self._tokens[scopes] = token
        return token

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: Iterable[str],
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request with the credentials `scopes` need, answering one 401 challenge if one comes.

        `url` is a path ("/v2/...") or a full URL (an upload Location). Bodies are bytes so a request can
        be sent twice.
        """
        wanted = frozenset(scopes)
        full_url = url if "://" in url else self.base_url + url
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            authorization = self._authorization(wanted)
            if authorization:
                request_headers["Authorization"] = authorization
            body: Iterator[bytes] | None = None
            if content is not None:
                # A one-shot generator, not the bytes: httpx keeps a sent request alive in a reference cycle
                # with its response until the cyclic GC runs, and 16 MB upload chunks would pile up meanwhile.
                # With Content-Length set, httpx sends it as a plain (not chunked) body.
                request_headers["Content-Length"] = str(len(content))
                body = _once(content)
            request = self._http.build_request(method, full_url, headers=request_headers, content=body, params=params)
            response = self._http.send(request, stream=stream)
            if response.status_code != 401 or attempt == 2:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            response.close()
            scheme, values = parse_challenge(challenge)
            if scheme == "basic":
                if self._credentials() is None:
                    raise RegistryError(f"{self.endpoint.host} wants Basic credentials and none were given")
                self._basic = True
            elif scheme == "bearer" and "realm" in values:
                self._bearer = {"realm": values["realm"], "service": values.get("service", "")}
                # The challenge's scopes, plus ours: a push token must also allow pull.
                wanted = wanted | frozenset(values.get("scope", "").split())
                self._tokens.pop(wanted, None)
            else:
                raise RegistryError(f"{method} {full_url}: 401 with an unusable challenge {challenge!r}")
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response, *expected: int) -> httpx.Response:
        if response.status_code not in expected:
            body = response.read()[:500].decode(errors="replace")
            raise RegistryError(f"{response.request.method} {response.request.url}: {response.status_code} {body}")
        return response

    # reading

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index, by tag or digest."""
        response = self._check(
            self.request(
                "GET",
                f"/v2/{repo}/manifests/{reference}",
                scopes=[_repo_scope(repo, "pull")],
                headers={"Accept": ACCEPT_MANIFESTS},
            ),
            200,
        )
        body = response.content
        return body, response.headers.get("Content-Type", ""), sha256_digest(body)

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest a tag points at (HEAD), or None if there is no such manifest."""
        response = self.request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            scopes=[_repo_scope(repo, "pull")],
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        if response.status_code == 404:
            return None
        self._check(response, 200)
        digest = response.headers.get("Docker-Content-Digest")
        return str(digest) if digest is not None else None

    def blob(self, repo: str, digest: str) -> bytes:
        return self._check(
            self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=[_repo_scope(repo, "pull")]), 200
        ).content

    def iter_blob(self, repo: str, digest: str, *, chunk_size: int = _COPY_CHUNK) -> Iterator[bytes]:
        """A blob's bytes in chunks, streamed (a fat layer is hundreds of MB)."""
        response = self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=[_repo_scope(repo, "pull")], stream=True)
        try:
            if response.status_code in (301, 302, 307):  # storage drivers that redirect to a blob URL
                location = response.headers["Location"]
                response.close()
                response = self._http.send(self._http.build_request("GET", location), stream=True)
            self._check(response, 200)
            yield from response.iter_bytes(chunk_size)
        finally:
            response.close()

    def has_blob(self, repo: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=[_repo_scope(repo, "pull")])
        if response.status_code == 404:
            return False
        self._check(response, 200)
        return True

    # pushing

    def push(
        self, repo: str, tag: str | None, artifact: Artifact, *, mount_from: Sequence[str] = (), check_tag: bool = True
    ) -> str:
        """Upload `artifact`'s blobs and manifests to `repo`, tag it, and return its manifest digest.

        A tag already pointing at this digest means everything is there: one HEAD and done (`check_tag`
        False saves that HEAD for images that are new anyway).
        """
        if check_tag and tag is not None and self.manifest_digest(repo, tag) == artifact.digest:
            return artifact.digest
        images = artifact.images if isinstance(artifact, Index) else (artifact,)
        for image in images:
            for blob in image.blobs():
                self.ensure_blob(repo, blob, mount_from=mount_from)
            if isinstance(artifact, Index):
                self.put_manifest(repo, image.digest, image.manifest, image.media_type)
        return self.put_manifest(repo, tag or artifact.digest, artifact.manifest, artifact.media_type)

    def put_manifest(self, repo: str, reference: str, manifest: Blob, media_type: str) -> str:
        response = self._check(
            self.request(
                "PUT",
                f"/v2/{repo}/manifests/{reference}",
                scopes=[_repo_scope(repo, "pull,push")],
                headers={"Content-Type": media_type},
                content=manifest.read(),
            ),
            201,
        )
        digest = str(response.headers.get("Docker-Content-Digest", manifest.digest))
        if digest != manifest.digest:
            raise RegistryError(f"registry stored manifest {reference} of {repo} as {digest}, not {manifest.digest}")
        return digest

    def ensure_blob(self, repo: str, blob: Blob, *, mount_from: Sequence[str] = ()) -> None:
        """Make `repo` hold `blob`: skip it if it is there, mount it from a repository that has it, or upload."""
        holders = self._holders.setdefault(blob.digest, set())
        if repo in holders:
            return
        if self.has_blob(repo, blob.digest):
            holders.add(repo)
            return
        push_scope = _repo_scope(repo, "pull,push")
        location: str | None = None
        for source in (*mount_from, *sorted(holders)):
            if source == repo:
                continue
            response = self.request(
                "POST",
                f"/v2/{repo}/blobs/uploads/",
                params={"mount": blob.digest, "from": source},
                scopes=[push_scope, _repo_scope(source, "pull")],
            )
            if response.status_code == 201:
                holders.add(repo)
                return
            if response.status_code == 202:  # not mountable (not there, or no pull access): upload into this
                location = response.headers["Location"]
                break
        if location is None:
            response = self._check(self.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=[push_scope]), 202)
            location = response.headers["Location"]
        self._upload(location, blob, push_scope)
        holders.add(repo)

    def _upload(self, location: str, blob: Blob, scope: str) -> None:
        octets = {"Content-Type": "application/octet-stream"}
        if blob.size <= UPLOAD_CHUNK:
            # Monolithic: the whole blob in the closing PUT.
            url = self._with_digest(location, blob.digest)
            self._check(self.request("PUT", url, scopes=[scope], headers=octets, content=blob.read()), 201)
            return
        # Chunked: PATCH it from the file a chunk at a time, so a 300 MB layer is never all in memory.
        offset = 0
        with blob.open() as source:
            while chunk := source.read(UPLOAD_CHUNK):
                headers = {**octets, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                response = self._check(
                    self.request("PATCH", location, scopes=[scope], headers=headers, content=chunk), 202
                )
                location = response.headers["Location"]
                offset += len(chunk)
        if offset != blob.size:
            raise RegistryError(f"blob {blob.digest} is {offset} bytes on disk, expected {blob.size}")
        self._check(self.request("PUT", self._with_digest(location, blob.digest), scopes=[scope]), 201)

    def _with_digest(self, location: str, digest: str) -> str:
        url = httpx.URL(location if "://" in location else self.base_url + location)
        return str(url.copy_merge_params({"digest": digest}))


def push(
    endpoint: EndpointLike,
    repo: str,
    tag: str | None,
    artifact: Artifact,
    *,
    client: RegistryClient | None = None,
    mount_from: Sequence[str] = (),
) -> str:
    """Push `artifact` to `endpoint`'s `repo` under `tag`; returns the manifest digest."""
    if client is not None:
        return client.push(repo, tag, artifact, mount_from=mount_from)
    with RegistryClient(endpoint) as own:
        return own.push(repo, tag, artifact, mount_from=mount_from)


__all__ = [
    "CREATED",
    "MEDIA_DOCKER_CONFIG",
    "MEDIA_DOCKER_LAYER_GZIP",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_OCI_CONFIG",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_LAYER_GZIP",
    "MEDIA_OCI_MANIFEST",
    "SOURCE_DATE_EPOCH",
    "Artifact",
    "Blob",
    "Directory",
    "EndpointLike",
    "FileSpec",
    "History",
    "Image",
    "Index",
    "Layer",
    "Platform",
    "RegistryClient",
    "RegistryError",
    "Symlink",
    "build_image",
    "build_index",
    "image_from_parts",
    "layer_from_directory",
    "layer_from_files",
    "layer_from_tar",
    "load_layout",
    "parse_challenge",
    "push",
    "save_layout",
    "with_annotations",
    "with_config",
]
