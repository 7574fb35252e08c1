"""What evaluation will need to know about each image, so that sources fetch exactly that and nothing more.

Each rule module says what it reads (``core.rules``); ``needs_of`` unites them, and evaluation and every facts
source ask the same one, so what is fetched and what is checked can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from slimguard.core.facts import FactsNeeds
from slimguard.core.matching import selected_containers
from slimguard.core.policy import ImagePolicy, Rules
from slimguard.core.rules import RULES
from slimguard.core.workload import Workload


def needs_of(rules: Rules) -> FactsNeeds | None:
    """What ``rules`` read about an image: the union of every rule's needs; None when none reads a registry."""
    needed: FactsNeeds | None = None
    for rule in RULES:
        need = rule.needs(rules)
        if need is not None:
            needed = need if needed is None else needed | need
    return needed


def image_needs(
    policies: Sequence[ImagePolicy], workload: Workload, namespace_labels: Mapping[str, str]
) -> dict[str, FactsNeeds]:
    """Per image of ``workload``, all that the policies selecting its containers need; images none needs are absent."""
    needed: dict[str, FactsNeeds] = {}
    for policy in policies:
        needs = needs_of(policy.spec.rules)
        if needs is None:
            continue
        for container in selected_containers(policy, workload, namespace_labels):
            before = needed.get(container.image)
            needed[container.image] = needs if before is None else before | needs
    return needed


def base_candidates(policies: Sequence[ImagePolicy]) -> tuple[str, ...]:
    """The concrete base references every policy names, read for layer comparison when something reads bases
    (a base rule, requireCurrentBase, slimmer-base hints).

    The references are pooled: a base one policy names identifies an image for another policy's rule too.
    """
    if not any(policy.finds_bases for policy in policies):
        return ()
    return tuple(dict.fromkeys(reference for policy in policies for reference in policy.base_image_candidates))


__all__ = ["base_candidates", "image_needs", "needs_of"]
