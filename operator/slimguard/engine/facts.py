"""Gathering what evaluation needs: credentials, image facts and base-image candidates, then the verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from slimguard.core.errors import InspectionError
from slimguard.core.evaluation import Context, FactsOrError, evaluate
from slimguard.core.facts import Platform
from slimguard.core.matching import selected_containers
from slimguard.core.policy import ImagePolicy
from slimguard.core.verdict import Verdict
from slimguard.core.workload import Workload
from slimguard.engine.view import ClusterView
from slimguard.registry.credentials import Credential
from slimguard.registry.inspector import ImageInspector

CredentialSource = Callable[[Workload], Awaitable[list[Credential]]]


class Evaluator:
    """Turns a workload and the policies that apply to it into a Verdict, fetching only what rules need."""

    def __init__(self, *, inspector: ImageInspector, view: ClusterView, credentials: CredentialSource) -> None:
        self.inspector = inspector
        self.view = view
        self.credentials = credentials

    async def verdict(
        self,
        workload: Workload,
        policies: Sequence[ImagePolicy],
        *,
        now: datetime,
        deadline: float | None = None,
    ) -> Verdict:
        """Evaluate; with a ``deadline`` (seconds), images not inspected in time become errors naming it."""
        labels = self.view.namespace_labels(workload.namespace)
        facts, bases = await self.gather(policies, workload, labels, deadline=deadline)
        scans = any(policy.spec.rules.vulnerabilities is not None for policy in policies)
        context = Context(
            now=now,
            facts=facts,
            base_candidates=bases,
            namespace_labels=labels,
            reports=self.view.reports_in(workload.namespace) if scans else (),
            report_owners=self.view.report_owners(workload) if scans else (),
        )
        return evaluate(policies=policies, workload=workload, context=context)

    async def gather(
        self,
        policies: Sequence[ImagePolicy],
        workload: Workload,
        namespace_labels: Mapping[str, str],
        *,
        deadline: float | None = None,
    ) -> tuple[dict[str, FactsOrError], dict[str, FactsOrError]]:
        platforms: dict[str, set[Platform]] = {}
        uncompressed: dict[str, bool] = {}
        for policy in policies:
            for container in selected_containers(policy, workload, namespace_labels):
                platforms.setdefault(container.image, set()).update(policy.spec.rules.required_platforms)
                uncompressed[container.image] = (
                    uncompressed.get(container.image, False) or policy.spec.rules.uncompressed_limit is not None
                )
        credentials = await self.credentials(workload) if platforms else []
        all_platforms = set().union(*platforms.values()) if platforms else set()
        candidates = list(dict.fromkeys(ref for p in policies for ref in p.base_image_candidates))

        async def inspect(image: str) -> FactsOrError:
            try:
                return await self.inspector.inspect(
                    image, credentials=credentials, platforms=platforms[image], uncompressed=uncompressed[image]
                )
            except InspectionError as error:
                return error

        async def inspect_base(reference: str) -> FactsOrError:
            try:
                return await self.inspector.inspect(reference, credentials=credentials, platforms=all_platforms)
            except InspectionError as error:
                # Evaluation makes this an error finding: a base rule it leaves undecided is not compliant.
                return error

        images = list(platforms)
        warm = self._from_memory(images, candidates, credentials, platforms, uncompressed, all_platforms)
        if warm is not None:
            return warm
        work = asyncio.gather(
            asyncio.gather(*(inspect(image) for image in images)),
            asyncio.gather(*(inspect_base(reference) for reference in candidates)),
        )
        try:
            results, base_results = await asyncio.wait_for(work, timeout=deadline)
        except TimeoutError:
            late = InspectionError(
                f"no answer within slimguard's {deadline:g}s admission deadline", reason="InspectionDeadline"
            )
            return dict.fromkeys(images, late), {}
        return dict(zip(images, results, strict=True)), dict(zip(candidates, base_results, strict=True))

    def _from_memory(
        self,
        images: Sequence[str],
        candidates: Sequence[str],
        credentials: Sequence[Credential],
        platforms: Mapping[str, set[Platform]],
        uncompressed: Mapping[str, bool],
        all_platforms: set[Platform],
    ) -> tuple[dict[str, FactsOrError], dict[str, FactsOrError]] | None:
        """Everything from the caches, without a task or a timer; None as soon as one thing is missing."""
        facts: dict[str, FactsOrError] = {}
        for image in images:
            found = self.inspector.cached(
                image, credentials=credentials, platforms=platforms[image], uncompressed=uncompressed[image]
            )
            if found is None:
                return None
            facts[image] = found
        bases: dict[str, FactsOrError] = {}
        for reference in candidates:
            base = self.inspector.cached(reference, credentials=credentials, platforms=all_platforms)
            if base is None:
                return None
            bases[reference] = base
        return facts, bases
