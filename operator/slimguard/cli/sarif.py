"""SARIF 2.1.0 for code scanning (GitHub, GitLab, Azure DevOps), built with sarif-pydantic from the JSON report.

Lint findings are located at their Dockerfile line. Image findings are located at the image's repository, as
Trivy locates image findings (an image has no source line: line 1 of a file named by the repository), so a
code-scanning alert is one per rule and image. Levels: Enforce violations and errors are ``error``, Warn
violations ``warning``, Audit ``note``; lint rules carry their own level.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sarif_pydantic import (
    ArtifactLocation,
    Invocation,
    Level,
    Location,
    Message,
    PhysicalLocation,
    Region,
    ReportingConfiguration,
    ReportingDescriptor,
    Result,
    Run,
    Sarif,
    Tool,
    ToolDriver,
)

from slimguard.core.errors import InvalidReference
from slimguard.core.evaluation.rules import PolicyRule, rule_of
from slimguard.core.lint import RULES as LINT_RULES
from slimguard.core.model.reference import ImageReference

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/slimguard/slimguard"
_DECISION_LEVELS = {"denied": Level.ERROR, "unknown": Level.ERROR, "warned": Level.WARNING, "audited": Level.NOTE}


def _dump(log: Sarif) -> str:
    return json.dumps(log.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2)


def _driver(version: str, rules: list[ReportingDescriptor]) -> Tool:
    return Tool(
        driver=ToolDriver(
            name="slimguard", version=version, semantic_version=version, information_uri=INFORMATION_URI, rules=rules
        )
    )


def _location(uri: str, line: int) -> Location:
    return Location(
        physical_location=PhysicalLocation(artifact_location=ArtifactLocation(uri=uri), region=Region(start_line=line))
    )


def lint_sarif(document: Mapping[str, Any], *, version: str) -> str:
    """``slimguard lint --format sarif``: every SG1xx rule, and each finding at its Dockerfile line."""
    rules = [
        ReportingDescriptor(
            id=rule.id,
            name=rule.name,
            short_description=Message(text=rule.summary),
            full_description=Message(text=rule.summary),
            help=Message(text=rule.hint),
            default_configuration=ReportingConfiguration(level=rule.level),
        )
        for rule in LINT_RULES
    ]
    index = {rule.id: position for position, rule in enumerate(LINT_RULES)}
    results = [
        Result(
            rule_id=finding["rule"],
            rule_index=index[finding["rule"]],
            level=Level(finding["level"]),
            message=Message(text=f"{finding['message']}. {finding['hint']}"),
            locations=[_location(file["path"], finding["line"])],
        )
        for file in document["files"]
        for finding in file["findings"]
    ]
    run = Run(
        tool=_driver(version, rules),
        invocations=[Invocation(execution_successful=document["exitCode"] != 2)],
        results=results,
    )
    return _dump(Sarif(schema_uri=SCHEMA_URI, runs=[run]))


def _repository(image: str) -> str:
    """Where an image finding is located: its repository path (``shop/api``), as Trivy names image targets."""
    try:
        return ImageReference.parse(image).repository
    except InvalidReference:
        return image.split("@", 1)[0].split(":", 1)[0] or "image"


def _policy_rule(name: str) -> ReportingDescriptor:
    """A policy rule's descriptor, its help from the one registry of rules (``core.evaluation.rules``); a finding of
    one part of a rule (``vulnerabilities.maxCritical``) has its rule's help."""
    rule = rule_of(name)
    if rule is None:  # a rule the registry lacks: a unit test makes sure there is none
        rule = PolicyRule(name, f"ImagePolicy rule {name}", f"ImagePolicy rule {name}", "See the ImagePolicy's rules.")
    return ReportingDescriptor(
        id=name,
        name=name,
        short_description=Message(text=rule.summary),
        full_description=Message(text=rule.description),
        help=Message(text=rule.fix),
        help_uri=f"{INFORMATION_URI}#{rule.anchor}",
    )


