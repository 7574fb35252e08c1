"""``--format table``: rich tables on a terminal, plain lines when piped (grep-able, no escape codes).

Both are made from the same JSON report as ``--format json`` and SARIF, so the three never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from slimguard.core.model.quantity import format_bytes

_STYLE = {"denied": "bold red", "unknown": "bold magenta", "warned": "yellow", "audited": "cyan"}
_LEVEL_STYLE = {"error": "bold red", "warning": "yellow"}


def _size(value: int | None) -> str:
    return "unknown" if value is None else format_bytes(value)


def render_check(document: Mapping[str, Any], console: Console) -> None:
    rich = console.is_terminal
    if document.get("input"):
        console.print(f"read from {document['input']}", markup=False, highlight=False, soft_wrap=True)
    for image in document["images"]:
        status = image["status"]
        head = f"{image['image']}: {status} (exit {image['exitCode']})"
        if not image["policies"]:
            head = f"{image['image']}: unchecked, no ImagePolicy selects it (match.images) (exit {image['exitCode']})"
        console.print(head, style="bold" if rich else None, markup=False, highlight=False)
        for platform in image["uncheckedPlatforms"]:
            console.print(
                f"  note: {platform} not checked (the local engine holds one platform; check the pushed image)",
                markup=False,
                highlight=False,
            )
        if not image["findings"]:
            continue
        if rich:
            table = Table(show_header=True, header_style="bold", expand=False)
            for column in ("decision", "policy", "rule", "finding"):
                table.add_column(column, overflow="fold")
            for finding in image["findings"]:
                style = _STYLE.get(finding["decision"])
                table.add_row(finding["decision"], ", ".join(finding["policies"]), finding["rule"], finding["message"])
                if style:
                    table.rows[-1].style = style
            console.print(table)
        else:
            for finding in image["findings"]:
                why = f": {finding['reason']}" if finding.get("reason") else ""
                console.print(
                    f"  {finding['decision'].upper()} [{finding['rule']}{why}] {finding['message']}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )


def render_lint(document: Mapping[str, Any], console: Console) -> None:
    rich = console.is_terminal
    for file in document["files"]:
        if not file["findings"]:
            console.print(f"{file['path']}: no findings", markup=False, highlight=False)
            continue
        if rich:
            table = Table(title=file["path"], show_header=True, header_style="bold")
            for column in ("line", "rule", "level", "finding", "fix"):
                table.add_column(column, overflow="fold")
            for finding in file["findings"]:
                table.add_row(
                    str(finding["line"]),
                    finding["rule"],
                    finding["level"],
                    finding["message"],
                    finding["hint"],
                    style=_LEVEL_STYLE.get(finding["level"]),
                )
            console.print(table)
        else:
            for finding in file["findings"]:
                console.print(
                    f"{file['path']}:{finding['line']} {finding['rule']} {finding['level']}: {finding['message']}. "
                    f"{finding['hint']}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )


def render_inspect(document: Mapping[str, Any], console: Console) -> None:
    rich = console.is_terminal

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    where = f"archive {document['input']}" if document.get("input") else document["source"]
    say(f"{document['image']} ({where}) {document['digest']}")
    if len(document["listedPlatforms"]) > 1:
        say(f"platforms: {', '.join(document['listedPlatforms'])}")
    for platform in document["platforms"]:
        say(
            f"{platform['platform']}: {_size(platform['compressedSize'])} compressed, "
            f"{_size(platform['uncompressedSize'])} uncompressed, {len(platform['layers'])} layers, "
            f"user {platform['user'] or 'root (none set)'}"
        )
        for base in platform["bases"]:
            how = (
                "by its OCI base-image annotation"
                if base["method"] == "annotation"
                else (
                    f"by {base['sharedLayers']} shared layers"
                    + (" and its OCI base-image annotation" if base["method"] == "annotation+layers" else "")
                )
            )
            say(f"  base: {base['reference']} (found {how})")
        if not platform["bases"]:
            say("  base: not found (no annotation; no known base shares its layers)")
        content = platform["content"]
        if content is not None:
            count = content["packageCount"]
            say(f"  packages: {'unknown' if count is None else count}")
            if content["tools"]:
                say(f"  tools: {', '.join(tool['what'] for tool in content['tools'])}")
        if rich:
            table = Table(show_header=True, header_style="bold")
            for column in ("size", "uncompressed", "created by"):
                table.add_column(column, overflow="fold")
            for layer in platform["layers"]:
                table.add_row(_size(layer["size"]), _size(layer["uncompressedSize"]), layer["createdBy"] or "?")
            console.print(table)
        else:
            for layer in platform["layers"]:
                say(f"  {_size(layer['size']):>12} {_size(layer['uncompressedSize']):>12}  {layer['createdBy'] or '?'}")


def render_diff(document: Mapping[str, Any], console: Console) -> None:
    """Per platform the sizes and their change, the bases, then each layer that is not the same, in build order."""
    from slimguard.core.reports.image_diff import signed_bytes

    def say(text: str, style: str | None = None) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True, style=style if console.is_terminal else None)

    say(f"{document['old']['image']} → {document['new']['image']} ({document['source']})", "bold")
    for platform in document["platforms"]:
        before, after = platform["old"] or {}, platform["new"] or {}
        say(
            f"{platform['platform']}: compressed {_size(before.get('compressedSize'))} → "
            f"{_size(after.get('compressedSize'))} ({signed_bytes(platform['compressedDelta'])}), uncompressed "
            f"{_size(before.get('uncompressedSize'))} → {_size(after.get('uncompressedSize'))} "
            f"({signed_bytes(platform['uncompressedDelta'])}), layers {before.get('layerCount', 0)} → "
            f"{after.get('layerCount', 0)}"
        )
        bases = platform["bases"]
        old_base = ", ".join(base["reference"] for base in bases["old"]) or "not found"
        new_base = ", ".join(base["reference"] for base in bases["new"]) or "not found"
        say(f"  base: {old_base} → {new_base}" + (" (changed)" if bases["changed"] else " (unchanged)"))
        same = 0
        for layer in platform["layers"]:
            if layer["status"] == "same":
                same += 1
                continue
            position = layer["newIndex"] if layer["newIndex"] is not None else layer["oldIndex"]
            style = {"added": "red", "removed": "green"}.get(layer["status"], "yellow")
            say(
                f"  {layer['status']:<8} layer {position + 1:>3} {signed_bytes(layer['sizeDelta']):>12}  "
                f"{layer['instruction']}",
                style,
            )
        say(f"  {same} layer{'s' if same != 1 else ''} unchanged")
        content = platform["content"]
        if content is not None:
            say(f"  packages added: {', '.join(content['packagesAdded']) or 'none'}")
            say(f"  packages removed: {', '.join(content['packagesRemoved']) or 'none'}")
            say(f"  tools that appeared: {', '.join(content['toolsAppeared']) or 'none'}")
            say(
                f"  wasted bytes: {_size(content['wastedBytesOld'])} → {_size(content['wastedBytesNew'])} "
                f"({signed_bytes(content['wastedBytesDelta'])})"
            )
