"""Durations as people and Kubernetes write them (``90s``, ``5m``, ``1h30m``, ``500ms``; a bare number is
seconds): ``--timeout``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")
_PART = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)(ms|s|m|h)")
MAX_SECONDS = 7 * 24 * 3600.0
"""A week: longer is a typo (``--timeout 30h`` for ``30m``?), and no CI step runs that long."""


def parse_duration(text: str) -> float:
    """Seconds, above 0 and at most a week; ValueError saying what was expected."""
    stripped = text.strip()
    seconds: float | None = None
    if _NUMBER.fullmatch(stripped):
        seconds = float(stripped)
    elif stripped:
        parts = _PART.findall(stripped)
        if parts and "".join(number + unit for number, unit in parts) == stripped:
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds is None:
        raise ValueError(f"{text!r} is not a duration: e.g. 90s, 5m, 1h30m or 500ms (a bare number is seconds)")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"{text!r}: a duration above 0 and at most a week (168h)")
    return seconds


def format_duration(seconds: float) -> str:
    """``90s`` → ``1m30s``; under a second in ms: how a timeout is said back."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{rest:g}s" if rest or not text else "")