def check_sarif(document: Mapping[str, Any], *, version: str) -> str:
    """``slimguard check --format sarif``: the policy rules that fired, each finding at its image's repository.

    An image read from an archive (``--input``) is located the same way, by the name it was checked under, so
    its alerts are the pushed image's; the archive is named in each result's properties (``input``)."""
    names = list(dict.fromkeys(f["rule"] for image in document["images"] for f in image["findings"]))
    rules = [_policy_rule(name) for name in names]
    index = {name: position for position, name in enumerate(names)}
    read_from = {"input": document["input"]} if document.get("input") else {}
    results = [
        Result(
            rule_id=finding["rule"],
            rule_index=index[finding["rule"]],
            level=_DECISION_LEVELS.get(finding["decision"], Level.WARNING),
            message=Message(text=finding["message"]),
            locations=[_location(_repository(image["image"]), 1)],
            partial_fingerprints={"imageRule": f"{image['image']}|{finding['policy']}|{finding['rule']}"},
            properties={"image": image["image"], "policy": finding["policy"], "mode": finding["mode"], **read_from},
        )
        for image in document["images"]
        for finding in image["findings"]
    ]
    run = Run(
        tool=_driver(version, rules),
        invocations=[Invocation(execution_successful=document["exitCode"] != 2)],
        results=results,
    )
    return _dump(Sarif(schema_uri=SCHEMA_URI, runs=[run]))


_DIFF_RULES = {
    "diff.size": ("The image's compressed size changed", "The compressed size of a platform's image changed."),
    "diff.layer.added": ("A layer was added", "The new image has a layer the old one had not."),
    "diff.layer.removed": ("A layer was removed", "The old image had a layer the new one has not."),
    "diff.layer.changed": ("A layer was rebuilt", "The same instruction made a layer with other contents."),
}


def diff_sarif(document: Mapping[str, Any], *, version: str) -> str:
    """``slimguard diff --format sarif``: notes, not findings (a diff judges nothing; ``check --baseline`` does):
    each platform's size change and each layer added, removed or rebuilt, at the new image's repository."""
    from slimguard.core.reports.image_diff import signed_bytes

    names = list(_DIFF_RULES)
    rules = [
        ReportingDescriptor(
            id=name,
            name=name,
            short_description=Message(text=summary),
            full_description=Message(text=description),
            help=Message(text="Compare with slimguard diff; gate growth with slimguard check --baseline."),
            default_configuration=ReportingConfiguration(level=Level.NOTE),
        )
        for name, (summary, description) in _DIFF_RULES.items()
    ]
    new = document["new"]["image"]
    where = _location(_repository(new), 1)
    results: list[Result] = []
    for platform in document["platforms"]:
        name = platform["platform"]
        results.append(
            Result(
                rule_id="diff.size",
                rule_index=names.index("diff.size"),
                level=Level.NOTE,
                message=Message(
                    text=f"{new} ({name}) is {signed_bytes(platform['compressedDelta'])} compressed against "
                    f"{document['old']['image']}"
                ),
                locations=[where],
                properties={"platform": name, "compressedDelta": platform["compressedDelta"]},
            )
        )
        for layer in platform["layers"]:
            if layer["status"] == "same":
                continue
            rule = f"diff.layer.{layer['status']}"
            position = layer["newIndex"] if layer["newIndex"] is not None else layer["oldIndex"]
            results.append(
                Result(
                    rule_id=rule,
                    rule_index=names.index(rule),
                    level=Level.NOTE,
                    message=Message(
                        text=f"layer {position + 1} ({name}) {layer['status']}, "
                        f"{signed_bytes(layer['sizeDelta'])}: {layer['instruction']}"
                    ),
                    locations=[where],
                    properties={"platform": name, "sizeDelta": layer["sizeDelta"]},
                )
            )
    run = Run(tool=_driver(version, rules), invocations=[Invocation(execution_successful=True)], results=results)
    return _dump(Sarif(schema_uri=SCHEMA_URI, runs=[run]))
