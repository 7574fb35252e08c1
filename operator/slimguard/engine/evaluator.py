"""The Evaluator: gathers what a plan says the rules read (credentials, image facts, base-image candidates),
then evaluates. The one evaluator of every entry point: the audit loop, the webhook and ``slimguard check``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from slimguard import metrics
from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.evaluation.context import Context
from slimguard.core.evaluation.evaluate import evaluate
from slimguard.core.evaluation.plan import Plan
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.facts.image_facts import FactsNeeds, FactsOrError, ImageFacts
from slimguard.core.facts.vulnerabilities import DigestReports
from slimguard.engine.bases import NO_BASE_FACTS, BaseFacts, BaseLookups
from slimguard.engine.facts import ClusterFacts, CredentialSource, FactsSource
from slimguard.registry.credentials import Credential


class Evaluator:
    """Turns a plan (``core.evaluation.plan``) into a Verdict, fetching only what it says the rules read."""

    def __init__(
        self,
        *,
        inspector: FactsSource,
        view: ClusterFacts,
        credentials: CredentialSource,
        bases: BaseLookups | None = None,
        baselines: Mapping[str, ImageFacts] | None = None,
    ) -> None:
        self.inspector = inspector
        self.baselines = baselines or {}
        """Per image reference, the image it is compared with for growth (``check --baseline``; none in a cluster)."""
        self.view = view
        self.credentials = credentials
        self.bases = bases or BaseLookups(inspector)

    async def verdict(self, plan: Plan, *, now: datetime, deadline: float | None = None) -> Verdict:
        """Gather what ``plan`` says and evaluate; with a ``deadline`` (seconds), images not inspected in time
        become errors naming it."""
        started = time.monotonic()
        workload = plan.workload
        facts, bases = await self.gather(plan, deadline=deadline)
        base_facts = NO_BASE_FACTS
        if plan.reads.bases:
            remaining = None if deadline is None else max(0.0, deadline - (time.monotonic() - started))
            base_facts = await self.bases.gather(
                plan, facts, bases, await self.credentials(workload), deadline=remaining
            )
        scans = plan.reads.reports
        stale_check = plan.reads.base_versions
        owners = self.view.report_owners(workload) if scans else ()
        context = Context(
            now=now,
            facts=facts,
            base_candidates=bases,
            reports=self.view.own_reports(workload.namespace, ((workload.kind, workload.name), *owners))
            if scans
            else (),
            report_owners=owners,
            reports_listed=not (scans and self.view.reports_pending),
            digest_reports=self._digest_reports(
                workload.namespace, [*facts.values(), *(_base_versions(bases, base_facts) if stale_check else ())]
            )
            if scans or stale_check
            else {},
            base_options=base_facts.options,
            base_versions=base_facts.versions,
            base_history=base_facts.history,
            baselines=self.baselines,
        )
        return evaluate(plan, context)

    def _digest_reports(self, namespace: str, facts: Iterable[FactsOrError]) -> dict[str, tuple[DigestReports, ...]]:
        """The view's reports for every digest of these images: a dictionary lookup per digest, no scan."""
        found: dict[str, tuple[DigestReports, ...]] = {}
        for image in facts:
            if not isinstance(image, ImageFacts):
                continue
            for digest in (image.digest, *(platform.manifest_digest for platform in image.platforms)):
                if digest not in found and (groups := self.view.digest_reports(namespace, digest)):
                    found[digest] = groups
        return found

    async def gather(
        self, plan: Plan, *, deadline: float | None = None
    ) -> tuple[dict[str, FactsOrError], dict[str, FactsOrError]]:
        """The facts the plan says the rules need, and its bases', from memory when it has them all."""
        needs = plan.needs
        if not needs:
            return {}, {}
        credentials = await self.credentials(plan.workload)
        bases = dict.fromkeys(plan.bases, plan.base_needs)
        warm = self._from_memory(needs, bases, credentials)
        if warm is not None:
            return warm

        async def inspect(image: str, need: FactsNeeds) -> FactsOrError:
            try:
                return await self.inspector.inspect(image, need, credentials=credentials)
            except InspectionError as error:
                # For a base, evaluation makes this an error finding: a rule it leaves undecided is not compliant.
                return error

        work = asyncio.gather(
            asyncio.gather(*(inspect(image, need) for image, need in needs.items())),
            asyncio.gather(*(inspect(reference, need) for reference, need in bases.items())),
        )
        try:
            results, base_results = await asyncio.wait_for(work, timeout=deadline)
        except TimeoutError:
            metrics.INSPECTION_FAILURES.labels(reason=InspectionReason.INSPECTION_DEADLINE).inc()
            late = InspectionError(
                f"no answer within slimguard's {deadline:g}s admission deadline",
                reason=InspectionReason.INSPECTION_DEADLINE,
            )
            return dict.fromkeys(needs, late), {}
        return dict(zip(needs, results, strict=True)), dict(zip(bases, base_results, strict=True))

    def _from_memory(
        self, needs: Mapping[str, FactsNeeds], bases: Mapping[str, FactsNeeds], credentials: Sequence[Credential]
    ) -> tuple[dict[str, FactsOrError], dict[str, FactsOrError]] | None:
        """Everything from the caches, without a task or a timer; None as soon as one thing is missing."""
        found: list[dict[str, FactsOrError]] = []
        for wanted in (needs, bases):
            facts: dict[str, FactsOrError] = {}
            for image, need in wanted.items():
                cached = self.inspector.cached(image, need, credentials=credentials)
                if cached is None:
                    return None
                facts[image] = cached
            found.append(facts)
        return found[0], found[1]


def _base_versions(candidates: Mapping[str, FactsOrError], base_facts: BaseFacts) -> list[FactsOrError]:
    """Every version of a base read for requireCurrentBase: their reports tell what a rebuild would fix."""
    history = [facts for versions in base_facts.history.values() for facts in versions]
    return [*candidates.values(), *base_facts.versions.values(), *history]
