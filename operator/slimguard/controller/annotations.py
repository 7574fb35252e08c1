"""The annotations slimguard writes on workloads, and how a verdict becomes them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

from slimguard.core.text import shorten
from slimguard.core.verdict import Verdict
from slimguard.core.workload import OWN_ANNOTATION_PREFIX

PREFIX = OWN_ANNOTATION_PREFIX
STATUS = f"{PREFIX}status"
VIOLATIONS = f"{PREFIX}violations"
CHECKED_AT = f"{PREFIX}checked-at"
SLIMMER_BASE = f"{PREFIX}slimmer-base"
OURS = (STATUS, VIOLATIONS, CHECKED_AT, SLIMMER_BASE)
MAX_VIOLATIONS_BYTES = 4096
MAX_HINTS = 8


# Caps on each field of a finding, loosest first: text is cut only as far as it must be to fit.
_FIELD_LIMITS: tuple[int | None, ...] = (None, 1024, 512, 256, 128, 64)
Item = dict[str, str | list[str]]


def violations_json(verdict: Verdict) -> str:
    """The findings as compact JSON, cut to fit (annotations share a 256 KiB budget with everyone else).

    The first findings are kept: when even the first does not fit whole, long fields (a 10 KB image
    reference, a long message) are cut in the middle, so every kept finding still says what is wrong and why;
    only then are later findings left out, and the annotation says how many.
    """
    items = [finding.as_dict() for finding in verdict.distinct_findings]
    if not items:
        return "[]"
    for limit in _FIELD_LIMITS:
        cut = [_cut(item, limit) for item in items]
        count = _how_many_fit([len(_dump(item).encode()) for item in cut])
        if count == len(cut):
            return _dump(cut)
        if count:
            return _dump([*cut[:count], _left_out(len(cut) - count)])
    return _dump([_left_out(len(items))])  # not reached: one finding cut to 64 characters a field fits


def _how_many_fit(sizes: list[int]) -> int:
    """How many of the first items fit, with the note of how many were left out when any are.

    From each item's size alone (a list's is theirs, the commas and the brackets), so the JSON is made once.
    """
    fit, used = 0, 1
    for count, size in enumerate(sizes, start=1):
        used += size + 1  # the item and the comma or closing bracket after it
        if used > MAX_VIOLATIONS_BYTES:
            break
        rest = len(sizes) - count
        if not rest or used + len(_dump(_left_out(rest)).encode()) + 1 <= MAX_VIOLATIONS_BYTES:
            fit = count
    return fit


def _left_out(count: int) -> Item:
    return {"truncated": f"{count} more findings"}


def _dump(items: list[Item] | Item) -> str:
    return json.dumps(items, separators=(",", ":"), sort_keys=True)


def _cut(item: Item, limit: int | None) -> Item:
    if limit is None:
        return item
    cut: Item = {}
    for name, value in item.items():
        cut[name] = shorten(value, limit) if isinstance(value, str) else _cut_names(value, limit)
    image, message = item.get("image"), item.get("message")
    if isinstance(image, str) and isinstance(message, str) and image and len(image) > limit // 2:
        # The message repeats the image; there it gives way to the reason that follows it.
        cut["message"] = shorten(message.replace(image, shorten(image, limit // 2)), limit)
    return cut


def _cut_names(names: list[str], limit: int) -> list[str]:
    """The first policy names that fit in ``limit`` characters, and how many more there are."""
    kept: list[str] = []
    for name in names:
        if kept and sum(map(len, kept)) + len(name) > limit:
            return [*kept, f"+{len(names) - len(kept)} more"]
        kept.append(shorten(name, limit))
    return kept


def hints_json(verdict: Verdict) -> str | None:
    """The slimmer-base hints, one per image and alternative (several policies asking: said once), or None."""
    said: dict[tuple[str, str], dict[str, str | int]] = {}
    for hint in verdict.hints:
        said.setdefault((hint.image, hint.alternative), hint.as_dict())
    if not said:
        return None
    items = list(said.values())[:MAX_HINTS]
    return json.dumps(items, separators=(",", ":"), sort_keys=True)


def desired(verdict: Verdict | None, now: datetime) -> dict[str, str] | None:
    """What the annotations should say; None when no policy applies (then none of ours should remain)."""
    if verdict is None or not verdict.applies:
        return None
    wanted = {
        STATUS: verdict.status.value,
        VIOLATIONS: violations_json(verdict),
        CHECKED_AT: now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if (hints := hints_json(verdict)) is not None:
        wanted[SLIMMER_BASE] = hints
    return wanted


def patch_for(current: Mapping[str, str], wanted: dict[str, str] | None) -> dict[str, str | None] | None:
    """The merge patch that brings ``current`` to ``wanted``, or None when nothing meaningful changed.

    ``checked-at`` alone never causes a write: an unchanged re-audit costs the apiserver nothing.
    """
    if wanted is None:
        present = [key for key in OURS if key in current]
        return {key: None for key in present} if present else None
    if all(current.get(key) == wanted.get(key) for key in (STATUS, VIOLATIONS, SLIMMER_BASE)):
        return None
    patch: dict[str, str | None] = dict(wanted)
    if SLIMMER_BASE not in wanted and SLIMMER_BASE in current:
        patch[SLIMMER_BASE] = None  # no hint any more (a rebuild on the slimmer base, a policy changed)
    return patch


def event_name(workload: str, uid: str | None, previous: str | None, said: str) -> str:
    """The same name for the same change of the same object: writing its Event twice keeps one."""
    change = hashlib.sha256("\0".join((uid or workload, previous or "", said)).encode()).hexdigest()[:16]
    suffix = f".slimguard-{change}"
    # Cut to fit 253 characters; a cut must not leave a label ending in "-" or "." (not a DNS subdomain).
    return workload[: 253 - len(suffix)].rstrip("-.") + suffix
