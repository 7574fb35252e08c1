"""The rules of an ImagePolicy, one module each: its check and what it needs read about an image.

To add a rule: a module here with ``needs`` and ``check``, an entry in ``RULES``, its field in the CRD and in
``core.policy.Rules``, and its tests. Findings are reported in the order of ``RULES``.
"""

from __future__ import annotations

from slimguard.core.rules import (
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
from slimguard.core.rules.common import Reporter, Rule, Subject

WITHOUT_FACTS: tuple[Rule, ...] = (Rule("requireDigest", reference.needs, reference.check),)
"""Rules decided from the workload alone: they run even when the image cannot be read."""

WITH_FACTS: tuple[Rule, ...] = (
    Rule("platforms", platforms.needs, platforms.check),
    Rule("sizes", sizes.needs, sizes.check),
    Rule("baseImages", base_images.needs, base_images.check),
    Rule("requireCurrentBase", current_base.needs, current_base.check),
    Rule("requireNonRootUser", user.needs, user.check),
    Rule("maxPackages", packages.needs, packages.check),
    Rule("forbiddenTools", forbidden_tools.needs, forbidden_tools.check),
    Rule("waste", waste.needs, waste.check),
    Rule("vulnerabilities", vulnerabilities.needs, vulnerabilities.check),
)
"""Rules that read what the registry holds; they run once the image's facts are known."""

RULES = WITHOUT_FACTS + WITH_FACTS

__all__ = ["RULES", "WITHOUT_FACTS", "WITH_FACTS", "Reporter", "Rule", "Subject"]
