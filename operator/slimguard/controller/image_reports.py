"""The controller's side of ImageReports: write what it learned about each digest, remove what nobody runs.

The keeper is the controller's inspector's digest store (``registry.inspector.DigestStore``): it answers
from the ImageReports, and is told every image the inspector answered and the digest it answered it for
(``resolved``); what came from the registry or the inspector's memory goes to ``learned``. A background task
writes each digest's report once, and again only when it would change (kube.image_reports decides). Another
task removes the reports of digests no workload has used for the grace period: a digest in use is one a
workload's container (or a policy's named base) last resolved to.

The audit tells ``ReportKeeper.evaluated`` each verdict with its plan: ``hinted`` gets which slimmer base each
policy asking for hints (``slimmerBases``) found for each digest it evaluated (``slimmer_bases_by_digest``);
the report holds them in ``slimmerBases``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slimguard.core.errors import InvalidReference
from slimguard.core.evaluation.plan import Plan
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.pulls import ImagePulls
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.reference import ImageReference
from slimguard.core.model.workload import Workload
from slimguard.kube.errors import KubeError
from slimguard.kube.gateway import KubeGateway, NotLeader
from slimguard.kube.image_reports import ImageReports

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 24 * 3600.0


def digests_in_use(
    workloads: Iterable[Workload], policies: Iterable[ImagePolicy], resolved: Mapping[str, str]
) -> set[str]:
    """The digests the workloads' containers run and the policies' named bases are, as last resolved."""
    images = {container.image for workload in workloads for container in workload.containers}
    images.update(reference for policy in policies for reference in policy.base_image_candidates)
    used: set[str] = set()
    for image in images:
        if (digest := resolved.get(image)) is not None:
            used.add(digest)
        with contextlib.suppress(InvalidReference):
            if (pinned := ImageReference.parse(image).digest) is not None:
                used.add(pinned)
    return used


def _digest_of(image: str, resolved: Mapping[str, str]) -> str | None:
    if (digest := resolved.get(image)) is not None:
        return digest
    try:
        return ImageReference.parse(image).digest
    except InvalidReference:
        return None


def slimmer_bases_by_digest(
    plan: Plan, verdict: Verdict, resolved: Mapping[str, str]
) -> dict[str, dict[str, SlimmerBase | None]]:
    """Digest → policy → the hint it gave (None: it looked and found none), for each image of the plan's
    workload whose facts the verdict read under a policy with ``slimmerBases``. An image not read (pending, an
    error) says nothing: a registry hiccup must not take a hint out of its report and put it back a minute later."""
    read = {size.image for size in verdict.image_sizes}
    given = {(hint.policy, hint.image): hint for hint in verdict.hints}
    found: dict[str, dict[str, SlimmerBase | None]] = {}
    for selected in plan.selection:
        policy = selected.policy
        if policy.spec.slimmer_bases is None or policy.name not in verdict.policies:
            continue
        for container in selected.containers:
            if container.image not in read or (digest := _digest_of(container.image, resolved)) is None:
                continue
            hints = found.setdefault(digest, {})
            hint = given.get((policy.name, container.image))
            if hint is not None or policy.name not in hints:
                hints[policy.name] = hint
    return found


@dataclass
class UnusedReports:
    """Which reports have gone unused for the grace period; time is given, never read, so tests choose it."""

    grace: timedelta
    _unused_since: dict[str, datetime] = field(default_factory=dict)

    def due(self, reports: Mapping[str, str | None], in_use: set[str], now: datetime) -> list[str]:
        """Names of the reports (name → digest, None if garbled) unused since ``now - grace`` or longer.

        A report first seen unused starts its grace period now: after a restart nothing is removed before the
        controller has had the whole period to see the workloads that use it.
        """
        for name in list(self._unused_since):
            if name not in reports:
                del self._unused_since[name]
        due: list[str] = []
        for name, digest in reports.items():
            if digest is not None and digest in in_use:
                self._unused_since.pop(name, None)
                continue
            since = self._unused_since.setdefault(name, now)
            if now - since >= self.grace:
                due.append(name)
        return due

    def forget(self, name: str) -> None:
        self._unused_since.pop(name, None)


class ReportKeeper:
    """Writes and removes the ImageReports; the controller's inspector asks it as its digest store."""

    def __init__(
        self,
        *,
        reports: ImageReports,
        kube: KubeGateway,
        in_use: Callable[[], set[str]],
        clock: Callable[[], datetime],
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.reports = reports
        self.kube = kube
        self.in_use = in_use
        self.clock = clock
        self.unused = UnusedReports(timedelta(seconds=grace_seconds))
        # A sweep a few times per grace period, at least every 10 minutes and at most every second.
        self.sweep_interval = min(max(grace_seconds / 4, 1.0), 600.0)
        self._pending: dict[str, ImageFacts | None] = {}
        """Digests to write; None: only the hints changed (written over the facts told or reported)."""
        self._hints: dict[str, dict[str, SlimmerBase]] = {}
        """Digest → policy → its hint, as last evaluated; a digest not here keeps the hints its report holds."""
        self.pulls: dict[str, ImagePulls] = {}
        """Digest → the kubelets' pulls folded so far (engine.pull_ledger folds into these; written with the report)."""
        self._references: dict[str, dict[str, None]] = {}
        self._told: dict[str, tuple[ImageFacts, frozenset[str]]] = {}
        self.resolved: dict[str, str] = {}
        """Each image reference → the digest the inspector last answered it for (what the sweeps count as used)."""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.writes = 0
        self.deletions = 0

    # --- the inspector's digest store ---------------------------------------------------------------------------

    def facts_for(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        return self.reports.facts_for(digest, needs)

    async def read(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        return await self.reports.read(digest, needs)

    def would_read(self, digest: str) -> bool:
        return self.reports.would_read(digest)

    def remember(self, image: str, facts: ImageFacts, *, learned: bool) -> None:
        self.resolved[image] = facts.digest
        if learned:
            self.learned(image, facts)

    # --- what the controller learned and evaluated -------------------------------------------------------------

    def learned(self, image: str, facts: ImageFacts) -> None:
        """From the inspector, on the event loop: queue a write unless these facts and this reference are known."""
        references = self._references.setdefault(facts.digest, {})
        told = self._told.get(facts.digest)
        if told is not None and told[0] is facts and image in references:
            return
        references[image] = None
        self._told[facts.digest] = (facts, frozenset(references))
        self._pending[facts.digest] = facts
        self._wake.set()

    def evaluated(self, plan: Plan, verdict: Verdict) -> None:
        """From the audit, each verdict with the plan it was made by: the slimmer bases it found, by digest."""
        self.hinted(slimmer_bases_by_digest(plan, verdict, self.resolved))

    def hinted(self, found: Mapping[str, Mapping[str, SlimmerBase | None]]) -> None:
        """From the audit (``slimmer_bases_by_digest``): queue a write for each digest whose hints changed."""
        for digest, by_policy in found.items():
            known = self._hints.get(digest)
            hints = dict(known or {})
            for policy, hint in by_policy.items():
                if hint is None:
                    hints.pop(policy, None)
                else:
                    hints[policy] = hint
            if known is not None and hints == known:
                continue
            self._hints[digest] = hints
            self._pending.setdefault(digest, None)
            self._wake.set()

    def pulled(self, digest: str, pulls: ImagePulls) -> None:
        """From the pull ledger: a digest's pulls changed; its report is written again (once it has facts)."""
        self.pulls[digest] = pulls
        self._pending.setdefault(digest, None)
        self._wake.set()

    async def stored_pulls(self, digest: str) -> ImagePulls | None:
        """What the digest's report holds of its pulls (the ledger starts from it)."""
        entry = await self.reports.load(digest)
        return entry.stored.pulls if entry is not None and entry.stored is not None else None

    def policy_gone(self, policy: str) -> None:
        """A deleted policy's hints leave every report that holds them."""
        for digest, hints in self._hints.items():
            if hints.pop(policy, None) is not None:
                self._pending.setdefault(digest, None)
                self._wake.set()

    @property
    def idle(self) -> bool:
        return not self._pending

    async def start(self) -> None:
        if self._pending:  # owed from an earlier leadership, refused when it lapsed
            self._wake.set()
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="slimguard-report-writer"),
            asyncio.create_task(self._sweep_loop(), name="slimguard-report-sweeper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def flush(self) -> None:
        """Write every pending report now."""
        while self._pending:
            digest, pending = next(iter(self._pending.items()))
            del self._pending[digest]
            told = self._told.get(digest)
            facts = pending or (told[0] if told is not None else None)
            if facts is None and (entry := await self.reports.load(digest)) is not None and entry.stored is not None:
                facts = entry.stored.facts if entry.stored.digest == digest else None
            if facts is None:
                continue  # hints or pulls for an image not read here nor fully reported: written with its facts
            hints = self._hints.get(digest)
            try:
                if await self.reports.write(
                    self.kube,
                    facts,
                    self._references.get(digest, {}),
                    None if hints is None else hints.values(),
                    self.pulls.get(digest),
                ):
                    self.writes += 1
            except asyncio.CancelledError:
                raise
            except NotLeader:
                self._pending.setdefault(digest, pending)  # still owed: written once this replica leads again
                raise
            except KubeError as error:
                # A report is a cache: one that cannot be written costs a registry read after a restart, no more.
                log.warning("ImageReport for %s not written: %s %s", digest, error.status, error.reason)
            except Exception:
                log.exception("ImageReport for %s not written", digest)

    async def sweep(self) -> list[str]:
        """Remove the reports unused for the grace period; returns their names."""
        names = self.reports.names()
        due = self.unused.due(names, self.in_use(), self.clock())
        removed: list[str] = []
        for name in due:
            digest = names.get(name)
            if digest is not None and digest in self._pending:
                continue  # being written: in use after all
            if await self.reports.delete(self.kube, name):
                removed.append(name)
                self.unused.forget(name)
                if digest is not None:
                    self._told.pop(digest, None)
                    self._references.pop(digest, None)
                    self._hints.pop(digest, None)
                    self.pulls.pop(digest, None)
                log.info("ImageReport %s removed: no workload has used %s for %s", name, digest, self.unused.grace)
        self.deletions += len(removed)
        return removed

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except NotLeader:
                log.debug("ImageReports not written: not the leader")
            except Exception:
                log.exception("writing ImageReports failed; will retry with the next one learned")

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except NotLeader:
                log.debug("unused ImageReports not removed: not the leader")
            except Exception:
                log.exception("removing unused ImageReports failed; will retry")
