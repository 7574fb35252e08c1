"""Whether the rules decide, or onUnknown does: the images slimguard could not read, and the registries where
nothing is enforced.

An error finding is a rule left undecided, and ``core.evaluation.outcome`` has the policy's ``onUnknown`` decide it
(Allow by default: admitted unchecked). Most errors leave the other rules to decide the image (a named base that cannot
be read, layers not read yet). One does not: an image whose facts could not be had at all (rule ``inspection``:
its registry unreachable, its certificate untrusted, access refused, its address refused by the guard, no answer
before the admission deadline) has every rule decided by ``onUnknown``. That image is *decided by default*; every
other image a policy needed facts of is decided by its facts.

A registry none of whose images could be read is one where **nothing is enforced**: what a missing CA bundle,
private registries refused, missing credentials or a registry down look like from inside. That is what the
ImagePolicy's ``Enforcing`` condition (False, ``FactsUnavailable``), its ``NothingEnforced`` Event, the webhook's
``/readyz``, the controller's health probe and the alert SlimguardNothingEnforced say loudly. An image missing
here and there among images read from the same registry (a mistyped tag: ``ImageNotFound``) is not; it is an
error verdict like any other, and ``Enforcing`` stays True, naming it.

Pure: the controller tallies its current verdicts, the webhook the reviews of the last minutes
(``RecentDecisions``, with the time passed in).
"""

from __future__ import annotations

import functools
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from slimguard.core.errors import InspectionReason, InvalidReference
from slimguard.core.evaluation.verdict import INSPECTION, Finding, FindingKind, Verdict
from slimguard.core.model.reference import ImageReference
from slimguard.core.text import shorten

FACTS_READ = "FactsRead"
"""Every image checked was read: the rules decide."""
SOME_FACTS_UNAVAILABLE = "SomeFactsUnavailable"
"""Some images could not be read, but every registry they are on answered for others: the rules decide the rest."""
FACTS_UNAVAILABLE = "FactsUnavailable"
"""Nothing could be read from at least one registry: onUnknown decides everything from there."""
NO_IMAGES_CHECKED = "NoImagesChecked"
"""No image has been checked yet: nothing to say either way."""

UNPARSABLE_REGISTRY = "-"
"""The registry of a reference that does not parse (its error says so)."""
MAX_REGISTRIES_SAID = 3
MAX_CAUSE_LENGTH = 300


@functools.lru_cache(maxsize=4096)
def registry_of(image: str) -> str:
    try:
        return ImageReference.parse(image).registry
    except InvalidReference:
        return UNPARSABLE_REGISTRY


def _unread(finding: Finding) -> bool:
    return finding.kind is FindingKind.ERROR and finding.rule == INSPECTION


@dataclass(frozen=True, slots=True)
class ImageDecision:
    """One image checked against rules that need its facts, and, when they could not be had, the finding saying
    why: every rule on it was then decided by onUnknown."""

    image: str
    unread: Finding | None = None

    @property
    def by_default(self) -> bool:
        return self.unread is not None

    @property
    def registry(self) -> str:
        return registry_of(self.image)


def decisions(verdict: Verdict, policy: str | None = None) -> list[ImageDecision]:
    """Each image ``policy`` (None: any policy) needed facts of in this verdict, and whether it had them."""
    unread: dict[str, Finding] = {}
    for finding in verdict.findings:
        if _unread(finding) and (policy is None or finding.policy == policy):
            unread.setdefault(finding.image, finding)
    images = dict.fromkeys(image for name, image in verdict.checked if policy is None or name == policy)
    return [ImageDecision(image, unread.get(image)) for image in images]


@dataclass(frozen=True, slots=True)
class RegistryTally:
    """The distinct images checked from one registry, and those of them decided by default."""

    registry: str
    images: int
    by_default: int
    reasons: tuple[tuple[str, int], ...] = ()
    """Why images were not read: (reason, images), most images first."""
    cause: str | None = None
    """What failed for one image of the commonest reason, in the registry client's words."""

    @property
    def nothing_enforced(self) -> bool:
        return self.images > 0 and self.by_default == self.images

    def describe(self) -> str:
        """``registry 10.0.0.5:5000, 12 of 12 (RegistryUntrusted: registry 10.0.0.5:5000 presents ...)``."""
        reasons = ", ".join(
            reason if count == self.by_default else f"{reason} {count}" for reason, count in self.reasons
        )
        cause = f": {shorten(self.cause, MAX_CAUSE_LENGTH)}" if self.cause else ""
        return f"registry {self.registry}, {self.by_default} of {self.images} ({reasons}{cause})"


