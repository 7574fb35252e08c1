"""The rules of an ImagePolicy, one module each: its check and what it reads (``Reads``).

To add a rule: a module here with ``reads`` and ``check``, an entry in ``RULES``, its field in the CRD and in
``core.model.policy.Rules``, and its tests. Findings are reported in the order of ``RULES``.
"""

from __future__ import annotations

from slimguard.core.evaluation.rules import (
    base_images,
    current_base,
    forbidden_tools,
    packages,
    platforms,
    reference,
    sizes,
    user,
    vulnerabilities,
    waste,
)
from slimguard.core.evaluation.rules.common import NOTHING, Reads, Reporter, Rule, Subject

WITHOUT_FACTS: tuple[Rule, ...] = (Rule("requireDigest", reference.reads, reference.check),)
"""Rules decided from the workload alone: they run even when the image cannot be read."""

WITH_FACTS: tuple[Rule, ...] = (
    Rule("platforms", platforms.reads, platforms.check),
    Rule("sizes", sizes.reads, sizes.check),
    Rule("baseImages", base_images.reads, base_images.check),
    Rule("requireCurrentBase", current_base.reads, current_base.check),
    Rule("requireNonRootUser", user.reads, user.check),
    Rule("maxPackages", packages.reads, packages.check),
    Rule("forbiddenTools", forbidden_tools.reads, forbidden_tools.check),
    Rule("waste", waste.reads, waste.check),
    Rule("vulnerabilities", vulnerabilities.reads, vulnerabilities.check),
)
"""Rules that read what the registry holds; they run once the image's facts are known."""

RULES = WITHOUT_FACTS + WITH_FACTS

__all__ = ["NOTHING", "RULES", "WITHOUT_FACTS", "WITH_FACTS", "Reads", "Reporter", "Rule", "Subject"]
