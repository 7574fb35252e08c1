"""One-off images for tests: small, deterministic and pushed in well under a second."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from slimguard_testbed import oci
from slimguard_testbed.images.common import BASE_DIGEST_LABEL, BASE_NAME_LABEL
from slimguard_testbed.images.publish import _as_image
from slimguard_testbed.images.published import FixtureImage, fixture_image
from slimguard_testbed.oci import EndpointLike, FileSpec, Image, Layer, Platform

if TYPE_CHECKING:
    pass


# -- one-off images for tests --------------------------------------------------------------------------

_clients: dict[tuple[str, str, str | None], oci.IndependentRegistryClient] = {}
_clients_lock = threading.Lock()


def _client_for(endpoint: EndpointLike) -> oci.IndependentRegistryClient:
    """One keep-alive client (and token cache) per registry, so a one-off push costs a few requests."""
    key = (endpoint.host, str(endpoint.ca_file), endpoint.username)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = oci.IndependentRegistryClient(endpoint)
        return client


def close_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def push_image(
    endpoint: EndpointLike,
    repository: str,
    tag: str,
    layers: Sequence[Layer | Mapping[str, FileSpec]] = (),
    *,
    base: FixtureImage | Image | None = None,
    user: str | None = None,
    labels: Mapping[str, str] | None = None,
    base_annotation: FixtureImage | tuple[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    platform: Platform | None = None,
    cmd: Sequence[str] | None = None,
    docker: bool = False,
) -> FixtureImage:
    """Build and push a one-off image (a few ms on a warm registry); returns what was pushed.

    `layers` are `oci.Layer`s or {path: bytes | (bytes, mode) | Symlink | Directory} dicts; `base` puts
    another image's layers (and config) underneath, mounted from its repository rather than uploaded.
    `base_annotation` (a fixture, or (reference, digest)) sets the OCI base-image manifest annotations.
    """
    built = [
        layer if isinstance(layer, Layer) else oci.layer_from_files(layer, created_by="COPY . / # buildkit")
        for layer in layers
    ]
    base_image: Image | None
    mount_from: tuple[str, ...] = ()
    if isinstance(base, FixtureImage):
        base_image = _as_image(base.artifact) if isinstance(base.artifact, Image) else base.artifact.images[0]
        mount_from = (base.repository,)
    else:
        base_image = base
    all_annotations = dict(annotations or {})
    if isinstance(base_annotation, FixtureImage):
        all_annotations |= {BASE_NAME_LABEL: base_annotation.ref, BASE_DIGEST_LABEL: base_annotation.digest}
    elif base_annotation is not None:
        all_annotations |= {BASE_NAME_LABEL: base_annotation[0], BASE_DIGEST_LABEL: base_annotation[1]}
    image = oci.build_image(
        built,
        base=base_image,
        platform=platform,
        user=user,
        labels=labels,
        cmd=cmd,
        annotations=all_annotations or None,
        docker=docker,
    )
    # One-offs are new images: skip the tag HEAD (a re-push still only HEADs its blobs).
    _client_for(endpoint).push(repository, tag, image, mount_from=mount_from, check_tag=False)
    return fixture_image(endpoint.host, repository, tag, image)
