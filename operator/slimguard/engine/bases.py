"""What evaluation reads about images' bases once their facts are known: earlier and current versions of the
bases (requireCurrentBase) and slimmer candidates (slimmerBases hints).

A second step after the image facts, since which base to ask about depends on them. It answers from memory
without a task when it can (a warm admission asks no registry), and a hint never delays a verdict past its
deadline: what is not measured in time is left out and lands in the caches for the next evaluation.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.plan import Plan
from slimguard.core.evaluation.rules.current_base import versions_to_read
from slimguard.core.evaluation.slimmer_bases import BaseQuery, slimmer_base_queries
from slimguard.core.facts.bases import BaseOptions
from slimguard.core.facts.image_facts import FactsNeeds, FactsOrError, ImageFacts
from slimguard.registry.credentials import Credential

log = logging.getLogger(__name__)


class SlimmerBaseSource(Protocol):
    """Measured slimmer candidates for a base (``engine.alternatives.SlimmerBaseFinder`` is the registry's)."""

    def cached(self, base: str, query: BaseQuery, credentials: Sequence[Credential]) -> _Looked | None: ...

    async def options(self, base: str, query: BaseQuery, credentials: Sequence[Credential]) -> _Looked: ...


class _Looked(Protocol):
    @property
    def options(self) -> BaseOptions | None: ...


class VersionSource(Protocol):
    """Image facts by reference, as ``engine.facts.FactsSource`` gives them."""

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None: ...

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts: ...


class BaseHistory:
    """The versions each base reference's tag pointed to when slimguard read it, newest first, bounded.

    An image built on a base that has moved since no longer starts with the base's current layers; it still
    starts with the layers of the version it was built on, if slimguard saw that one.
    """

    def __init__(self, *, per_reference: int = 4, references: int = 512) -> None:
        self.per_reference = per_reference
        self.references = references
        self._versions: OrderedDict[str, OrderedDict[str, ImageFacts]] = OrderedDict()

    def record(self, reference: str, facts: ImageFacts) -> None:
        versions = self._versions.setdefault(reference, OrderedDict())
        self._versions.move_to_end(reference)
        versions[facts.digest] = facts
        versions.move_to_end(facts.digest)
        while len(versions) > self.per_reference:
            versions.popitem(last=False)
        while len(self._versions) > self.references:
            self._versions.popitem(last=False)

    def earlier(self, reference: str, current: str) -> tuple[ImageFacts, ...]:
        versions = list((self._versions.get(reference) or {}).items())
        return tuple(facts for digest, facts in reversed(versions) if digest != current)


@dataclass(frozen=True)
class BaseFacts:
    options: Mapping[str, BaseOptions] = field(default_factory=dict)
    versions: Mapping[str, FactsOrError] = field(default_factory=dict)
    history: Mapping[str, Sequence[ImageFacts]] = field(default_factory=dict)


NO_BASE_FACTS = BaseFacts()


class BaseLookups:
    """The second step of gathering: versions of bases and slimmer candidates, for the policies that ask."""

    def __init__(self, versions: VersionSource, slimmer: SlimmerBaseSource | None = None) -> None:
        self.versions = versions
        self.slimmer = slimmer
        self.history = BaseHistory()

    def remember(self, candidates: Mapping[str, FactsOrError]) -> dict[str, tuple[ImageFacts, ...]]:
        """Record the base candidates as read now; the earlier versions of each, for the layer comparison."""
        earlier: dict[str, tuple[ImageFacts, ...]] = {}
        for reference, facts in candidates.items():
            if isinstance(facts, ImageFacts):
                self.history.record(reference, facts)
                if versions := self.history.earlier(reference, facts.digest):
                    earlier[reference] = versions
        return earlier

    async def gather(
        self,
        plan: Plan,
        facts: Mapping[str, FactsOrError],
        candidates: Mapping[str, FactsOrError],
        credentials: Sequence[Credential],
        *,
        deadline: float | None,
    ) -> BaseFacts:
        """What the plan's policies read of their images' bases, once the images' facts are known."""
        images = plan.policies_by_image
        history = self.remember(candidates) if plan.reads.base_versions else {}
        wanted = versions_to_read(images, facts)
        queries = slimmer_base_queries(images, facts, candidates) if self.slimmer is not None else {}
        if not wanted and not queries:
            return BaseFacts(history=history)
        warm = self._from_memory(wanted, queries, credentials)
        if warm is not None:
            return BaseFacts(options=warm[0], versions=warm[1], history=history)

        async def version(reference: str, need: FactsNeeds) -> FactsOrError:
            try:
                return await self.versions.inspect(reference, need, credentials=credentials)
            except InspectionError as error:
                return error

        async def option(base: str, query: BaseQuery) -> BaseOptions | None:
            assert self.slimmer is not None
            try:
                return (await self.slimmer.options(base, query, credentials)).options
            except InspectionError as error:  # a hint is a courtesy: never an error finding
                log.info("slimmer bases of %s not measured: %s", base, error)
                return None

        versions_task = asyncio.gather(*(version(ref, need) for ref, need in wanted.items()))
        options_task = asyncio.gather(*(option(base, query) for base, query in queries.items()))
        try:
            read_versions, read_options = await asyncio.wait_for(
                asyncio.gather(versions_task, options_task), timeout=deadline
            )
        except TimeoutError:
            return BaseFacts(history=history)
        return BaseFacts(
            options={base: found for base, found in zip(queries, read_options, strict=True) if found is not None},
            versions=dict(zip(wanted, read_versions, strict=True)),
            history=history,
        )

    def _from_memory(
        self, wanted: Mapping[str, FactsNeeds], queries: Mapping[str, BaseQuery], credentials: Sequence[Credential]
    ) -> tuple[dict[str, BaseOptions], dict[str, FactsOrError]] | None:
        versions: dict[str, FactsOrError] = {}
        for reference, need in wanted.items():
            cached = self.versions.cached(reference, need, credentials=credentials)
            if cached is None:
                return None
            versions[reference] = cached
        options: dict[str, BaseOptions] = {}
        for base, query in queries.items():
            assert self.slimmer is not None
            looked = self.slimmer.cached(base, query, credentials)
            if looked is None:
                return None
            if looked.options is not None:
                options[base] = looked.options
        return options, versions
