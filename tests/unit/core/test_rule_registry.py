"""One registry of rules (``core.evaluation.rules``): every field of ``spec.rules`` is exactly one rule, every rule has
the help a code-scanning alert shows, and the README's table of rules says what the registry says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

from slimguard.cli.sarif import INFORMATION_URI, check_sarif
from slimguard.core.evaluation.rules import BY_NAME, IMAGE_WIDE, POLICY_RULES, RULES, rule_of
from slimguard.core.evaluation.rules.vulnerabilities import VULNERABILITIES
from slimguard.core.model.policy import Rules

REPO = Path(__file__).resolve().parents[3]
README = (REPO / "README.md").read_text()
SARIF_SCHEMA = json.loads((REPO / "tests" / "schemas" / "sarif-schema-2.1.0.json").read_text())
EVERY_FINDING_RULE = [
    *(rule.name for rule in POLICY_RULES + IMAGE_WIDE),
    *(VULNERABILITIES.part(part) for part in ("maxCritical", "maxHigh", "maxMedium", "onMissingReport")),
]


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


def _document_with_a_finding_of(rules: list[str]) -> dict:  # type: ignore[type-arg]
    findings = [
        {"policy": "p", "mode": "Enforce", "rule": rule, "decision": "denied", "message": f"image x breaks {rule}"}
        for rule in rules
    ]
    return {"exitCode": 1, "images": [{"image": "registry.example.com/team/app:1.0", "findings": findings}]}


def test_sarif_gives_every_rule_its_help_from_the_registry_and_validates() -> None:
    log = json.loads(check_sarif(_document_with_a_finding_of(EVERY_FINDING_RULE), version="1.2.3"))
    jsonschema.validate(log, SARIF_SCHEMA)
    descriptors = {d["id"]: d for d in log["runs"][0]["tool"]["driver"]["rules"]}
    assert list(descriptors) == EVERY_FINDING_RULE  # the ids are the findings' rules, byte for byte
    for name, descriptor in descriptors.items():
        rule = rule_of(name)
        assert rule is not None, name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["fullDescription"]["text"] == rule.description
        assert descriptor["help"]["text"] == rule.fix
        assert descriptor["helpUri"] == f"{INFORMATION_URI}#{rule.anchor}"
