"""What an image archive holds, and which of its images a name means. Pure: the archive's catalogue bytes in.

Two catalogues exist, and an archive may hold both:
- ``index.json`` of an OCI image layout: a directory, its tar (``skopeo copy ... oci-archive:``, ``buildah push
  ... oci-archive:``, ``docker buildx build --output type=oci``), and ``docker save`` of Docker 25 and later. Its
  entries are descriptors of manifests or indexes, named by annotations;
- ``manifest.json`` of ``docker save`` before Docker 25 (and of go-containerregistry tarballs: ``kaniko
  --tar-path``, ``crane pull``): per image, a config file, layer files in order and its ``RepoTags``.

``index.json`` is read when it lists an image, ``manifest.json`` otherwise (Docker 25's ``index.json`` lists only
tagged images; ``docker save IMAGE_ID`` leaves it empty).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slimguard.core.errors import InspectionError, InspectionReason, InvalidReference
from slimguard.core.facts.media_types import IMAGE_TYPES
from slimguard.core.facts.oci import GarbledDocument, load_document
from slimguard.core.model.platform import Platform
from slimguard.core.model.reference import ImageReference

LAYOUT_INDEX = "index.json"
DOCKER_SAVE_MANIFEST = "manifest.json"
IMAGE_NAME = "io.containerd.image.name"
"""containerd's (and Docker 25's ``docker save``'s) annotation: the image's full name."""
REF_NAME = "org.opencontainers.image.ref.name"
"""The OCI layout's annotation: a tag (``skopeo copy ... oci:DIR:1.0``) or, for some tools, a full name."""

_DIGESTS = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
# How archives name digest-addressed files: blobs/<alg>/<hex> (OCI, Docker 25), <hex>.json (the config of
# docker save before 25), sha256:<hex> and <hex>.tar.gz (go-containerregistry's tarballs).
_NAMED_BY_DIGEST = (
    re.compile(r"blobs/(?P<alg>sha256|sha512)/(?P<hex>[a-f0-9]+)"),
    re.compile(r"(?P<alg>sha256):(?P<hex>[a-f0-9]{64})"),
    re.compile(r"(?P<hex>[a-f0-9]{64})\.(?:json|tar|tar\.gz)"),
)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A manifest (or index) ``index.json`` points at."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True, slots=True)
class SavedImage:
    """One image of a ``docker save`` ``manifest.json``: files in the archive, not digests."""

    config: str
    layers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ArchivedImage:
    """One image an archive holds, and what it is called there.

    Exactly one of: ``descriptor`` (a manifest or index of an OCI layout), ``listed`` (platform manifests that
    ``index.json`` lists side by side, unnamed or under one name: ``index.json`` is then the image's index), or
    ``saved`` (an image of ``docker save``'s ``manifest.json``).
    """

    names: tuple[str, ...] = ()
    """Full references (``RepoTags``; ``io.containerd.image.name``; a ``ref.name`` that is a full reference)."""
    tags: tuple[str, ...] = ()
    """``ref.name`` values that are only a tag (``1.0``): the image answers to any name with that tag."""
    descriptor: Descriptor | None = None
    listed: tuple[Descriptor, ...] = ()
    saved: SavedImage | None = None

    @property
    def label(self) -> str:
        """How a message names it: its first name, else its tag, else its digest or config file."""
        if self.names:
            return self.names[0]
        if self.tags:
            return f"tag {self.tags[0]}"
        if self.descriptor is not None:
            return self.descriptor.digest
        if self.saved is not None:
            return self.saved.config
        return "the image index.json lists"


def blob_path(digest: str) -> str:
    """Where an OCI layout keeps the blob ``digest``: ``blobs/<algorithm>/<hex>``. A digest that is not a
    well-formed sha256 or sha512 one is refused here, so a descriptor can never name a path of its choosing."""
    algorithm, _, encoded = digest.partition(":")
    pattern = _DIGESTS.get(algorithm)
    if pattern is None or not pattern.fullmatch(encoded):
        raise InspectionError(
            f"the archive names a blob by {digest[:150]!r}, not a sha256 or sha512 digest",
            reason=InspectionReason.UNSUPPORTED_DIGEST,
        )
    return f"blobs/{algorithm}/{encoded}"


def digest_in_name(path: str) -> str | None:
    """The digest a ``docker save`` file is named by (its config, and its layers from Docker 25 on), if any."""
    for pattern in _NAMED_BY_DIGEST:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        algorithm = match.groupdict().get("alg") or "sha256"
        if _DIGESTS[algorithm].fullmatch(match["hex"]):
            return f"{algorithm}:{match['hex']}"
    return None


def layout_images(body: bytes, *, max_entries: int) -> tuple[ArchivedImage, ...]:
    """The images an OCI layout's ``index.json`` lists. The same digest listed under several names is one image;
    platform manifests listed side by side, unnamed or under one name, are one multi-platform image."""
    document = load_document(body, LAYOUT_INDEX)
    raw = document.get("manifests")
    if not isinstance(raw, list):
        raise GarbledDocument(LAYOUT_INDEX)
    if len(raw) > max_entries:
        raise GarbledDocument(f"{LAYOUT_INDEX} (it lists {len(raw):,} manifests; slimguard reads {max_entries:,})")
    merged: dict[str, tuple[Descriptor, list[str], list[str]]] = {}
    for item in raw:
        descriptor = _descriptor(item)
        names, tags = _names(item.get("annotations"))
        _, known_names, known_tags = merged.setdefault(descriptor.digest, (descriptor, [], []))
        known_names.extend(name for name in names if name not in known_names)
        known_tags.extend(tag for tag in tags if tag not in known_tags)
    entries = list(merged.values())
    called = {(tuple(names), tuple(tags)) for _, names, tags in entries}
    side_by_side = (
        len(entries) > 1
        and len(called) == 1
        and all(d.media_type in IMAGE_TYPES and d.platform is not None for d, _, _ in entries)
        and len({d.platform for d, _, _ in entries}) == len(entries)
    )
    if side_by_side:
        ((shared_names, shared_tags),) = called
        return (ArchivedImage(shared_names, shared_tags, listed=tuple(d for d, _, _ in entries)),)
    return tuple(ArchivedImage(tuple(names), tuple(tags), descriptor=d) for d, names, tags in entries)


