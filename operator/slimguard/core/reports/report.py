"""What the CLI reports, as plain data: one shape for ``--format json`` (documented in the README, fixed by a
test) that the table and SARIF renderings are made from. Pure: verdicts, facts and lint findings in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slimguard.core.evaluation.outcome import DENIED, EXIT_ERROR, UNKNOWN, WARNED, Outcome, check_exit_status
from slimguard.core.evaluation.verdict import Finding, FindingKind, Verdict
from slimguard.core.facts.bases import detect_bases
from slimguard.core.facts.content import ContentFacts
from slimguard.core.facts.image_facts import FactsOrError, ImageFacts
from slimguard.core.lint import LintFinding
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import Decision, ImagePolicy, Mode

SCHEMA_VERSION = 1
AUDITED = "audited"


@dataclass(frozen=True)
class ImageResult:
    """One image checked: its verdict, what admission would decide, and the platforms left unchecked."""

    image: str
    verdict: Verdict
    outcome: Outcome
    facts: FactsOrError | None = None
    unchecked_platforms: tuple[Platform, ...] = ()
    exit_status: int = 0


def image_result(
    image: str,
    verdict: Verdict,
    outcome: Outcome,
    *,
    facts: FactsOrError | None = None,
    unchecked_platforms: tuple[Platform, ...] = (),
    strict: bool = False,
) -> ImageResult:
    # An image no policy selects was checked against nothing: in a pipeline that is a mistake (a wrong file, a
    # tag the policy's match.images misses), not a pass.
    status = check_exit_status(outcome, strict=strict) if verdict.applies else EXIT_ERROR
    return ImageResult(image, verdict, outcome, facts, unchecked_platforms, status)


def finding_decision(finding: Finding, on_unknown: Mapping[str, Decision]) -> str:
    """What this one finding does, as ``core.evaluation.outcome`` maps it: denied, warned, unknown, or audited."""
    if finding.kind is FindingKind.ERROR:
        return DENIED if finding.mode is Mode.ENFORCE and on_unknown.get(finding.policy) is Decision.DENY else UNKNOWN
    return {Mode.ENFORCE: DENIED, Mode.WARN: WARNED, Mode.AUDIT: AUDITED}[finding.mode]


def finding_document(finding: Finding, on_unknown: Mapping[str, Decision]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "policy": finding.policy,
        "policies": list(finding.policies),
        "mode": finding.mode.value,
        "rule": finding.rule,
        "kind": finding.kind.value,
        "decision": finding_decision(finding, on_unknown),
        "message": finding.message,
    }
    for key, value in (("reason", finding.reason), ("limit", finding.limit), ("actual", finding.actual)):
        if value is not None:
            document[key] = value
    return document


def check_document(
    results: Sequence[ImageResult],
    policies: Sequence[ImagePolicy],
    *,
    source: str,
    version: str,
    exit_status: int,
    archive: str | None = None,
    baseline: str | None = None,
) -> dict[str, Any]:
    """``slimguard check --format json``: the policies, then each image with its findings and, per platform, its
    compressed size and layers (what a later ``check --baseline`` of this report compares with). ``archive``: the
    one the images were read from (``--input``; the report's ``input``), else None; ``baseline``: what growth was
    compared with (``--baseline``), else None."""
    on_unknown = {policy.name: policy.spec.on_unknown for policy in policies}
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "slimguard", "version": version},
        "command": "check",
        "source": source,
        "input": archive,
        "baseline": baseline,
        "exitCode": exit_status,
        "policies": [{"name": policy.name, "mode": policy.spec.mode.value} for policy in policies],
        "images": [
            {
                "image": result.image,
                "digest": result.facts.digest if isinstance(result.facts, ImageFacts) else None,
                "status": result.verdict.status.value if result.verdict.applies else "unchecked",
                "decision": result.outcome.decision,
                "exitCode": result.exit_status,
                "policies": list(result.verdict.policies),
                "uncheckedPlatforms": [str(platform) for platform in result.unchecked_platforms],
                "findings": [finding_document(f, on_unknown) for f in result.verdict.distinct_findings],
                "exempted": [finding_document(f, on_unknown) for f in result.verdict.exempted],
                "platforms": platforms_document(result.facts) if isinstance(result.facts, ImageFacts) else [],
            }
            for result in results
        ],
    }


def platforms_document(facts: ImageFacts) -> list[dict[str, Any]]:
    """Per platform, what a later ``check --baseline`` compares with: compressed size and layers in build order."""
    return [
        {
            "platform": str(image.platform),
            "manifestDigest": image.manifest_digest,
            "compressedSize": image.compressed_size if image.compressed_measured else None,
            "uncompressedSize": image.uncompressed_size,
            "layers": [
                {
                    "digest": layer.digest,
                    "size": layer.size if image.compressed_measured else None,
                    "createdBy": layer.created_by,
                }
                for layer in image.layers
            ],
        }
        for image in facts.platforms
    ]


def lint_document(
    findings_by_file: Mapping[str, Sequence[LintFinding]], *, version: str, exit_status: int
) -> dict[str, Any]:
    """``slimguard lint --format json``: each Dockerfile with its findings, in line order."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "slimguard", "version": version},
        "command": "lint",
        "exitCode": exit_status,
        "files": [
            {
                "path": path,
                "findings": [
                    {
                        "rule": finding.rule.id,
                        "name": finding.rule.name,
                        "level": finding.rule.level,
                        "line": finding.line,
                        "message": finding.message,
                        "hint": finding.rule.hint,
                    }
                    for finding in findings
                ],
            }
            for path, findings in findings_by_file.items()
        ],
    }


