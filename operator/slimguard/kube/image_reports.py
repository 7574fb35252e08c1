"""The ImageReports of the cluster, as the watch shows them, and the controller's writes of them.

Both components feed one of these from their watch (engine.report_feed.watch_image_reports: a LIST in pages,
then a WATCH, each body read into its facts and dropped; both wait for that LIST before they decide anything),
so a digest a report covers is answered from memory, with no request on the admission path: the webhook's
inspector asks it as its digest store (``registry.inspector.DigestStore``), the controller's through its
ReportKeeper. Only the controller writes:
one create per digest, an update only when the report would change (another platform, the layers' contents
read later, a new reference), and deletions of reports no workload uses any more (controller.image_reports
decides which).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.image_report import (
    GarbledReport,
    StoredReport,
    merged,
    read_report,
    report_body,
    report_fingerprint,
    report_name,
)
from slimguard.kube.gateway import KubeGateway

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One ImageReport object: its version, and what it holds (None when garbled: ignored, rewritten)."""

    name: str
    resource_version: str | None
    stored: StoredReport | None


class ImageReports:
    def __init__(self) -> None:
        self._entries: dict[str, ReportEntry] = {}

    # --- reading (both components) -------------------------------------------------------------------------

    def observe(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        metadata = body.get("metadata") or {}
        name = str(metadata.get("name") or "")
        if not name:
            return
        if deleted:
            self._entries.pop(name, None)
            return
        version = metadata.get("resourceVersion")
        before = self._entries.get(name)
        if before is not None and version is not None and before.resource_version == version:
            return  # our own write, already recorded
        try:
            stored: StoredReport | None = read_report(body)
        except GarbledReport as error:
            log.warning("%s; ignored, and written again once its image is read", error)
            stored = None
        self._entries[name] = ReportEntry(name, None if version is None else str(version), stored)

    def entry(self, digest: str) -> ReportEntry | None:
        return self._entries.get(report_name(digest))

    def stored(self, digest: str) -> StoredReport | None:
        entry = self._entries.get(report_name(digest))
        if entry is None or entry.stored is None or entry.stored.digest != digest:
            return None
        return entry.stored

    def facts(self, digest: str) -> ImageFacts | None:
        """What the report for ``digest`` says, if there is one a verdict may rely on."""
        stored = self.stored(digest)
        return None if stored is None else stored.facts

    def facts_for(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        """The report's facts for ``digest`` if they hold all ``needs`` asks (the inspector's DigestStore)."""
        facts = self.facts(digest)
        return facts if facts is not None and facts.holds(needs) else None

    def remember(self, image: str, facts: ImageFacts, *, learned: bool) -> None:
        """Nothing: the webhook, which asks these directly, writes no report (the controller's ReportKeeper does)."""

    def names(self) -> dict[str, str | None]:
        """Every report's name → the digest it is about (None for a garbled one, which has none to trust)."""
        return {name: entry.stored.digest if entry.stored else None for name, entry in self._entries.items()}

    def __len__(self) -> int:
        return len(self._entries)

    # --- writing (the controller) --------------------------------------------------------------------------

    async def write(
        self,
        kube: KubeGateway,
        facts: ImageFacts,
        references: Iterable[str],
        slimmer_bases: Iterable[SlimmerBase] | None = None,
    ) -> bool:
        """Create the report for ``facts``, or update it if that adds to it; True when something was written.

        ``slimmer_bases``: the hints the report should hold now; None keeps those it holds (not evaluated yet).
        """
        wanted_hints = None if slimmer_bases is None else tuple(slimmer_bases)
        for _ in range(3):  # a conflict means someone wrote in between: read it again and decide again
            entry = self.entry(facts.digest)
            known = entry.stored if entry is not None and entry.stored is not None else None
            if known is not None and known.digest != facts.digest:
                known = None  # two digests, one hashed name: not ours to merge with
            combined = merged(known.facts if known is not None else None, facts)
            seen = [*(known.references if known is not None else ()), *references]
            hints = wanted_hints if wanted_hints is not None else known.slimmer_bases if known is not None else ()
            body = report_body(combined, seen, hints)
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
                self._entries.pop(body["metadata"]["name"], None)
            else:
                self.observe(current)
        log.warning("ImageReport %s not written: it kept changing under us", report_name(facts.digest))
        return False

    async def delete(self, kube: KubeGateway, name: str) -> bool:
        """Delete a report, only at the version last seen (one rewritten meanwhile is kept); True if deleted."""
        entry = self._entries.get(name)
        if entry is None:
            return False
        deleted = await kube.delete_image_report(name, resource_version=entry.resource_version)
        if deleted:
            self._entries.pop(name, None)
        return deleted
