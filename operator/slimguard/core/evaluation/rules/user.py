"""``requireNonRootUser``: the image's USER, unless the pod's securityContext already runs it as non-root."""

from __future__ import annotations

from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Subject
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.policy import Rules

_ROOT_USERS = {"", "root", "0"}

REQUIRE_NON_ROOT_USER = PolicyRule(
    "requireNonRootUser",
    summary="The image runs as a non-root user",
    description="With requireNonRootUser: true, the image's USER is not root, unless the pod's securityContext "
    "already runs the container as non-root.",
    fix="Add USER 10001 to the final stage.",
)


def reads(rules: Rules) -> Reads:
    return Reads(FactsNeeds(frozenset(rules.required_platforms))) if rules.require_non_root_user else NOTHING


def check(subject: Subject) -> None:
    if not subject.rules.require_non_root_user or subject.container.runs_as_non_root or not subject.images:
        return
    report = subject.report
    user = subject.images[0].user.strip()
    name = user.split(":", 1)[0]
    if name in _ROOT_USERS or (name.isdigit() and int(name) == 0):  # "00" is uid 0 too
        shown = "has no USER, so it runs as root" if not user else f"runs as {user!r} (root)"
        report.violation(
            REQUIRE_NON_ROOT_USER.name,
            f"{shown}; {report.policy_name} requires a non-root user. "
            "Add USER 10001 to the final stage, or set securityContext.runAsNonRoot with a runAsUser.",
            limit="non-root",
            actual=user or "root",
        )