@dataclass(frozen=True)
class InspectedImage:
    image: str
    source: str
    facts: ImageFacts
    base_candidates: Mapping[str, FactsOrError] = field(default_factory=dict)
    archive: str | None = None
    """The archive the image was read from (``--input``)."""


def inspect_document(inspected: InspectedImage, *, version: str) -> dict[str, Any]:
    """``slimguard inspect --format json``: per platform, sizes, layers largest first, base, user, contents."""
    facts = inspected.facts
    platforms = []
    for image in facts.platforms:
        bases = detect_bases(facts, image, inspected.base_candidates)
        content = image.content
        platforms.append(
            {
                "platform": str(image.platform),
                "manifestDigest": image.manifest_digest,
                "compressedSize": image.compressed_size if image.compressed_measured else None,
                "uncompressedSize": image.uncompressed_size,
                "user": image.user,
                "labels": dict(image.labels),
                "bases": [
                    {
                        "reference": base.reference,
                        "method": base.method.value
                        if base.shared_layers is None
                        else ("annotation+layers" if base.method.value == "annotation" else "layers"),
                        "digest": base.digest,
                        "sharedLayers": base.shared_layers,
                    }
                    for base in bases
                ],
                "layers": sorted(
                    (
                        {
                            "digest": layer.digest,
                            "size": layer.size if image.compressed_measured else None,
                            "uncompressedSize": layer.uncompressed_size,
                            "createdBy": layer.created_by,
                        }
                        for layer in image.layers
                    ),
                    key=_largest_first,
                ),
                "content": None if content is None else _content_document(content),
            }
        )
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "slimguard", "version": version},
        "command": "inspect",
        "image": inspected.image,
        "source": inspected.source,
        "input": inspected.archive,
        "digest": facts.digest,
        "listedPlatforms": list(facts.platform_names),
        "platforms": platforms,
    }


def _largest_first(layer: Mapping[str, Any]) -> int:
    return -int(layer["uncompressedSize"] or layer["size"] or 0)


def _content_document(content: ContentFacts) -> dict[str, Any]:
    """What the layers hold, where they were read: counts and tools, not the file list."""
    return {
        "packageCount": content.packages.count,
        "packageManagers": [manager.value for manager in content.packages.managers],
        "tools": [{"category": tool.category, "what": tool.what, "layer": tool.layer_index} for tool in content.tools],
        "efficiency": content.efficiency,
        "wastedBytes": content.wasted_bytes,
        "fileCount": content.file_count,
    }
