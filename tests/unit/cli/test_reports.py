"""The JSON the CLI prints: its shape is an interface (pipelines parse it), fixed here and in the README."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from core.builders import APP, MiB, context, facts, layers, platform_image, policy

from slimguard.cli.sarif import INFORMATION_URI, check_sarif, lint_sarif
from slimguard.core.evaluation.evaluate import evaluate
from slimguard.core.evaluation.outcome import outcome_of
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.rules import IMAGE_WIDE, POLICY_RULES, rule_of
from slimguard.core.evaluation.rules.vulnerabilities import VULNERABILITIES
from slimguard.core.lint import lint, parse_dockerfile
from slimguard.core.model.image_check import image_scoped, image_workload
from slimguard.core.reports.report import check_document, image_result, lint_document

SARIF_SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "sarif-schema-2.1.0.json").read_text())


def fat_check() -> dict:
    slim = image_scoped(policy("slim", rules={"maxCompressedSize": "200Mi"}, mode="Enforce"))
    fat = facts(platform_image(*layers("fat", 3, 100 * MiB)))
    verdict = evaluate(plan([slim], image_workload(APP), {}), context({APP: fat}))
    result = image_result(APP, verdict, outcome_of(verdict, on_unknown={}), facts=fat)
    return check_document([result], [slim], source="registry", version="1.2.3", exit_status=result.exit_status)


def test_the_check_json_shape_is_fixed() -> None:
    document = fat_check()
    digest = document["images"][0]["digest"]
    assert document == {
        "schemaVersion": 1,
        "tool": {"name": "slimguard", "version": "1.2.3"},
        "command": "check",
        "source": "registry",
        "input": None,
        "baseline": None,
        "exitCode": 1,
        "policies": [{"name": "slim", "mode": "Enforce"}],
        "images": [
            {
                "image": APP,
                "digest": digest,
                "status": "noncompliant",
                "decision": "denied",
                "exitCode": 1,
                "policies": ["slim"],
                "uncheckedPlatforms": [],
                "findings": [
                    {
                        "policy": "slim",
                        "policies": ["slim"],
                        "mode": "Enforce",
                        "rule": "maxCompressedSize",
                        "kind": "violation",
                        "decision": "denied",
                        "message": f'image {APP} is 300 MiB compressed (linux/amd64); ImagePolicy "slim" allows '
                        "200 MiB. Largest layers: layer 1/3 adds 100 MiB: (no build history); layer 2/3 adds 100 MiB: "
                        "(no build history); layer 3/3 adds 100 MiB: (no build history). Use a multi-stage build "
                        "with a slim, alpine or distroless final stage.",
                        "limit": "200 MiB",
                        "actual": "300 MiB",
                    }
                ],
                "exempted": [],
                "platforms": [
                    {
                        "platform": "linux/amd64",
                        "manifestDigest": digest,
                        "compressedSize": 300 * MiB,
                        "uncompressedSize": 600 * MiB,
                        "layers": [
                            {"digest": layer.digest, "size": 100 * MiB, "createdBy": None}
                            for layer in layers("fat", 3, 100 * MiB)
                        ],
                    }
                ],
            }
        ],
    }
    assert digest.startswith("sha256:")


def test_the_lint_json_shape_is_fixed() -> None:
    parsed = parse_dockerfile("FROM node:20\n", path="Dockerfile", dockerignore=".git\n.env\nnode_modules\n")
    document = lint_document({"Dockerfile": lint(parsed)}, version="1.2.3", exit_status=1)
    first = document["files"][0]["findings"][0]
    assert document["command"] == "lint"
    assert document["exitCode"] == 1
    assert first == {
        "rule": "SG101",
        "name": "single-stage-full-base",
        "level": "error",
        "line": 1,
        "message": "single-stage build on node:20, a full OS base",
        "hint": "Build in a first stage and copy only the result into a slim, alpine or distroless final stage.",
    }
    assert [f["rule"] for f in document["files"][0]["findings"]] == ["SG101", "SG105", "SG108"]


def test_sarif_from_both_reports_is_valid_sarif_2_1_0() -> None:
    check_log = json.loads(check_sarif(fat_check(), version="1.2.3"))
    jsonschema.validate(check_log, SARIF_SCHEMA)
    (result,) = check_log["runs"][0]["results"]
    assert result["ruleId"] == "maxCompressedSize"
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "team/app"
    parsed = parse_dockerfile("FROM node:20\n", path="app/Dockerfile")
    lint_log = json.loads(
        lint_sarif(lint_document({"app/Dockerfile": lint(parsed)}, version="1", exit_status=1), version="1")
    )
    jsonschema.validate(lint_log, SARIF_SCHEMA)
    assert {r["ruleId"] for r in lint_log["runs"][0]["results"]} == {"SG101", "SG105", "SG107", "SG108"}


EVERY_FINDING_RULE = [
    *(rule.name for rule in POLICY_RULES + IMAGE_WIDE),
    *(VULNERABILITIES.part(part) for part in ("maxCritical", "maxHigh", "maxMedium", "onMissingReport")),
]


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
