"""Two images compared, platform by platform: sizes, layers matched old ↔ new, bases, and (when read) contents.

Facts derived from facts, as ``bases.py``'s are: ``slimguard diff`` reports it (``core.reports.image_diff``) and the
growth rules (``core.evaluation.rules.growth``) name the layers responsible from it, so the two never disagree on
which layer grew. Layers are matched first by digest (the same blob: unchanged), then, among those left, by the
instruction that made them (the config history's ``created_by``: the same step rebuilt, so changed), in order;
what is left of the old image was removed, of the new one added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from slimguard.core.facts.bases import detect_bases
from slimguard.core.facts.image_facts import BaseImage, FactsOrError, ImageFacts, Layer, PlatformImage
from slimguard.core.model.platform import Platform


class LayerStatus(StrEnum):
    SAME = "same"
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class LayerChange:
    """One layer of either image, matched with its counterpart when it has one."""

    status: LayerStatus
    old: Layer | None
    new: Layer | None
    old_index: int | None
    """0-based position among the old image's layers (None: added)."""
    new_index: int | None
    """0-based position among the new image's layers (None: removed)."""

    @property
    def created_by(self) -> str | None:
        layer = self.new or self.old
        return None if layer is None else layer.created_by

    @property
    def size_delta(self) -> int:
        """Compressed bytes this layer adds to what a node pulls (negative: saves)."""
        return (self.new.size if self.new else 0) - (self.old.size if self.old else 0)

    @property
    def uncompressed_delta(self) -> int | None:
        old = 0 if self.old is None else self.old.uncompressed_size
        new = 0 if self.new is None else self.new.uncompressed_size
        return None if old is None or new is None else new - old


@dataclass(frozen=True, slots=True)
class ContentChange:
    """What the layers hold, compared (both platforms' contents read: ``--content``)."""

    packages_added: tuple[str, ...]
    packages_removed: tuple[str, ...]
    tools_appeared: tuple[str, ...]
    """``category: what`` of each tool the new image has and the old one had not."""
    tools_gone: tuple[str, ...]
    wasted_bytes_old: int
    wasted_bytes_new: int

    @property
    def wasted_bytes_delta(self) -> int:
        return self.wasted_bytes_new - self.wasted_bytes_old


@dataclass(frozen=True, slots=True)
class PlatformDiff:
    """One platform of the two images; ``old`` or ``new`` None when only one image has it."""

    platform: Platform
    old: PlatformImage | None
    new: PlatformImage | None
    layers: tuple[LayerChange, ...]
    old_bases: tuple[BaseImage, ...] = ()
    new_bases: tuple[BaseImage, ...] = ()
    content: ContentChange | None = None

    @property
    def compressed_delta(self) -> int:
        return (self.new.compressed_size if self.new else 0) - (self.old.compressed_size if self.old else 0)

    @property
    def uncompressed_delta(self) -> int | None:
        old = 0 if self.old is None else self.old.uncompressed_size
        new = 0 if self.new is None else self.new.uncompressed_size
        return None if old is None or new is None else new - old

    @property
    def base_changed(self) -> bool:
        return {base.reference for base in self.old_bases} != {base.reference for base in self.new_bases} or {
            base.digest for base in self.old_bases
        } != {base.digest for base in self.new_bases}

    @property
    def compressed_measured(self) -> bool:
        """Whether both sides' sizes are compressed sizes (not layers read uncompressed, e.g. from ``--docker``)."""
        return all(image.compressed_measured for image in (self.old, self.new) if image is not None)

    def changed_layers(self) -> tuple[LayerChange, ...]:
        return tuple(change for change in self.layers if change.status is not LayerStatus.SAME)

    def growing_layers(self) -> tuple[LayerChange, ...]:
        """The layers that made the image larger, largest growth first: those a growth finding names."""
        grown = [change for change in self.layers if change.status is not LayerStatus.SAME and change.size_delta > 0]
        return tuple(sorted(grown, key=lambda change: (-change.size_delta, change.new_index or 0)))


@dataclass(frozen=True, slots=True)
class ImageDiff:
    old: ImageFacts
    new: ImageFacts
    platforms: tuple[PlatformDiff, ...]


