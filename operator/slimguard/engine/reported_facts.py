"""Facts from memory and the cluster's ImageReports, then from the registry: the one FactsSource in use.

A digest never changes, so what a report says about one is as good as reading the registry again: a digest
reference with a report costs no request at all. A tag moves: it is still resolved with its HEAD (unless the
inspector's short tag cache knows it), and only what it resolves to is looked up in the reports. Both are in
memory (the reports come from a watch); the report is asked before the inspector's own cache because it can
know more than this process read (a webhook reads no layer, the controller wrote their contents).

This is the registry inspector with a second cache behind its first; it subclasses it because the report must be
consulted between resolving a tag and fetching its manifest, inside the inspector's coalescing and failure
handling, so that a tag costs exactly the requests it cost before when no report exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from slimguard import metrics
from slimguard.core.errors import InspectionError, InvalidReference
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.model.reference import ImageReference
from slimguard.kube.image_reports import ImageReports
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential, credentials_for
from slimguard.registry.inspector import ImageInspector
from slimguard.tasks import BackgroundTasks

Learned = Callable[[str, ImageFacts], None]
"""Told every image reference and the facts it was answered with, from the registry or memory (not reports)."""


class ReportedInspector(ImageInspector):
    def __init__(
        self,
        client: RegistryClient,
        *,
        reports: ImageReports,
        learned: Learned | None = None,
        read_layers: bool = True,
        clock: Callable[[], float] = time.monotonic,
        tasks: BackgroundTasks | None = None,
    ) -> None:
        super().__init__(client, read_layers=read_layers, clock=clock, tasks=tasks)
        self.reports = reports
        self.learned = learned
        self.resolved: dict[str, str] = {}
        """Each image reference → the digest it was last answered for (what the controller's GC counts as used)."""

    # --- FactsSource -------------------------------------------------------------------------------------------

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential] = ()
    ) -> ImageFacts | InspectionError | None:
        reference = _parsed(image)
        if reference is not None:
            digest = reference.digest or self._known_tag(reference, credentials)
            if digest is not None:
                reported = self._reported(digest, self._reads(needs), count_miss=False)
                if reported is not None:
                    self.resolved[image] = digest
                    return reported
        found = super().cached(image, needs, credentials=credentials)
        if isinstance(found, ImageFacts):
            self._answered(image, found)
        return found

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential] = ()) -> ImageFacts:
        reference = _parsed(image)
        if reference is not None and reference.digest is not None:
            # Before the failure cache and any request: a report answers even while the registry is down.
            reported = self._reported(reference.digest, self._reads(needs))
            if reported is not None:
                self.resolved[image] = reference.digest
                return reported
        found = await super().inspect(image, needs, credentials=credentials)
        if self.reports.facts(found.digest) is found:  # answered by a report after the tag's HEAD: no news
            self.resolved[image] = found.digest
        else:
            self._answered(image, found)
        return found

    # --- between resolving and fetching ------------------------------------------------------------------------

    async def _inspect(self, reference: ImageReference, credential: Credential | None, needs: FactsNeeds) -> ImageFacts:
        """``needs`` is what this inspector will read (never contents for the webhook): a report without the
        layers' contents then still answers, and content rules say ContentPending until the controller's arrives."""
        digest = await self._resolve(reference, credential)
        reported = self._reported(digest, needs)
        if reported is not None:
            return reported
        return await self._facts_of(reference, digest, credential, needs)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _known_tag(self, reference: ImageReference, credentials: Sequence[Credential]) -> str | None:
        credential = next(iter(credentials_for(reference, credentials)), None)
        return self._tags.get((reference.name, reference.identifier, credential.username if credential else ""))

    def _reported(self, digest: str, needs: FactsNeeds, *, count_miss: bool = True) -> ImageFacts | None:
        """The report's facts for ``digest`` if they hold all that is needed (`cached` probes, `inspect` counts)."""
        facts = self.reports.facts(digest)
        hit = facts is not None and self._complete(facts, needs)
        if hit or count_miss:
            metrics.cache_lookup("reports", hit=hit)
        return facts if hit else None

    def _answered(self, image: str, facts: ImageFacts) -> None:
        self.resolved[image] = facts.digest
        if self.learned is not None:
            self.learned(image, facts)


def _parsed(image: str) -> ImageReference | None:
    try:
        return ImageReference.parse(image)
    except InvalidReference:
        return None  # the inspector says so, in its words