@dataclass(frozen=True, slots=True)
class Enforcement:
    """How the decisions over a set of images came about: from their facts, or by default."""

    registries: tuple[RegistryTally, ...] = ()
    """Every registry with an image checked: those where nothing is enforced first, then by images decided by
    default, then by name."""

    @property
    def images(self) -> int:
        return sum(tally.images for tally in self.registries)

    @property
    def by_default(self) -> int:
        return sum(tally.by_default for tally in self.registries)

    @property
    def unenforced(self) -> tuple[RegistryTally, ...]:
        """The registries none of whose images could be read: nothing from there is enforced."""
        return tuple(tally for tally in self.registries if tally.nothing_enforced)

    @property
    def reason(self) -> str:
        """FACTS_READ, SOME_FACTS_UNAVAILABLE, FACTS_UNAVAILABLE or NO_IMAGES_CHECKED."""
        if not self.images:
            return NO_IMAGES_CHECKED
        if self.unenforced:
            return FACTS_UNAVAILABLE
        return SOME_FACTS_UNAVAILABLE if self.by_default else FACTS_READ

    @property
    def degraded(self) -> bool:
        """Nothing is enforced for some registry: what must never look healthy."""
        return self.reason == FACTS_UNAVAILABLE

    def describe(self, *, within: str = "") -> str:
        """``12 of 12 images <within> decided by onUnknown, not by their facts: registry ..., 12 of 12 (...)``;
        for images all read, ``all 12 images <within> decided by their facts``."""
        where = f" {within}" if within else ""
        if not self.images:
            return f"no images{where}"
        if not self.by_default:
            return f"all {self.images} images{where} decided by their facts"
        said = [tally for tally in self.registries if tally.by_default]
        registries = "; ".join(tally.describe() for tally in said[:MAX_REGISTRIES_SAID])
        more = f"; and {len(said) - MAX_REGISTRIES_SAID} more registries" if len(said) > MAX_REGISTRIES_SAID else ""
        said_by = f"{self.by_default} of {self.images} images{where} decided by onUnknown, not by their facts"
        return f"{said_by}: {registries}{more}"


def tally(decided: Iterable[ImageDecision]) -> Enforcement:
    """Distinct images by registry: an image decided by default once counts as decided by default."""
    latest: dict[str, ImageDecision] = {}
    for decision in decided:
        seen = latest.get(decision.image)
        if seen is None or (decision.by_default and not seen.by_default):
            latest[decision.image] = decision
    by_registry: dict[str, list[ImageDecision]] = {}
    for decision in latest.values():
        by_registry.setdefault(decision.registry, []).append(decision)
    tallies = []
    for registry, images in by_registry.items():
        unread = [decision.unread for decision in images if decision.unread is not None]
        reasons = Counter(finding.reason or InspectionReason.INSPECTION_FAILED for finding in unread)
        ranked = tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
        commonest = ranked[0][0] if ranked else None
        cause = next(
            (
                finding.detail
                for finding in unread
                if (finding.reason or InspectionReason.INSPECTION_FAILED) == commonest
            ),
            None,
        )
        tallies.append(RegistryTally(registry, len(images), len(unread), ranked, cause))
    tallies.sort(key=lambda item: (not item.nothing_enforced, -item.by_default, item.registry))
    return Enforcement(tuple(tallies))


class RecentDecisions:
    """The images decided in the last ``window`` seconds, each as it was last decided: what the webhook knows of
    its own enforcement (it keeps no verdicts). At most ``limit`` images, the least recently decided dropped first.

    ``now`` is a monotonic clock's reading, passed in by the caller.
    """

    def __init__(self, *, window: float = 300.0, limit: int = 4096) -> None:
        self.window = window
        self.limit = limit
        self._latest: OrderedDict[str, tuple[float, ImageDecision]] = OrderedDict()

    def record(self, decided: Iterable[ImageDecision], *, now: float) -> None:
        for decision in decided:
            self._latest.pop(decision.image, None)
            self._latest[decision.image] = (now, decision)
        while len(self._latest) > self.limit:
            self._latest.popitem(last=False)
        self._expire(now)

    def enforcement(self, *, now: float) -> Enforcement:
        self._expire(now)
        return tally(decision for _, decision in self._latest.values())

    def _expire(self, now: float) -> None:
        while self._latest:
            when, _ = next(iter(self._latest.values()))
            if now - when <= self.window:
                return
            self._latest.popitem(last=False)

    @property
    def window_text(self) -> str:
        """``in the last 5 min`` (whole minutes), or ``in the last 90 s``."""
        seconds = round(self.window)
        return f"in the last {seconds // 60} min" if seconds % 60 == 0 else f"in the last {seconds} s"
