"""What bloat costs in pull time: a verdict's size findings and slimmer-base hints joined to the kubelets' pulls
of the same digests (core.facts.pulls), for the violation message and ``slimguard_pull_seconds_saveable``.

A saving is measured, never guessed: the bytes a slim version drops (the excess over ``maxCompressedSize``, or
the slimmer base's saving, whichever is larger) at the throughput the image's own cold pulls reached on nodes
that report compressed sizes. No cold pull measured, no saving said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from slimguard.core.evaluation.rules.sizes import MAX_COMPRESSED_SIZE
from slimguard.core.evaluation.verdict import Finding, FindingKind, Verdict
from slimguard.core.facts.pulls import ImagePulls, pull_cost_note

BY_LIMIT = "an image within the limit"
BY_BASE = "the slimmer base"


@dataclass(frozen=True, slots=True)
class Saveable:
    """For one policy and image: the bytes a slim version drops, and what each cold pull would save."""

    policy: str
    image: str
    saved_bytes: int
    cure: str
    pulls: ImagePulls

    @property
    def seconds_per_pull(self) -> float | None:
        return self.pulls.seconds_saved_per_pull(self.saved_bytes)

    def seconds_in(self, namespace: str) -> float:
        """What the cold pulls counted in ``namespace`` would have saved (0 without a measured throughput)."""
        per_pull = self.seconds_per_pull
        tally = self.pulls.namespaces.get(namespace)
        return 0.0 if per_pull is None or tally is None else per_pull * tally.cold


def pulls_of(digests: tuple[str, ...], pulls: Mapping[str, ImagePulls]) -> ImagePulls | None:
    """The pulls of an image known by these digests (an index's and its platforms'): the most pulled one's."""
    found = [pulls[digest] for digest in digests if digest in pulls]
    return max(found, key=lambda record: (record.total.cold, record.digest)) if found else None


def saveables(verdict: Verdict, pulls: Mapping[str, ImagePulls]) -> list[Saveable]:
    """Each (policy, image) of the verdict with a size violation or a slimmer-base hint and pulls on record."""
    images = {size.image: pulls_of(size.digests, pulls) for size in verdict.image_sizes}
    saving: dict[tuple[str, str], tuple[int, str]] = {}
    for finding in verdict.findings:
        if finding.kind is FindingKind.VIOLATION and finding.rule == MAX_COMPRESSED_SIZE.name and finding.excess_bytes:
            key = (finding.policy, finding.image)
            if finding.excess_bytes > saving.get(key, (0, ""))[0]:
                saving[key] = (finding.excess_bytes, BY_LIMIT)
    for hint in verdict.hints:
        key = (hint.policy, hint.image)
        if hint.saving > saving.get(key, (0, ""))[0]:
            saving[key] = (hint.saving, BY_BASE)
    found: list[Saveable] = []
    for (policy, image), (saved_bytes, cure) in sorted(saving.items()):
        record = images.get(image)
        if record is not None:
            found.append(Saveable(policy, image, saved_bytes, cure, record))
    return found


def with_pull_costs(verdict: Verdict, pulls: Mapping[str, ImagePulls]) -> Verdict:
    """The verdict with each image's pull cost said in its first violation under each policy (the size one if
    any): how often it was pulled cold, how long a pull took, and what a slim version would save per cold pull."""
    notes: dict[tuple[str, str], str] = {}
    for saveable in saveables(verdict, pulls):
        note = pull_cost_note(saveable.pulls, saveable.saved_bytes, saveable.cure)
        if note is not None:
            notes[(saveable.policy, saveable.image)] = note
    if not notes:
        return verdict
    chosen: dict[tuple[str, str], int] = {}
    for index, finding in enumerate(verdict.findings):
        key = (finding.policy, finding.image)
        if key not in notes or finding.kind is not FindingKind.VIOLATION:
            continue
        if key not in chosen or finding.rule == MAX_COMPRESSED_SIZE.name:
            chosen.setdefault(key, index)
            if finding.rule == MAX_COMPRESSED_SIZE.name:
                chosen[key] = index
    if not chosen:
        return verdict
    findings = list(verdict.findings)
    for key, index in chosen.items():
        findings[index] = _noted(findings[index], notes[key])
    return replace(verdict, findings=tuple(findings))


def _noted(finding: Finding, note: str) -> Finding:
    return replace(finding, message=f"{finding.message}; {note}")
