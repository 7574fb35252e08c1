"""What evaluation will need to know about each image, so that sources fetch exactly that and nothing more.

One function of a policy's rules says it (``needs_of``); evaluation and every facts source ask the same one,
so what is fetched and what is checked can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slimguard.core.facts import Platform
from slimguard.core.matching import selected_containers
from slimguard.core.policy import ImagePolicy, Rules
from slimguard.core.workload import Workload


@dataclass(frozen=True, slots=True)
class FactsNeeds:
    """What to read about one image: which platforms' manifests and configs, and whether layer sizes."""

    platforms: frozenset[Platform]
    uncompressed: bool = False

    def __or__(self, other: FactsNeeds) -> FactsNeeds:
        return FactsNeeds(self.platforms | other.platforms, self.uncompressed or other.uncompressed)


def needs_of(rules: Rules) -> FactsNeeds | None:
    """What ``rules`` read about an image; None when they read nothing a registry holds (requireDigest alone)."""
    reads_facts = (
        rules.compressed_limit is not None
        or rules.uncompressed_limit is not None
        or rules.max_layers is not None
        or _has_base_rule(rules)
        or rules.require_non_root_user
        or rules.platforms is not None
        or rules.vulnerabilities is not None  # reports are matched by the digest the registry resolves
    )
    if not reads_facts:
        return None
    return FactsNeeds(frozenset(rules.required_platforms), uncompressed=rules.uncompressed_limit is not None)


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
    """The concrete base references every policy names, read for layer comparison when some base rule applies.

    The references are pooled: a base one policy names identifies an image for another policy's rule too.
    """
    if not any(_has_base_rule(policy.spec.rules) for policy in policies):
        return ()
    return tuple(dict.fromkeys(reference for policy in policies for reference in policy.base_image_candidates))


def _has_base_rule(rules: Rules) -> bool:
    return rules.allowed_base_images is not None or rules.denied_base_images is not None
