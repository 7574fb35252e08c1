"""Image archives written the ways the tools write them, from the test bed's in-memory images (real tars, real
gzip layers, real configs), into a temporary directory.

- ``oci_layout``: an OCI image layout directory, as ``skopeo copy ... oci:DIR:TAG`` writes it (the test bed's own
  ``save_layout``); ``tar_of`` makes its tar (``oci-archive:``), gzip-compressed if asked.
- ``docker_save``: ``docker save`` before Docker 25 (``manifest.json``, ``<id>/layer.tar``, ``<hex>.json``).
- ``docker_save_oci``: ``docker save`` of Docker 25 and later: an OCI layout whose layers are the uncompressed
  tars, named in ``index.json`` by containerd's annotation, beside a ``manifest.json`` pointing into ``blobs/``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimguard_testbed.images.docker_archive import write_docker_archive
from slimguard_testbed.oci import Image, build_image, build_index
from slimguard_testbed.oci.artifacts import Artifact, History, Index, Platform
from slimguard_testbed.oci.blobs import layer_from_files
from slimguard_testbed.oci.layout import save_layout

NAME = "registry.example.com/shop/app:1.0"
KIB = 1024


def dpkg_status(*packages: str) -> bytes:
    return b"".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n".encode()
        for name in packages
    )


def noise(seed: str, size: int) -> bytes:
    """Incompressible bytes: sizes survive gzip."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def app_image(platform: Platform | None = None) -> Image:
    """Three layers as a Dockerfile makes them: a base with a shell and three dpkg packages; 256 KiB added; the
    same file deleted (wasted: still shipped). Runs as root."""
    base = layer_from_files(
        {
            "/bin/sh": (noise("sh", 20 * KIB), 0o755),
            "/var/lib/dpkg/status": dpkg_status("base-files", "libc6", "tzdata"),
        },
        created_by="ADD rootfs.tar.xz / # buildkit",
    )
    added = layer_from_files(
        {"/data/blob.bin": noise("blob", 256 * KIB)}, created_by="RUN /bin/sh -c fetch /data/blob.bin # buildkit"
    )
    deleted = layer_from_files({"/data/.wh.blob.bin": b""}, created_by="RUN /bin/sh -c rm /data/blob.bin # buildkit")
    return build_image(
        [base, added, deleted],
        platform=platform,
        history=[
            History(base.created_by),
            History("ENV PATH=/bin", empty_layer=True),
            History(added.created_by),
            History(deleted.created_by),
        ],
    )


def small_image(platform: Platform) -> Image:
    return build_image(
        [layer_from_files({"/app": noise(f"app-{platform}", 4 * KIB)}, created_by="COPY app /app # buildkit")],
        platform=platform,
        user="10001",
    )


def multi_platform() -> Index:
    return build_index([app_image(Platform("linux", "amd64")), small_image(Platform("linux", "arm64", "v8"))])


def oci_layout(directory: Path, artifact: Artifact, *, tag: str = "1.0") -> Path:
    save_layout(directory, artifact, ref_name=tag)
    return directory


def tar_of(directory: Path, out: Path, *, compress: bool = False, prefix: str = "") -> Path:
    """The directory's files as a tar (``oci-archive:``), with their paths under ``prefix``."""
    with tarfile.open(out, "w:gz" if compress else "w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(directory.rglob("*")):
            archive.add(path, arcname=prefix + path.relative_to(directory).as_posix(), recursive=False)
    return out


def docker_save(out: Path, image: Image, *, repo_tag: str = NAME) -> Path:
    return write_docker_archive(image, out, repo_tag=repo_tag)


def docker_save_oci(out: Path, image: Image, *, name: str = NAME) -> Path:
    """``docker save`` of Docker 25+: the layers uncompressed under their diff IDs, an OCI manifest of ``.tar``
    layers, ``index.json`` naming it by containerd's annotation, ``manifest.json`` pointing into ``blobs/``."""
    blobs: dict[str, bytes] = {}
    layers = []
    for layer in image.layers:
        with gzip.open(io.BytesIO(layer.blob.read())) as unpacked:
            tar = unpacked.read()
        blobs[layer.diff_id] = tar
        layers.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.diff_id, "size": len(tar)}
        )
    config = image.config.read()
    blobs[image.config.digest] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": image.config.digest,
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    blobs[manifest_digest] = manifest
    tag = name.rpartition(":")[2]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    saved = [
        {
            "Config": "blobs/" + image.config.digest.replace(":", "/"),
            "RepoTags": [name],
            "Layers": ["blobs/" + layer.diff_id.replace(":", "/") for layer in image.layers],
        }
    ]
    files = {
        **{"blobs/" + digest.replace(":", "/"): body for digest, body in blobs.items()},
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": json.dumps(index).encode(),
        "manifest.json": json.dumps(saved).encode(),
    }
    return write_tar(out, files)


def crane_tarball(out: Path, image: Image, *, repo_tag: str = NAME) -> Path:
    """go-containerregistry's tarball (``crane pull``, ``kaniko --tar-path``): a ``docker save`` ``manifest.json``
    whose config is ``sha256:<hex>`` and whose layers are the gzip blobs, ``<hex>.tar.gz``."""
    config = f"sha256:{image.config.digest[7:]}"
    layers = {f"{layer.blob.digest[7:]}.tar.gz": layer.blob.read() for layer in image.layers}
    saved = [{"Config": config, "RepoTags": [repo_tag], "Layers": list(layers)}]
    return write_tar(out, {config: image.config.read(), **layers, "manifest.json": json.dumps(saved).encode()})


def write_tar(out: Path, files: Mapping[str, bytes | tarfile.TarInfo]) -> Path:
    """A tar of exactly these members (a TarInfo as given: a link, a hostile name)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in files.items():
            if isinstance(content, tarfile.TarInfo):
                archive.addfile(content)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return out


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / digest.replace(":", "/", 1)


def edit_json(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def two_image_archive(directory: Path) -> Path:
    """One ``docker save`` of two images (``docker save example.com/one:1 example.com/two:2``)."""
    members: dict[str, bytes | tarfile.TarInfo] = {}
    catalogue = []
    for repo_tag, platform in (("example.com/one:1", None), ("example.com/two:2", Platform("linux", "arm64"))):
        saved = docker_save(directory / f"{repo_tag.rpartition(':')[2]}.tar", app_image(platform), repo_tag=repo_tag)
        with tarfile.open(saved) as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    members[member.name] = extracted.read()
        catalogue.extend(json.loads(members.pop("manifest.json")))  # type: ignore[arg-type]
        members.pop("repositories")
    members["manifest.json"] = json.dumps(catalogue).encode()
    return write_tar(directory / "both.tar", members)


def docker_save_all(out: Path, images: Mapping[str, Image]) -> Path:
    """One ``docker save`` of several images (``docker save NAME...``), each under its repo tag."""
    members: dict[str, bytes | tarfile.TarInfo] = {}
    catalogue = []
    for number, (repo_tag, image) in enumerate(images.items()):
        saved = docker_save(out.parent / f"{out.stem}-{number}.tar", image, repo_tag=repo_tag)
        with tarfile.open(saved) as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    members[member.name] = extracted.read()
        catalogue.extend(json.loads(members.pop("manifest.json")))  # type: ignore[arg-type]
        members.pop("repositories", None)
    members["manifest.json"] = json.dumps(catalogue).encode()
    return write_tar(out, members)
