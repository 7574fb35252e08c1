"""An image in a local Docker engine → facts. Pure: the engine's inspect and history answers in, facts out.

The engine keeps layers uncompressed, under their diff IDs: each layer's size is its uncompressed size and
its digest is its diff ID (which is what base images are compared by), and the compressed size a registry
would report is unknown unless the layers are compressed and measured (``with_compressed_sizes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from slimguard.core.facts.image_facts import ImageFacts, Layer, PlatformImage
from slimguard.core.facts.media_types import DOCKER_MANIFEST
from slimguard.core.facts.oci import annotated_base, load_document
from slimguard.core.model.platform import Platform

DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
_LAYER_STEPS = ("RUN ", "COPY ", "ADD ", "/bin/sh -c #(nop) COPY", "/bin/sh -c #(nop) ADD")


def local_image_facts(attrs: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> ImageFacts:
    """Facts from ``docker image inspect`` (``attrs``) and ``docker history`` (newest first, as the API gives it)."""
    config = _dict(attrs.get("Config"))
    diff_ids = [str(d) for d in _list(_dict(attrs.get("RootFS")).get("Layers")) if isinstance(d, str)]
    steps = _layer_steps(history, len(diff_ids), total=_int(attrs.get("Size")))
    layers = tuple(
        Layer(
            digest=diff_id,
            size=size,
            media_type=DOCKER_LAYER_TAR,
            diff_id=diff_id,
            uncompressed_size=size,
            created_by=created_by,
        )
        for diff_id, (size, created_by) in zip(diff_ids, steps, strict=True)
    )
    labels = {str(k): str(v) for k, v in _dict(config.get("Labels")).items()}
    image_id = str(attrs.get("Id") or "")
    platform = Platform(
        str(attrs.get("Os") or "linux"), str(attrs.get("Architecture") or "amd64"), _text(attrs.get("Variant"))
    )
    image = PlatformImage(
        platform=platform,
        manifest_digest=image_id,
        config_digest=image_id,
        config_size=0,
        layers=layers,
        user=str(config.get("User") or ""),
        labels=labels,
        annotated_base=annotated_base(labels),
        compressed_measured=False,
    )
    return ImageFacts(digest=image_id, media_type=DOCKER_MANIFEST, platforms=(image,), listed_platforms=(platform,))


def with_config(facts: ImageFacts, config_body: bytes) -> ImageFacts:
    """The facts with each layer's ``created_by`` from the image's own config (from ``docker save``), which
    marks empty layers exactly where the history API can only be read by heuristics."""
    config = load_document(config_body, "image config")
    commands = [
        str(entry.get("created_by") or "") or None
        for entry in _list(config.get("history"))
        if isinstance(entry, dict) and not entry.get("empty_layer")
    ]
    image = facts.platforms[0]
    if len(commands) != len(image.layers):
        return facts
    layers = tuple(replace(layer, created_by=command) for layer, command in zip(image.layers, commands, strict=True))
    return replace(facts, platforms=(replace(image, layers=layers, config_size=len(config_body)),))


def with_compressed_sizes(facts: ImageFacts, compressed: Mapping[str, int]) -> ImageFacts:
    """The facts with each layer's measured compressed size (by diff ID): the sizes a push would report."""
    image = facts.platforms[0]
    if any(layer.digest not in compressed for layer in image.layers):
        return facts
    layers = tuple(replace(layer, size=compressed[layer.digest]) for layer in image.layers)
    return replace(facts, platforms=(replace(image, layers=layers, compressed_measured=True),))


def _layer_steps(history: Sequence[Mapping[str, Any]], count: int, *, total: int) -> list[tuple[int, str | None]]:
    """(size, created_by) for each of ``count`` layers, oldest first.

    The history API gives every step, those that made no layer included, with no flag telling which did: a
    step of size > 0 made one; a step of size 0 made one if it is a RUN, COPY or ADD (or an import). When that
    reading does not find exactly ``count`` layers, sizes are still right (zero-size steps add nothing) and
    ``created_by`` is left unknown rather than guessed; when even the sizes do not line up, the engine's total
    stands on the last layer, so what size rules read is still the image's size.
    """
    oldest_first = [entry for entry in reversed(history) if isinstance(entry, Mapping)]
    made = [
        entry
        for entry in oldest_first
        if _int(entry.get("Size")) > 0 or str(entry.get("CreatedBy") or "").lstrip().startswith(_LAYER_STEPS)
    ]
    if len(made) == count:
        return [(_int(entry.get("Size")), str(entry.get("CreatedBy") or "") or None) for entry in made]
    sized = [_int(entry.get("Size")) for entry in oldest_first if _int(entry.get("Size")) > 0]
    unknown: str | None = None
    if len(sized) == count:
        return [(size, unknown) for size in sized]
    return [(0, unknown)] * (count - 1) + [(total, unknown)] if count else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
