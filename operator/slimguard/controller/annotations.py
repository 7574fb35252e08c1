"""What slimguard writes on a workload, and how a verdict becomes it: the status as a label, the findings as
annotations, only on workloads that have some.

A label, because the Deployment controller copies every annotation of a Deployment onto its current
ReplicaSet (``copyDeploymentAnnotationsToReplicaSet``) and not its labels: a verdict written as annotations
cost the cluster a ReplicaSet update (and a 409 retried) for each Deployment PATCH. A compliant workload
carries the label alone, so its verdict costs one small write and its ReplicaSet nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.model.workload import OWN_ANNOTATION_PREFIX, STATUS_LABEL, Workload
from slimguard.core.text import shorten

PREFIX = OWN_ANNOTATION_PREFIX
VIOLATIONS = f"{PREFIX}violations"
CHECKED_AT = f"{PREFIX}checked-at"
SLIMMER_BASE = f"{PREFIX}slimmer-base"
LEGACY_STATUS = f"{PREFIX}status"
"""The status as an annotation, as slimguard wrote it before the label: removed wherever it is found."""
OURS = (LEGACY_STATUS, VIOLATIONS, CHECKED_AT, SLIMMER_BASE)
MAX_VIOLATIONS_BYTES = 4096
MAX_HINTS = 8


@dataclass(frozen=True, slots=True)
class Marks:
    """What slimguard has said on one workload: its status label and its own annotations."""

    status: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, workload: Workload) -> Marks:
        return cls(workload.status_label, {k: v for k, v in workload.annotations.items() if k in OURS})

    @property
    def empty(self) -> bool:
        return self.status is None and not self.annotations


class MetadataPatch(TypedDict, total=False):
    """The ``metadata`` of a JSON merge patch: ``None`` removes a key."""

    labels: dict[str, str | None]
    annotations: dict[str, str | None]


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


def desired(verdict: Verdict | None, now: datetime) -> Marks | None:
    """What the workload should carry; None when no policy applies (then nothing of ours should remain).

    Annotations only where there is something to say: findings (with the time they were found) or a slimmer
    base. A compliant or pending verdict without hints is the label alone.
    """
    if verdict is None or not verdict.applies:
        return None
    said: dict[str, str] = {}
    if verdict.distinct_findings:
        said[VIOLATIONS] = violations_json(verdict)
    if (hints := hints_json(verdict)) is not None:
        said[SLIMMER_BASE] = hints
    if said:
        said[CHECKED_AT] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Marks(verdict.status.value, said)


def patch_for(current: Marks, wanted: Marks | None) -> MetadataPatch | None:
    """The one merge patch that brings ``current`` to ``wanted``, or None when nothing meaningful changed.

    Only what differs is sent. ``checked-at`` alone never causes a write (an unchanged re-audit costs the
    apiserver nothing); it is written with the findings or hints it dates. The legacy status annotation goes in
    the same patch as the label arrives: a workload never carries both.
    """
    target = wanted or Marks()
    labels: dict[str, str | None] = {}
    if current.status != target.status:
        labels[STATUS_LABEL] = target.status
    annotations: dict[str, str | None] = {
        key: value
        for key, value in target.annotations.items()
        if key != CHECKED_AT and current.annotations.get(key) != value
    }
    if annotations and CHECKED_AT in target.annotations:
        annotations[CHECKED_AT] = target.annotations[CHECKED_AT]
    annotations |= {key: None for key in OURS if key in current.annotations and key not in target.annotations}
    patch = MetadataPatch()
    if labels:
        patch["labels"] = labels
    if annotations:
        patch["annotations"] = annotations
    return patch or None


def applied(marks: Marks, patch: MetadataPatch) -> Marks:
    """``marks`` as they are once ``patch`` has landed."""
    status = patch.get("labels", {}).get(STATUS_LABEL, marks.status)
    annotations = dict(marks.annotations)
    for key, value in patch.get("annotations", {}).items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    return Marks(status, annotations)


def event_name(workload: str, uid: str | None, previous: str | None, said: str) -> str:
    """The same name for the same change of the same object: writing its Event twice keeps one."""
    change = hashlib.sha256("\0".join((uid or workload, previous or "", said)).encode()).hexdigest()[:16]
    suffix = f".slimguard-{change}"
    # Cut to fit 253 characters; a cut must not leave a label ending in "-" or "." (not a DNS subdomain).
    return workload[: 253 - len(suffix)].rstrip("-.") + suffix
