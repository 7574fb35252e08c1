"""The rules of an ImagePolicy: one module a rule family, with its check, what it reads (``Reads``) and the rules of
``spec.rules`` it checks (``PolicyRule``: the name and the help users read). The one registry of rules.

Everything that names a rule derives from here: the findings, the PolicyReport results (``core.reports``), the
SARIF rules and their help (``cli/sarif.py``), the README's table of rules (a unit test compares them). To add a
rule: a module here with ``reads``, ``check`` and its ``PolicyRule``, an entry in ``RULES``, its field in the CRD
and in ``core.model.policy.Rules``, its line in the README's table, and its tests. Findings are reported in the
order of ``RULES``.
"""

from __future__ import annotations

from collections.abc import Mapping

from slimguard.core.evaluation.rules import (
    base_images,
    current_base,
    forbidden_packages,
    forbidden_tools,
    growth,
    packages,
    platforms,
    reference,
    sizes,
    user,
    vulnerabilities,
    waste,
)
from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Reporter, RuleFamily, Subject
from slimguard.core.evaluation.verdict import INSPECTION, REFERENCE
from slimguard.core.model.policy import Rules

WITHOUT_FACTS: tuple[RuleFamily, ...] = (
    RuleFamily("reference", reference.reads, reference.check, (reference.REQUIRE_DIGEST,)),
)
"""Rules decided from the workload alone: they run even when the image cannot be read."""

WITH_FACTS: tuple[RuleFamily, ...] = (
    RuleFamily("platforms", platforms.reads, platforms.check, (platforms.PLATFORMS,)),
    RuleFamily(
        "sizes", sizes.reads, sizes.check, (sizes.MAX_COMPRESSED_SIZE, sizes.MAX_UNCOMPRESSED_SIZE, sizes.MAX_LAYERS)
    ),
    RuleFamily("growth", growth.reads, growth.check, (growth.MAX_GROWTH, growth.MAX_GROWTH_BYTES)),
    RuleFamily(
        "base_images",
        base_images.reads,
        base_images.check,
        (base_images.ALLOWED_BASE_IMAGES, base_images.DENIED_BASE_IMAGES),
    ),
    RuleFamily("current_base", current_base.reads, current_base.check, (current_base.REQUIRE_CURRENT_BASE,)),
    RuleFamily("user", user.reads, user.check, (user.REQUIRE_NON_ROOT_USER,)),
    RuleFamily("packages", packages.reads, packages.check, (packages.MAX_PACKAGES,)),
    RuleFamily("forbidden_tools", forbidden_tools.reads, forbidden_tools.check, (forbidden_tools.FORBIDDEN_TOOLS,)),
    RuleFamily(
        "forbidden_packages",
        forbidden_packages.reads,
        forbidden_packages.check,
        (forbidden_packages.FORBIDDEN_PACKAGES,),
    ),
    RuleFamily("waste", waste.reads, waste.check, (waste.MIN_EFFICIENCY, waste.MAX_WASTED_BYTES)),
    RuleFamily("vulnerabilities", vulnerabilities.reads, vulnerabilities.check, (vulnerabilities.VULNERABILITIES,)),
)
"""Rules that read what the registry holds; they run once the image's facts are known."""

RULES = WITHOUT_FACTS + WITH_FACTS

POLICY_RULES: tuple[PolicyRule, ...] = tuple(rule for family in RULES for rule in family.checks)
"""Every rule of ``spec.rules``, one per field, in the order reports list them."""

DECIDED_WITHOUT_FACTS = frozenset(rule.name for family in WITHOUT_FACTS for rule in family.checks)

IMAGE_WIDE: tuple[PolicyRule, ...] = (
    PolicyRule(
        INSPECTION,
        summary="The image's facts could be read",
        description="An error finding: the image's facts could not be had (its registry unreachable, untrusted or "
        "refusing access, the image not found, ...), so the policy's onUnknown decided every rule on it.",
        fix="Check the image reference, the registry's availability and your credentials.",
        anchor="when-nothing-is-enforced",
    ),
    PolicyRule(
        REFERENCE,
        summary="The image reference is valid",
        description="An error finding: the image reference does not follow the distribution grammar, so no rule "
        "could be checked on it.",
        fix="Write the image as registry/repository:tag or registry/repository@sha256:digest.",
    ),
)
"""The rules of error findings about a whole image, which no field sets: every rule on it is left undecided."""

BY_NAME: Mapping[str, PolicyRule] = {rule.name: rule for rule in POLICY_RULES + IMAGE_WIDE}

_FIELDS = {info.alias or field: field for field, info in Rules.model_fields.items()}


def rule_of(finding_rule: str) -> PolicyRule | None:
    """The rule a finding names: ``vulnerabilities.maxCritical`` is the ``vulnerabilities`` rule's."""
    return BY_NAME.get(finding_rule.split(".", 1)[0])


def set_in(rules: Rules) -> tuple[PolicyRule, ...]:
    """The rules a policy sets (a flag set to false sets none; ``maxPackages: 0`` is set)."""
    return tuple(rule for rule in POLICY_RULES if _is_set(getattr(rules, _FIELDS[rule.name])))


def _is_set(value: object) -> bool:
    return value is not None and value is not False  # identity: 0 == False


__all__ = [
    "BY_NAME",
    "DECIDED_WITHOUT_FACTS",
    "IMAGE_WIDE",
    "NOTHING",
    "POLICY_RULES",
    "RULES",
    "WITHOUT_FACTS",
    "WITH_FACTS",
    "PolicyRule",
    "Reads",
    "Reporter",
    "RuleFamily",
    "Subject",
    "rule_of",
    "set_in",
]
