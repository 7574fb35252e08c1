"""The ImageReports of the cluster, as the watch shows them and as read when asked, and the controller's writes.

Both components watch them as metadata only (engine.report_feed.watch_image_reports: a LIST in pages, then a
WATCH; both wait for that LIST before they decide anything), which tells which reports exist and at which
version. A report's facts are read by name (``report_name(digest)``) when its digest is first asked for, and held
in memory, a bounded amount of them (``HELD_WEIGHT``): a report with its layers' contents is ~150 KB once read
into facts, so thousands of them held whole would cost each component most of a gigabyte. The webhook's
inspector asks it as its digest store (``registry.inspector.DigestStore``): what is held answers at once
(``facts_for``, the admission's warm path), what exists and is not held costs one GET (``read``); the
controller's through its ReportKeeper. A report changed since it was read (its version moved) is read again.

Only the controller writes: one create per digest, an update only when the report would change (another
platform, the layers' contents read later, a new reference), and deletions of reports no workload uses any more
(controller.image_reports decides which).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.image_report import (
    GarbledReport,
    StoredReport,
    digest_of_name,
    merged,
    read_report,
    report_body,
    report_fingerprint,
    report_name,
)
from slimguard.core.facts.pulls import ImagePulls
from slimguard.kube.errors import KubeError
from slimguard.kube.gateway import KubeGateway

log = logging.getLogger(__name__)

HELD_WEIGHT = 400_000
"""How much of the reports read is held, counted in their facts' long lists (executables, package names, tools,
layers: ~125 bytes an item once read): about 50 MB. ~330 reports with the layers' contents of a Debian image
(~1,200 items each), or tens of thousands without; the least recently asked for goes first."""

ReadReport = Callable[[str], Awaitable[Mapping[str, Any] | None]]
"""A report by name, from the apiserver (None: there is none)."""


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One ImageReport object as read: its version, and what it holds (None when garbled: ignored, rewritten)."""

    name: str
    resource_version: str | None
    stored: StoredReport | None


def weight(stored: StoredReport | None) -> int:
    """What holding a report costs, in the items of its facts' long lists (and 1 for the rest)."""
    if stored is None or stored.facts is None:
        return 1
    total = 1
    for image in stored.facts.platforms:
        total += len(image.layers)
        if image.content is not None:
            total += len(image.content.executables) + len(image.content.packages.names) + len(image.content.tools)
    return total