def saved_images(body: bytes, *, max_entries: int) -> tuple[ArchivedImage, ...]:
    """The images of a ``docker save`` ``manifest.json``: config and layer files, and their ``RepoTags``."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise GarbledDocument(DOCKER_SAVE_MANIFEST) from None
    if not isinstance(document, list):
        raise GarbledDocument(DOCKER_SAVE_MANIFEST)
    if len(document) > max_entries:
        raise GarbledDocument(
            f"{DOCKER_SAVE_MANIFEST} (it lists {len(document):,} images; slimguard reads {max_entries:,})"
        )
    images = []
    for item in document:
        if not isinstance(item, dict):
            raise GarbledDocument(DOCKER_SAVE_MANIFEST)
        config, layers, tags = item.get("Config"), item.get("Layers"), item.get("RepoTags")
        if not isinstance(config, str) or not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
            raise GarbledDocument(DOCKER_SAVE_MANIFEST)
        names = [tag for tag in tags if isinstance(tag, str) and _is_reference(tag)] if isinstance(tags, list) else []
        images.append(ArchivedImage(tuple(names), saved=SavedImage(config, tuple(layers))))
    return tuple(images)


def select_images(
    images: Sequence[ArchivedImage], requested: Sequence[str], *, where: str, unnamed_ok: bool = False
) -> dict[str, ArchivedImage]:
    """Which archived image each name means; the name is what policies match and findings say.

    Without names, every image under its own first name (an image the archive does not name is an error: there
    is nothing for ``match.images`` to match; with ``unnamed_ok``, for showing it, it goes by its ``label``). A
    name means the image the archive calls so (its full name, or a ``ref.name`` tag equal to the name's tag); in
    an archive of one image, whatever the name, that image.
    """
    if not images:
        raise InspectionError(f"{where} holds no image", reason=InspectionReason.IMAGE_NOT_FOUND)
    if not requested:
        chosen: dict[str, ArchivedImage] = {}
        for image in images:
            if not image.names and not unnamed_ok:
                raise InspectionError(
                    f"{where} holds an image with no name ({image.label}): give the name the policies should match, "
                    f"e.g. slimguard check --input {where} registry.example.com/team/app:1.0",
                    reason=InspectionReason.IMAGE_NOT_FOUND,
                )
            chosen.setdefault(image.names[0] if image.names else image.label, image)
        return chosen
    chosen = {}
    for name in requested:
        matches = [image for image in images if _answers_to(image, name)]
        if len(matches) > 1:
            raise InspectionError(
                f"{where} holds {len(matches)} images called {name} ({', '.join(m.label for m in matches[:5])})",
                reason=InspectionReason.IMAGE_NOT_FOUND,
            )
        if matches:
            chosen[name] = matches[0]
        elif len(images) == 1:
            chosen[name] = images[0]
        else:
            held = ", ".join(image.label for image in images[:10])
            raise InspectionError(
                f"{where} holds no image called {name} (it holds {len(images)}: {held})",
                reason=InspectionReason.IMAGE_NOT_FOUND,
            )
    return chosen


def _answers_to(image: ArchivedImage, name: str) -> bool:
    if name in image.names:
        return True
    try:
        wanted = ImageReference.parse(name)
    except InvalidReference:
        return False
    if wanted.tag is not None and wanted.tag in image.tags:
        return True
    return any(_parsed(own) == wanted for own in image.names)


def _parsed(name: str) -> ImageReference | None:
    try:
        return ImageReference.parse(name)
    except InvalidReference:
        return None


def _is_reference(text: str) -> bool:
    return _parsed(text) is not None


def _names(annotations: Any) -> tuple[list[str], list[str]]:
    """(full names, bare tags) from a descriptor's annotations."""
    if not isinstance(annotations, Mapping):
        return [], []
    names: list[str] = []
    tags: list[str] = []
    full = annotations.get(IMAGE_NAME)
    if isinstance(full, str) and _is_reference(full):
        names.append(full)
    ref = annotations.get(REF_NAME)
    if isinstance(ref, str) and ref:
        # A bare tag (``1.0``, ``latest``) has no slash or colon; some tools write a full name here instead.
        if any(mark in ref for mark in "/:@") and _is_reference(ref):
            if ref not in names:
                names.append(ref)
        else:
            tags.append(ref)
    return names, tags


def _descriptor(item: Any) -> Descriptor:
    if not isinstance(item, dict):
        raise GarbledDocument(LAYOUT_INDEX)
    digest, size, media_type = item.get("digest"), item.get("size"), item.get("mediaType")
    if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise GarbledDocument(LAYOUT_INDEX)
    platform = item.get("platform")
    parsed: Platform | None = None
    if isinstance(platform, dict):
        os, architecture, variant = platform.get("os"), platform.get("architecture"), platform.get("variant")
        if isinstance(os, str) and os and isinstance(architecture, str) and architecture:
            parsed = Platform(os, architecture, variant if isinstance(variant, str) and variant else None)
    return Descriptor(media_type if isinstance(media_type, str) else "", digest, size, parsed)
