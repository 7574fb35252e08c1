"""Admission answers from a verdict: an error found under several policies is said once, with its reason."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.builders import NOW

from slimguard.admission.decision import MAX_WARNING_LENGTH, Reviewer
from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.context import Context
from slimguard.core.evaluation.evaluate import evaluate
from slimguard.core.evaluation.plan import Plan
from slimguard.core.evaluation.verdict import Verdict
from slimguard.engine.view import ClusterView

IMAGE = "127.0.0.1:1/shop/api:1.0"
UNREACHABLE = InspectionError("registry 127.0.0.1:1 is unreachable (connection refused)", reason="Unreachable")


class UnreachableEvaluator:
    """The real evaluation, with every image's inspection failed."""

    async def verdict(self, plan: Plan, *, now: datetime, deadline: float | None = None) -> Verdict:
        facts = dict.fromkeys(plan.workload.images, UNREACHABLE)
        return evaluate(plan, Context(now=now, facts=facts))


def reviewer(*policies: dict[str, Any]) -> Reviewer:
    view = ClusterView()
    for number, spec in enumerate(policies):
        view.observe_policy({"metadata": {"name": f"policy-{number}", "generation": 1}, "spec": spec})
    view.policies_synced = True
    return Reviewer(evaluator=UnreachableEvaluator(), view=view, deadline=2.0, clock=lambda: NOW)  # type: ignore[arg-type]


def policy(mode: str, **spec: Any) -> dict[str, Any]:
    return {"mode": mode, "match": {"namespaces": ["shop"]}, "rules": {"maxCompressedSize": "200Mi"}, **spec}


def create(image: str = IMAGE) -> dict[str, Any]:
    pod = {"spec": {"containers": [{"name": "api", "image": image}]}}
    return {
        "kind": {"kind": "Deployment"},
        "operation": "CREATE",
        "namespace": "shop",
        "object": {"metadata": {"name": "api", "namespace": "shop"}, "spec": {"template": pod}},
    }


async def test_an_unreachable_image_under_seven_warn_policies_is_one_warning() -> None:
    answer = await reviewer(*(policy("Warn") for _ in range(7))).review(create())
    assert answer.allowed
    assert answer.warnings == [
        f'slimguard: container "api": image {IMAGE} could not be inspected: registry 127.0.0.1:1 is unreachable '
        "(connection refused); admitted unchecked (onUnknown: Allow)"
    ]


async def test_an_unreachable_image_under_three_denying_policies_is_one_line_of_the_denial_and_no_warning() -> None:
    answer = await reviewer(
        policy("Enforce", onUnknown="Deny"), policy("Enforce", onUnknown="Deny"), policy("Warn")
    ).review(create())
    assert not answer.allowed
    assert answer.message == (
        'slimguard denied Deployment shop/api: 1 violation(s) of ImagePolicy "policy-0", "policy-1":\n'
        f'- container "api": image {IMAGE} could not be inspected: registry 127.0.0.1:1 is unreachable '
        "(connection refused)"
    )
    assert answer.warnings == [], "the Warn policy's copy of the same error would say it was admitted"


async def test_a_warning_about_a_10_kb_image_reference_keeps_its_reason_and_what_was_done() -> None:
    image = "127.0.0.1:1/" + "a" * 10_000 + ":1.0"
    answer = await reviewer(policy("Warn")).review(create(image))
    (warning,) = answer.warnings
    assert len(warning) <= MAX_WARNING_LENGTH
    assert warning.startswith('slimguard: container "api": image 127.0.0.1:1/aaa')
    assert warning.endswith("; admitted unchecked (onUnknown: Allow)")
