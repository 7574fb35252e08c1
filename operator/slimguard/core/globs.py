"""Glob matching for namespaces, names and image references (``*`` and ``?``, as in shell globs)."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from slimguard.core.reference import ImageReference


def matches_any(value: str, globs: Iterable[str]) -> bool:
    return any(fnmatchcase(value, glob) for glob in globs)


def image_matches_any(reference: ImageReference, globs: Iterable[str]) -> bool:
    """True when any glob matches any spelling of the reference (``*`` also spans ``/``)."""
    spellings = reference.spellings()
    return any(fnmatchcase(spelling, glob) for glob in globs for spelling in spellings)
