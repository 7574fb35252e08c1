"""Gathering what evaluation needs: credentials, image facts and base-image candidates, then the verdict."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from slimguard.core.errors import InspectionError
from slimguard.core.evaluation import Context, FactsOrError, evaluate
from slimguard.core.facts import ImageFacts, Platform
from slimguard.core.matching import selected_containers
from slimguard.core.policy import ImagePolicy
from slimguard.core.verdict import Verdict
from slimguard.core.vulnerabilities import DigestReports
from slimguard.core.workload import Workload
from slimguard.engine.view import ClusterView
from slimguard.registry.credentials import Credential
from slimguard.registry.inspector import ImageInspector

log = logging.getLogger(__name__)

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
        owners = self.view.report_owners(workload) if scans else ()
        context = Context(
            now=now,
            facts=facts,
            base_candidates=bases,
            namespace_labels=labels,
            reports=self.view.own_reports(workload.namespace, ((workload.kind, workload.name), *owners))
            if scans
            else (),
            report_owners=owners,
            digest_reports=self._digest_reports(workload.namespace, facts) if scans else {},
        )
        return evaluate(policies=policies, workload=workload, context=context)

    def _digest_reports(
        self, namespace: str, facts: Mapping[str, FactsOrError]
    ) -> dict[str, tuple[DigestReports, ...]]:
        """The view's reports for every digest of these images: a dictionary lookup per digest, no scan."""
        found: dict[str, tuple[DigestReports, ...]] = {}
        for image in facts.values():
            if not isinstance(image, ImageFacts):
                continue
            for digest in (image.digest, *(platform.manifest_digest for platform in image.platforms)):
                if digest not in found and (groups := self.view.digest_reports(namespace, digest)):
                    found[digest] = groups
        return found

    async def gather(
        self,
        policies: Sequence[ImagePolicy],
        workload: Workload,
        namespace_labels: Mapping[str, str],
        *,
        deadline: float | None = None,
    ) -> tuple[dict[str, FactsOrError], dict[str, ImageFacts]]:
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

        async def inspect_base(reference: str) -> ImageFacts | None:
            try:
                return await self.inspector.inspect(reference, credentials=credentials, platforms=all_platforms)
            except InspectionError as error:
                log.info("base image %s cannot be read to match layers: %s", reference, error)
                return None

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
        bases = {ref: facts for ref, facts in zip(candidates, base_results, strict=True) if facts is not None}
        return dict(zip(images, results, strict=True)), bases

    def _from_memory(
        self,
        images: Sequence[str],
        candidates: Sequence[str],
        credentials: Sequence[Credential],
        platforms: Mapping[str, set[Platform]],
        uncompressed: Mapping[str, bool],
        all_platforms: set[Platform],
    ) -> tuple[dict[str, FactsOrError], dict[str, ImageFacts]] | None:
        """Everything from the caches, without a task or a timer; None as soon as one thing is missing."""
        facts: dict[str, FactsOrError] = {}
        for image in images:
            found = self.inspector.cached(
                image, credentials=credentials, platforms=platforms[image], uncompressed=uncompressed[image]
            )
            if found is None:
                return None
            facts[image] = found
        bases: dict[str, ImageFacts] = {}
        for reference in candidates:
            base = self.inspector.cached(reference, credentials=credentials, platforms=all_platforms)
            if base is None:
                return None
            if isinstance(base, ImageFacts):
                bases[reference] = base
        return facts, bases
