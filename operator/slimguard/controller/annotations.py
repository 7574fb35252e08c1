"""The annotations slimguard writes on workloads, and how a verdict becomes them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from slimguard.core.verdict import Verdict

PREFIX = "slimguard.dev/"
STATUS = f"{PREFIX}status"
VIOLATIONS = f"{PREFIX}violations"
CHECKED_AT = f"{PREFIX}checked-at"
OURS = (STATUS, VIOLATIONS, CHECKED_AT)
MAX_VIOLATIONS_BYTES = 4096


def violations_json(verdict: Verdict) -> str:
    """The findings as compact JSON, cut to fit (annotations share a 256 KiB budget with everyone else)."""
    items = [finding.as_dict() for finding in verdict.findings]
    for count in range(len(items), -1, -1):
        shown = items[:count]
        if count < len(items):
            shown = [*shown, {"truncated": f"{len(items) - count} more findings"}]
        text = json.dumps(shown, separators=(",", ":"), sort_keys=True)
        if len(text.encode()) <= MAX_VIOLATIONS_BYTES:
            return text
    return "[]"


def desired(verdict: Verdict | None, now: datetime) -> dict[str, str] | None:
    """What the annotations should say; None when no policy applies (then none of ours should remain)."""
    if verdict is None or not verdict.applies:
        return None
    return {
        STATUS: verdict.status.value,
        VIOLATIONS: violations_json(verdict),
        CHECKED_AT: now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def patch_for(current: Mapping[str, str], wanted: dict[str, str] | None) -> dict[str, str | None] | None:
    """The merge patch that brings ``current`` to ``wanted``, or None when nothing meaningful changed.

    ``checked-at`` alone never causes a write: an unchanged re-audit costs the apiserver nothing.
    """
    if wanted is None:
        present = [key for key in OURS if key in current]
        return {key: None for key in present} if present else None
    if all(current.get(key) == wanted[key] for key in (STATUS, VIOLATIONS)):
        return None
    return dict(wanted)
