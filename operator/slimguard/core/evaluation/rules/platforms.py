"""``platforms``: every required platform (linux/amd64 by default) has an image."""

from __future__ import annotations

from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Subject
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.policy import Rules

PLATFORMS = PolicyRule(
    "platforms",
    summary="Every required platform has an image",
    description="The image has a variant for every platform in platforms (linux/amd64 when none is listed); the "
    "other rules measure those platforms.",
    fix="Build and push every required platform, e.g. with docker buildx --platform.",
)


def reads(rules: Rules) -> Reads:
    return Reads(FactsNeeds(frozenset(rules.required_platforms))) if rules.platforms is not None else NOTHING


def check(subject: Subject) -> None:
    """Checked whenever facts were read: the other rules measure only the platforms that exist."""
    assert subject.facts is not None
    report, facts = subject.report, subject.facts
    for required in subject.rules.required_platforms:
        if facts.for_platform(required) is None:
            available = ", ".join(facts.platform_names) or "no platform"
            report.violation(
                PLATFORMS.name,
                f"has no {required} image (it has {available}); {report.policy_name} requires {required}. "
                f"Build and push a {required} variant, e.g. with docker buildx --platform.",
                limit=str(required),
                actual=available,
            )