def match_layers(old: tuple[Layer, ...], new: tuple[Layer, ...]) -> tuple[LayerChange, ...]:
    """Old and new layers paired: by digest first, then by instruction; in the new image's order, each removed
    layer after the new layer that follows its old position's predecessor (so a listing reads like a build)."""
    old_left = list(range(len(old)))
    pairs: dict[int, int] = {}  # new index → old index
    for new_index, layer in enumerate(new):
        for old_index in old_left:
            if old[old_index].digest == layer.digest:
                pairs[new_index] = old_index
                old_left.remove(old_index)
                break
    same = set(pairs)
    for new_index, layer in enumerate(new):
        if new_index in pairs or not layer.created_by:
            continue
        for old_index in old_left:
            if old[old_index].created_by == layer.created_by:
                pairs[new_index] = old_index
                old_left.remove(old_index)
                break
    changes: list[LayerChange] = []
    removed = sorted(old_left)
    for new_index, layer in enumerate(new):
        counterpart = pairs.get(new_index)
        # Removed layers that sat before this one's counterpart in the old image are listed before it.
        while removed and counterpart is not None and removed[0] < counterpart:
            gone = removed.pop(0)
            changes.append(LayerChange(LayerStatus.REMOVED, old[gone], None, gone, None))
        if counterpart is None:
            changes.append(LayerChange(LayerStatus.ADDED, None, layer, None, new_index))
        else:
            status = LayerStatus.SAME if new_index in same else LayerStatus.CHANGED
            changes.append(LayerChange(status, old[counterpart], layer, counterpart, new_index))
    changes.extend(LayerChange(LayerStatus.REMOVED, old[gone], None, gone, None) for gone in removed)
    return tuple(changes)


def _content_change(old: PlatformImage | None, new: PlatformImage | None) -> ContentChange | None:
    if old is None or new is None or old.content is None or new.content is None:
        return None
    old_packages, new_packages = set(old.content.packages.names), set(new.content.packages.names)
    old_tools = {f"{tool.category}: {tool.what}" for tool in old.content.tools}
    new_tools = {f"{tool.category}: {tool.what}" for tool in new.content.tools}
    return ContentChange(
        packages_added=tuple(sorted(new_packages - old_packages)),
        packages_removed=tuple(sorted(old_packages - new_packages)),
        tools_appeared=tuple(sorted(new_tools - old_tools)),
        tools_gone=tuple(sorted(old_tools - new_tools)),
        wasted_bytes_old=old.content.wasted_bytes,
        wasted_bytes_new=new.content.wasted_bytes,
    )


def diff_platform(
    platform: Platform,
    old: PlatformImage | None,
    new: PlatformImage | None,
    *,
    old_facts: ImageFacts | None = None,
    new_facts: ImageFacts | None = None,
    base_candidates: Mapping[str, FactsOrError] | None = None,
) -> PlatformDiff:
    candidates = base_candidates or {}
    return PlatformDiff(
        platform=platform,
        old=old,
        new=new,
        layers=match_layers(old.layers if old else (), new.layers if new else ()),
        old_bases=detect_bases(old_facts, old, candidates) if old is not None and old_facts is not None else (),
        new_bases=detect_bases(new_facts, new, candidates) if new is not None and new_facts is not None else (),
        content=_content_change(old, new),
    )


def diff_images(
    old: ImageFacts, new: ImageFacts, *, base_candidates: Mapping[str, FactsOrError] | None = None
) -> ImageDiff:
    """Every platform either image has (as read), the old image's order first, then those only the new one has."""
    platforms: list[PlatformDiff] = []
    seen: list[PlatformImage] = []
    for old_image in old.platforms:
        new_image = new.for_platform(old_image.platform)
        if new_image is not None:
            seen.append(new_image)
        platforms.append(
            diff_platform(
                old_image.platform, old_image, new_image, old_facts=old, new_facts=new, base_candidates=base_candidates
            )
        )
    for new_image in new.platforms:
        if any(new_image is image for image in seen):
            continue
        platforms.append(
            diff_platform(
                new_image.platform, None, new_image, old_facts=old, new_facts=new, base_candidates=base_candidates
            )
        )
    return ImageDiff(old, new, tuple(platforms))
