"""Cutting user-facing text to a size without losing what it says."""

from __future__ import annotations

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut in the middle.

    Our messages start with what they are about (the container, the image) and end with why (the limit, the
    registry's answer, the fix), and image references start with the registry and end with the tag: a cut in
    the middle keeps both ends, where a cut at the end would lose the reason.
    """
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return text[:limit]
    kept = limit - len(ELLIPSIS)
    head = kept // 2
    return text[:head] + ELLIPSIS + text[len(text) - (kept - head) :]
