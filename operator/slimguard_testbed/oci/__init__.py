"""A small OCI image builder and registry pusher, in Python, without Docker.

Layers are deterministic tars (sorted entries, fixed mtimes, uid/gid 0) compressed with gzip at mtime 0, so
the same recipe gives the same digests on every machine. Images are plain data (`Image`, `Index`) holding
their blobs in memory or in files; `push` uploads them to a registry speaking the auth real registries use
(anonymous, Basic, Bearer tokens), and `save_layout`/`load_layout` keep them as an OCI image layout on disk.
"""

from __future__ import annotations

from slimguard_testbed.oci.artifacts import (
    Artifact,
    History,
    Image,
    Index,
    Platform,
    build_image,
    build_index,
    image_from_parts,
    with_annotations,
    with_config,
)
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
    SOURCE_DATE_EPOCH,
    Blob,
    Directory,
    EndpointLike,
    FileSpec,
    Layer,
    RegistryError,
    Symlink,
    layer_from_directory,
    layer_from_files,
    layer_from_tar,
    layer_from_tar_bytes,
)
from slimguard_testbed.oci.layout import load_layout, save_layout
from slimguard_testbed.oci.push_client import IndependentRegistryClient, parse_challenge, push

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
    "IndependentRegistryClient",
    "Index",
    "Layer",
    "Platform",
    "RegistryError",
    "Symlink",
    "build_image",
    "build_index",
    "image_from_parts",
    "layer_from_directory",
    "layer_from_files",
    "layer_from_tar",
    "layer_from_tar_bytes",
    "load_layout",
    "parse_challenge",
    "push",
    "save_layout",
    "with_annotations",
    "with_config",
]
