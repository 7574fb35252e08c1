"""One registry of rules (``core.evaluation.rules``): every field of ``spec.rules`` is exactly one rule, every rule has
the help a code-scanning alert shows (SARIF: ``tests/unit/cli/test_reports.py``), and the README's table of rules
says what the registry says."""

from __future__ import annotations

import re
from pathlib import Path

from slimguard.core.evaluation.rules import BY_NAME, IMAGE_WIDE, POLICY_RULES, RULES
from slimguard.core.model.policy import Rules

REPO = Path(__file__).resolve().parents[3]
README = (REPO / "README.md").read_text()


def test_every_field_of_spec_rules_is_exactly_one_rule_of_one_family() -> None:
    fields = [info.alias or name for name, info in Rules.model_fields.items()]
    names = [rule.name for rule in POLICY_RULES]
    assert sorted(names) == sorted(fields)
    assert len(set(names)) == len(names)
    assert len(BY_NAME) == len(POLICY_RULES) + len(IMAGE_WIDE)
    assert all(family.checks for family in RULES)


def test_every_rule_has_sarif_help_and_a_readme_section_to_point_to() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in README.splitlines()
        if line.startswith("#")
    }
    for rule in POLICY_RULES + IMAGE_WIDE:
        assert all((rule.summary, rule.description, rule.fix)), rule.name
        assert rule.fix.endswith("."), rule.name
        assert rule.anchor in headings, f"{rule.name}: README has no section #{rule.anchor}"


def test_the_readme_table_of_rules_is_the_registry() -> None:
    section = README.split("### The rules\n", 1)[1].split("\n#", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| `")
    ]
    assert rows == [[f"`{rule.name}`", rule.description, rule.fix] for rule in POLICY_RULES + IMAGE_WIDE]
