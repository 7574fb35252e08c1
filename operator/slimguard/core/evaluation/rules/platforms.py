"""``platforms``: every required platform has an image; with none listed, one of those the workload may run on
(the Ready nodes' platforms, its pin's, linux/amd64 when nothing says)."""

from __future__ import annotations

from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Subject
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.platform import DEFAULT_PLATFORMS
from slimguard.core.model.policy import Rules

PLATFORMS = PolicyRule(
    "platforms",
    summary="Every required platform has an image",
    description="The image has a variant for every platform in platforms; when none is listed, for one of those the "
    "workload may run on (the cluster's Ready nodes', narrowed by its nodeSelector or required node affinity; "
    "linux/amd64 when no node is known). The other rules measure those platforms.",
    fix="Build and push every required platform, e.g. with docker buildx --platform.",
)


def reads(rules: Rules) -> Reads:
    return Reads(FactsNeeds(frozenset(rules.required_platforms))) if rules.platforms is not None else NOTHING


def check(subject: Subject) -> None:
    """Checked whenever facts were read: the other rules measure only the platforms that exist.

    Platforms the policy lists are each required. Those judged because it lists none (the Ready nodes', the pod's
    pin, or linux/amd64) are where the image may run: one missing is no finding while the image has another of
    them (the scheduler's pick among mixed nodes is not slimguard's to guess), all missing is.
    """
    assert subject.facts is not None
    report, facts = subject.report, subject.facts
    judged = subject.rules.required_platforms
    missing = [platform for platform in judged if facts.for_platform(platform) is None]
    if subject.rules.platforms is None and len(missing) < len(judged):
        return
    available = ", ".join(facts.platform_names) or "no platform"
    for required in missing:
        if subject.rules.platforms is None and judged != DEFAULT_PLATFORMS:
            why = f"the nodes it may run on run {', '.join(map(str, judged))}"
        else:
            why = f"{report.policy_name} requires {required}"
        report.violation(
            PLATFORMS.name,
            f"has no {required} image (it has {available}); {why}. "
            f"Build and push a {required} variant, e.g. with docker buildx --platform.",
            limit=str(required),
            actual=available,
        )