class ImageReports:
    def __init__(self, *, held_weight: int = HELD_WEIGHT) -> None:
        self._versions: dict[str, str | None] = {}
        """Every report the watch shows (or this process wrote): name → resourceVersion."""
        self._held: OrderedDict[str, tuple[ReportEntry, int]] = OrderedDict()
        """The reports read, least recently asked for first, each with its weight."""
        self._held_total = 0
        self.held_weight = held_weight
        self._read: ReadReport | None = None
        self.reads = 0
        """Reports read by name because they were asked for and not held."""

    def read_from(self, read: ReadReport) -> None:
        """Where a report the watch shows but that is not held is read when asked for (the gateway's GET)."""
        self._read = read

    # --- reading (both components) -------------------------------------------------------------------------

    def observe(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A report as the watch shows it (metadata only: which exists, at which version) or as read or written
        (the whole object: its facts, held)."""
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name") or "")
        if not name:
            return
        if deleted:
            self._versions.pop(name, None)
            self._drop(name)
            return
        version = None if metadata.get("resourceVersion") is None else str(metadata["resourceVersion"])
        self._versions[name] = version
        held = self._held.get(name)
        if "report" not in body:  # metadata: a report changed since it was read is read again when next asked for
            if held is not None and held[0].resource_version != version:
                self._drop(name)
            return
        if held is not None and version is not None and held[0].resource_version == version:
            return  # our own write, already recorded
        try:
            stored: StoredReport | None = read_report(body)
        except GarbledReport as error:
            log.warning("%s; ignored, and written again once its image is read", error)
            stored = None
        self._hold(ReportEntry(name, version, stored))

    def _hold(self, entry: ReportEntry) -> None:
        self._drop(entry.name)
        cost = weight(entry.stored)
        self._held[entry.name] = (entry, cost)
        self._held_total += cost
        while self._held_total > self.held_weight and len(self._held) > 1:
            _, (_, gone) = self._held.popitem(last=False)
            self._held_total -= gone

    def _drop(self, name: str) -> None:
        held = self._held.pop(name, None)
        if held is not None:
            self._held_total -= held[1]

    def _held_entry(self, name: str) -> ReportEntry | None:
        held = self._held.get(name)
        if held is None:
            return None
        self._held.move_to_end(name)
        return held[0]

    def entry(self, digest: str) -> ReportEntry | None:
        """The report of ``digest`` if it is held (no request)."""
        return self._held_entry(report_name(digest))

    async def load(self, digest: str) -> ReportEntry | None:
        """The report of ``digest``: held, or read by name if the watch shows one (and then held)."""
        name = report_name(digest)
        if (held := self._held_entry(name)) is not None:
            return held
        if name not in self._versions or self._read is None:
            return None
        try:
            body = await self._read(name)
        except KubeError as error:  # a report is a cache: without it, the registry answers
            log.warning("ImageReport %s not read: %s %s", name, error.status, error.reason)
            return None
        self.reads += 1
        if body is None:  # deleted since: its DELETED event follows
            return None
        self.observe(body)
        return self._held_entry(name)

    @staticmethod
    def _usable(entry: ReportEntry | None, digest: str) -> StoredReport | None:
        if entry is None or entry.stored is None or entry.stored.digest != digest:
            return None
        return entry.stored

    def stored(self, digest: str) -> StoredReport | None:
        """The report of ``digest``, if it is held and a verdict may rely on it."""
        return self._usable(self.entry(digest), digest)

    def facts(self, digest: str) -> ImageFacts | None:
        """What the held report for ``digest`` says, if there is one a verdict may rely on."""
        stored = self.stored(digest)
        return None if stored is None else stored.facts

    def facts_for(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        """The held report's facts for ``digest`` if they hold all ``needs`` asks, with no request (the inspector's
        DigestStore, on the admission's warm path)."""
        facts = self.facts(digest)
        return facts if facts is not None and facts.holds(needs) else None

    async def read(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        """As ``facts_for``, reading the report by name if the watch shows one that is not held."""
        stored = self._usable(await self.load(digest), digest)
        facts = None if stored is None else stored.facts
        return facts if facts is not None and facts.holds(needs) else None

    def would_read(self, digest: str) -> bool:
        """The watch shows a report for ``digest`` that is not held: ``read`` would GET it."""
        name = report_name(digest)
        return name in self._versions and name not in self._held and self._read is not None

    def remember(self, image: str, facts: ImageFacts, *, learned: bool) -> None:
        """Nothing: the webhook, which asks these directly, writes no report (the controller's ReportKeeper does)."""

    def names(self) -> dict[str, str | None]:
        """Every report's name → the digest it is about: as read, or as its name says (``report_name`` can be
        turned back for every digest but an odd one given a hashed name); None for a garbled one, or such a name."""
        found: dict[str, str | None] = {}
        for name in self._versions:
            held = self._held.get(name)
            if held is not None:
                found[name] = held[0].stored.digest if held[0].stored is not None else None
            else:
                found[name] = digest_of_name(name)
        return found

    @property
    def held(self) -> int:
        """Reports held in memory now."""
        return len(self._held)

    def __len__(self) -> int:
        return len(self._versions)

    # --- writing (the controller) --------------------------------------------------------------------------

    async def write(
        self,
        kube: KubeGateway,
        facts: ImageFacts,
        references: Iterable[str],
        slimmer_bases: Iterable[SlimmerBase] | None = None,
        pulls: ImagePulls | None = None,
    ) -> bool:
        """Create the report for ``facts``, or update it if that adds to it; True when something was written.

        ``slimmer_bases``: the hints the report should hold now; None keeps those it holds (not evaluated yet).
        ``pulls``: the kubelets' pulls folded so far (they include what the report held); None keeps its own.
        """
        wanted_hints = None if slimmer_bases is None else tuple(slimmer_bases)
        for _ in range(3):  # a conflict means someone wrote in between: read it again and decide again
            entry = await self.load(facts.digest)
            known = entry.stored if entry is not None and entry.stored is not None else None
            if known is not None and known.digest != facts.digest:
                known = None  # two digests, one hashed name: not ours to merge with
            combined = merged(known.facts if known is not None else None, facts)
            seen = [*(known.references if known is not None else ()), *references]
            hints = wanted_hints if wanted_hints is not None else known.slimmer_bases if known is not None else ()
            kept_pulls = pulls if pulls is not None else known.pulls if known is not None else None
            body = report_body(combined, seen, hints, kept_pulls)
            if known is not None and known.fingerprint == report_fingerprint(body["report"]):
                return False
            if entry is None:
                written = await kube.create_image_report(body)
            else:
                body["metadata"]["resourceVersion"] = entry.resource_version
                written = await kube.replace_image_report(body)
            if written is not None:
                self.observe(written)
                return True
            current = await kube.get_image_report(body["metadata"]["name"])
            if current is None:
                self.observe(body, deleted=True)
            else:
                self.observe(current)
        log.warning("ImageReport %s not written: it kept changing under us", report_name(facts.digest))
        return False

    async def delete(self, kube: KubeGateway, name: str) -> bool:
        """Delete a report, only at the version last seen (one rewritten meanwhile is kept); True if deleted."""
        if name not in self._versions:
            return False
        deleted = await kube.delete_image_report(name, resource_version=self._versions[name])
        if deleted:
            self.observe({"metadata": {"name": name}}, deleted=True)
        return deleted
