"""The evaluator outside a cluster: any facts source, no cluster view (NO_CLUSTER), and only what rules need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.builders import APP, NOW, MiB, facts, layers, platform_image, policy, workload

from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import Status
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.facts import NO_CLUSTER
from slimguard.registry.credentials import Credential


class InMemoryFacts:
    """A facts source over a dict, counting what it is asked for."""

    def __init__(self, known: dict[str, ImageFacts]) -> None:
        self.known = known
        self.asked: list[str] = []

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None:
        return None

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        self.asked.append(image)
        return self.known[image]


async def no_credentials(_: Any) -> list[Credential]:
    return []


async def test_a_fat_image_from_any_facts_source_is_noncompliant_without_a_cluster() -> None:
    source = InMemoryFacts({APP: facts(platform_image(*layers("fat", 3, 100 * MiB)))})
    evaluator = Evaluator(inspector=source, view=NO_CLUSTER, credentials=no_credentials)
    slim = policy(rules={"maxCompressedSize": "200Mi"})
    result = await evaluator.verdict(plan([slim], workload(), {}), now=NOW)
    assert result.status is Status.NONCOMPLIANT
    assert [f.rule for f in result.findings] == ["maxCompressedSize"]
    assert source.asked == [APP]


async def test_a_rule_that_needs_no_registry_asks_the_source_nothing() -> None:
    source = InMemoryFacts({})
    evaluator = Evaluator(inspector=source, view=NO_CLUSTER, credentials=no_credentials)
    result = await evaluator.verdict(plan([policy(rules={"requireDigest": True})], workload(), {}), now=NOW)
    assert [f.rule for f in result.findings] == ["requireDigest"]
    assert source.asked == []
