"""``--format github``: GitHub Actions workflow commands (``::error title=…::message``), which the runner turns into
annotations on the run and, for a file and line, on the pull request's diff.

Made from the same JSON report as the table and SARIF. Escaped as the Actions toolkit escapes them
(``@actions/core``'s ``command.ts``): in the message ``%``, CR and LF; in a property also ``:`` and ``,``, which
would otherwise end the property. One command per line: a message never spans lines once escaped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from slimguard.core.model.quantity import format_bytes
from slimguard.core.reports.image_diff import signed_bytes

_DECISION_COMMANDS = {"denied": "error", "unknown": "error", "warned": "warning", "audited": "notice"}
_LINT_COMMANDS = {"error": "error", "warning": "warning", "note": "notice"}


def _size(value: int | None) -> str:
    return "unknown" if value is None else format_bytes(value)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, message: str, **properties: str | int | None) -> str:
    """One workflow command: ``::LEVEL k=v,k=v::message``, properties that are None left out."""
    given = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items() if value is not None)
    return f"::{level}{' ' + given if given else ''}::{escape_data(message)}"


def check_github(document: Mapping[str, Any]) -> str:
    """``check --format github``: an annotation per finding (Enforce and errors ``error``, Warn ``warning``,
    Audit ``notice``), titled by rule and image; a plain line per image says its status for the log."""
    return "\n".join(_check_lines(document))


def _check_lines(document: Mapping[str, Any]) -> Iterator[str]:
    for image in document["images"]:
        name = image["image"]
        if not image["policies"]:
            yield command(
                "error",
                f"{name} was not checked: no ImagePolicy selects it (match.images)",
                title=f"slimguard: {name} unchecked",
            )
        for finding in image["findings"]:
            policies = ", ".join(finding["policies"]) or finding["policy"]
            yield command(
                _DECISION_COMMANDS.get(finding["decision"], "error"),
                f"{name}: {finding['message']} (ImagePolicy {policies}, {finding['decision']})",
                title=f"slimguard {finding['rule']}: {name}",
            )
        yield f"slimguard check: {name}: {image['status']} (exit {image['exitCode']})"


def lint_github(document: Mapping[str, Any]) -> str:
    """``lint --format github``: each finding at its Dockerfile line, so the pull request shows it there."""
    lines = []
    for file in document["files"]:
        for finding in file["findings"]:
            lines.append(
                command(
                    _LINT_COMMANDS.get(finding["level"], "warning"),
                    f"{finding['message']}. {finding['hint']}",
                    file=file["path"],
                    line=finding["line"],
                    title=f"slimguard {finding['rule']}",
                )
            )
        lines.append(f"slimguard lint: {file['path']}: {len(file['findings'])} finding(s)")
    return "\n".join(lines)


def diff_github(document: Mapping[str, Any]) -> str:
    """``diff --format github``: a diff judges nothing, so notices only: per platform the size change, and each
    layer added, removed or rebuilt with its size change and instruction."""
    new = document["new"]["image"]
    lines = []
    for platform in document["platforms"]:
        before, after = platform["old"] or {}, platform["new"] or {}
        title = f"slimguard diff {platform['platform']}: {new}"
        lines.append(
            command(
                "notice",
                f"compressed {_size(before.get('compressedSize'))} → {_size(after.get('compressedSize'))} "
                f"({signed_bytes(platform['compressedDelta'])}), layers {before.get('layerCount', 0)} → "
                f"{after.get('layerCount', 0)}",
                title=title,
            )
        )
        for layer in platform["layers"]:
            if layer["status"] == "same":
                continue
            position = layer["newIndex"] if layer["newIndex"] is not None else layer["oldIndex"]
            lines.append(
                command(
                    "notice",
                    f"layer {position + 1} {layer['status']} ({signed_bytes(layer['sizeDelta'])}): "
                    f"{layer['instruction']}",
                    title=title,
                )
            )
    return "\n".join(lines)
