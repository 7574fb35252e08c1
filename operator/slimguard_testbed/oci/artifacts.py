"""Images and indexes as plain data: configs, manifests and the builders that assemble them."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slimguard_testbed.oci.blobs import (
    CREATED,
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    Blob,
    Layer,
)

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
