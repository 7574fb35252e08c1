"""Admission counts each review once by its decision, and each applicable policy by its own decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from core.builders import MiB, facts, layers, platform_image
from prometheus_client import REGISTRY

from slimguard.admission.decision import Reviewer
from slimguard.core.errors import InspectionError
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.registry.credentials import Credential

FAT = "registry.example.com/team/fat:1.0"
DOWN = "registry.down.example/team/app:1.0"


class Facts:
    """A facts source from memory: FAT is 300 MiB, DOWN's registry is unreachable."""

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None:
        if image == DOWN:
            return InspectionError("registry registry.down.example is unreachable", reason="RegistryUnreachable")
        return facts(platform_image(*layers("fat", 3, 100 * MiB), seed="fat"))

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        raise AssertionError("everything is in memory")


def _reviewer(*policies: tuple[str, str, str]) -> Reviewer:
    view = ClusterView()
    for name, ns, mode in policies:
        view.observe_policy(
            {
                "metadata": {"name": name, "generation": 1},
                "spec": {"mode": mode, "match": {"namespaces": [ns]}, "rules": {"maxCompressedSize": "200Mi"}},
            }
        )
    view.policies_synced = True

    async def no_credentials(_: Any) -> list[Credential]:
        return []

    return Reviewer(
        evaluator=Evaluator(inspector=Facts(), view=view, credentials=no_credentials), view=view, deadline=1
    )


def _request(ns: str, image: str, *, kind: str = "Pod", owned: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "api", "namespace": ns}
    if owned:
        metadata["ownerReferences"] = [{"kind": "ReplicaSet", "name": "api-1", "controller": True}]
    return {
        "uid": "1",
        "kind": {"kind": kind},
        "operation": "CREATE",
        "namespace": ns,
        "object": {"metadata": metadata, "spec": {"containers": [{"name": "api", "image": image}]}},
    }


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("mode", "image", "decision"),
    [("Enforce", FAT, "denied"), ("Warn", FAT, "warned"), ("Audit", FAT, "allowed"), ("Enforce", DOWN, "unknown")],
)
async def test_each_decision_is_counted_for_the_review_and_for_its_policy(mode: str, image: str, decision: str) -> None:
    policy = f"unit-{mode.lower()}-{decision}"
    reviewer = _reviewer((policy, policy, mode))
    review = _count("slimguard_admission_reviews_total", kind="Pod", decision=decision)
    by_policy = {"policy": policy, "mode": mode, "kind": "Pod", "decision": decision}
    answer = await reviewer.review(_request(policy, image))
    assert answer.decision == decision
    assert answer.allowed is (decision != "denied")
    assert _count("slimguard_admission_reviews_total", kind="Pod", decision=decision) == review + 1
    assert _count("slimguard_admission_policy_decisions_total", **by_policy) == 1


async def test_the_strictest_policy_decides_the_review_and_each_policy_keeps_its_own() -> None:
    reviewer = _reviewer(("unit-strict-enforce", "unit-both", "Enforce"), ("unit-strict-warn", "unit-both", "Warn"))
    before = _count("slimguard_admission_reviews_total", kind="Pod", decision="denied")
    answer = await reviewer.review(_request("unit-both", FAT))
    assert answer.decision == "denied"
    assert _count("slimguard_admission_reviews_total", kind="Pod", decision="denied") == before + 1
    name = "slimguard_admission_policy_decisions_total"
    assert _count(name, policy="unit-strict-enforce", mode="Enforce", kind="Pod", decision="denied") == 1
    assert _count(name, policy="unit-strict-warn", mode="Warn", kind="Pod", decision="warned") == 1


async def test_a_controllers_pod_gets_no_warning_so_it_is_not_counted_as_warned() -> None:
    reviewer = _reviewer(("unit-owned-warn", "unit-owned", "Warn"))
    answer = await reviewer.review(_request("unit-owned", FAT, owned=True))
    assert answer.warnings == []
    assert answer.decision == "allowed"


async def test_a_kind_slimguard_does_not_review_is_counted_as_other() -> None:
    reviewer = _reviewer()
    before = _count("slimguard_admission_reviews_total", kind="other", decision="allowed")
    await reviewer.review(_request("anywhere", FAT, kind="Secret"))
    assert _count("slimguard_admission_reviews_total", kind="other", decision="allowed") == before + 1
