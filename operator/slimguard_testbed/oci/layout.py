"""OCI image layouts on disk: fixtures are cached as layouts and loaded back without a registry."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from slimguard_testbed.oci.artifacts import Artifact, Image, Index, Platform
from slimguard_testbed.oci.blobs import _REF_NAME, _SIDECAR, INDEX_MEDIA_TYPES, Blob, Layer

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
