"""What is inside an image's layers, as slimguard keeps it: per layer what its tar held, per image the summary.

The seam between reading and judging: the layer walker (an adapter) turns one layer blob into a
``LayerContent`` (cached by the blob's digest, so a base's layers are read once for every image built on it);
``core.facts.content_analysis`` folds an image's layers, in order, into its ``ContentFacts``; the content rules read
``ContentFacts`` only. ``ContentFacts`` is small and policy-independent, so it is what an ImageReport keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class EntryKind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"
    WHITEOUT = "whiteout"
    """``.wh.NAME``: NAME (and everything under it) is deleted by this layer."""
    OPAQUE = "opaque"
    """``.wh..wh..opq`` in a directory: everything the lower layers had in it is hidden."""


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """One tar entry, by its normalised path (no leading ``./`` or ``/``; for whiteouts, the path deleted)."""

    path: str
    size: int
    kind: EntryKind
    executable: bool = False
    link_target: str | None = None


@dataclass(frozen=True, slots=True)
class LayerContent:
    """What one layer blob holds: its entries in tar order, and the package-database files it carries."""

    digest: str
    """The compressed blob's digest (what the registry serves and what it is cached by)."""
    entries: tuple[LayerEntry, ...]
    uncompressed_bytes: int
    package_databases: Mapping[str, bytes] = field(default_factory=dict)
    """Path → content of the package-database files in this layer (dpkg status and status.d/*, apk installed,
    rpm's database files), read whole but capped by the walker."""
    oversized_databases: tuple[str, ...] = ()
    """Package-database files above the walker's cap: present, but their packages cannot be counted."""


class PackageManager(StrEnum):
    DPKG = "dpkg"
    APK = "apk"
    RPM = "rpm"


@dataclass(frozen=True, slots=True)
class PackageCount:
    """The OS packages installed in the final file system; ``count`` None means unknown, never zero."""

    count: int | None
    managers: tuple[PackageManager, ...] = ()
    names: tuple[str, ...] = ()
    unknown_reason: str | None = None


@dataclass(frozen=True, slots=True)
class FoundTool:
    """A build or admin tool present in the final file system (by path) or installed (by package name)."""

    category: str
    what: str
    """The path (``usr/bin/gcc-12``) or package (``build-essential``) found."""
    by_package: bool
    layer_index: int
    """0-based index among the image's layers of the layer that added it."""


@dataclass(frozen=True, slots=True)
class ContentFacts:
    """An image's (one platform's) content summary; what content rules read and what ImageReports keep."""

    packages: PackageCount
    tools: tuple[FoundTool, ...]
    """Every tool of every built-in category found (rules keep the categories they forbid)."""
    executables: tuple[tuple[str, int], ...]
    """(path, layer index) of every executable file or link in the final tree, for explicit path globs."""
    efficiency: float
    """dive's image efficiency: Σ smallest / Σ cumulative size over every path in every layer (1.0 if empty)."""
    wasted_bytes: int
    """dive's wasted bytes: cumulative size of every path seen in two or more layers."""
    file_count: int
    """Entries in the final file system."""
