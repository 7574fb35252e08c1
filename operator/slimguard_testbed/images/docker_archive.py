"""Fixture images as `docker save` archives, for the tools that read those (dive's `--source docker-archive`,
syft's `docker-archive:`).

The archive is the classic `docker save` layout (Docker 24 and before): `manifest.json` naming the config
`<hex>.json` and one uncompressed `<diff_id hex>/layer.tar` per layer, plus `repositories`. The layer tars are
the fixture's own layer blobs, gunzipped as they stream into the archive, so dive and syft read exactly the
bytes slimguard reads from the registry. Archives are cached by manifest digest under
`~/.cache/slimguard/archives/` (the fat image's is ~700 MB; it is written once, in a few seconds).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from pathlib import Path

from slimguard_testbed.cache import cache_dir, file_lock
from slimguard_testbed.oci import SOURCE_DATE_EPOCH, Image


def archives_cache() -> Path:
    return cache_dir("archives")


def _member(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = SOURCE_DATE_EPOCH
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_member(name, len(data)), io.BytesIO(data))


def write_docker_archive(image: Image, out: Path, *, repo_tag: str) -> Path:
    """Write `image` as a `docker save` archive to `out` (layer blobs gunzipped on the fly)."""
    config_name = image.config.digest.split(":", 1)[1] + ".json"
    layer_names = [f"{layer.diff_id.split(':', 1)[1]}/layer.tar" for layer in image.layers]
    repository, _, tag = repo_tag.rpartition(":")
    with out.open("wb") as handle, tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, config_name, image.config.read())
        written: set[str] = set()
        for layer, name in zip(image.layers, layer_names, strict=True):
            if name in written:  # the same diff twice in one image: docker save stores it once
                continue
            written.add(name)
            directory = _member(name.split("/")[0], 0, 0o755)
            directory.type = tarfile.DIRTYPE
            tar.addfile(directory)
            with layer.blob.open() as compressed, gzip.open(compressed) as layer_tar:
                # tarfile copies exactly the size given and fails on a short stream; a longer one is checked here.
                tar.addfile(_member(name, layer.uncompressed_size), layer_tar)
                if layer_tar.read(1):
                    raise ValueError(f"{layer.blob.digest}: its tar is longer than {layer.uncompressed_size} bytes")
        manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        top_id = image.layers[-1].diff_id.split(":", 1)[1] if image.layers else ""
        _add_bytes(tar, "repositories", json.dumps({repository: {tag: top_id}}).encode())
    return out


def docker_archive(image: Image, *, repo_tag: str) -> Path:
    """The cached `docker save` archive of `image` (written if missing; a lock keeps sessions from racing)."""
    root = archives_cache()
    entry = root / f"{image.digest.split(':', 1)[1]}.tar"
    if entry.exists():
        return entry
    with file_lock(root / f".{entry.stem}.lock"):
        if entry.exists():
            return entry
        with tempfile.NamedTemporaryFile(dir=root, prefix=".writing-", suffix=".tar", delete=False) as partial:
            staging = Path(partial.name)
        try:
            write_docker_archive(image, staging, repo_tag=repo_tag)
            staging.rename(entry)
        finally:
            staging.unlink(missing_ok=True)
    return entry


__all__ = ["archives_cache", "docker_archive", "write_docker_archive"]
