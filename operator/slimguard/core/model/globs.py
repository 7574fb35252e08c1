"""Glob matching for namespaces, names, image references and registry hosts.

Only ``*`` (any run of characters, ``/`` included) and ``?`` (one character) are wildcards, as the CRD
documents. Brackets are literal, unlike ``fnmatch``'s character classes, because they are part of how an
IPv6 registry is spelt (``[::1]:5000/team/app``): a glob is written the way the reference is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from slimguard.core.model.reference import ImageReference


@lru_cache(maxsize=4096)
def _compiled(glob: str) -> re.Pattern[str]:
    parts = (".*" if part == "*" else "." if part == "?" else re.escape(part) for part in re.split(r"([*?])", glob))
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(value: str, glob: str) -> bool:
    """True when ``glob`` matches the whole of ``value`` (case-sensitive)."""
    return _compiled(glob).fullmatch(value) is not None


def matches_any(value: str, globs: Iterable[str]) -> bool:
    return any(glob_matches(value, glob) for glob in globs)


def image_matches_any(reference: ImageReference, globs: Iterable[str]) -> bool:
    """True when any glob matches any spelling of the reference (``*`` also spans ``/``)."""
    spellings = reference.spellings()
    return any(glob_matches(spelling, glob) for glob in globs for spelling in spellings)
