"""``slimguard diff``'s report, as plain data (``--format json``, documented in the README and fixed by a test), the
Markdown a pull-request comment shows, and the baseline a JSON report gives ``check --baseline``.

Pure: an ``ImageDiff`` (``core.facts.image_diff``) in, a document out; the table and SARIF renderings in ``cli/``
are made from the document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slimguard.core.errors import SlimguardError
from slimguard.core.evaluation.rules.blame import short_command
from slimguard.core.facts.image_diff import ImageDiff, LayerChange, PlatformDiff
from slimguard.core.facts.image_facts import BaseImage, ImageFacts, Layer, PlatformImage
from slimguard.core.facts.media_types import OCI_INDEX, OCI_MANIFEST
from slimguard.core.model.platform import Platform
from slimguard.core.model.quantity import format_bytes
from slimguard.core.reports.report import SCHEMA_VERSION

MARKDOWN_LAYERS = 30
"""Layers a pull-request comment lists per platform (changed ones only); the JSON report has them all."""


class UnreadableBaseline(SlimguardError):
    """A ``--baseline`` report that is not one slimguard wrote, or names no image to compare with."""


def diff_document(
    diff: ImageDiff, *, old_image: str, new_image: str, source: str, version: str, content: bool
) -> dict[str, Any]:
    """``slimguard diff --format json``: the two images, then per platform the sizes, bases and layers compared."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "tool": {"name": "slimguard", "version": version},
        "command": "diff",
        "source": source,
        "content": content,
        "old": {"image": old_image, "digest": diff.old.digest},
        "new": {"image": new_image, "digest": diff.new.digest},
        "platforms": [_platform_document(platform) for platform in diff.platforms],
    }


def _side(image: PlatformImage | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {
        "manifestDigest": image.manifest_digest,
        "compressedSize": image.compressed_size if image.compressed_measured else None,
        "uncompressedSize": image.uncompressed_size,
        "layerCount": len(image.layers),
    }


def _bases(bases: Sequence[BaseImage]) -> list[dict[str, Any]]:
    return [{"reference": base.reference, "method": base.method.value, "digest": base.digest} for base in bases]


def _layer_document(change: LayerChange, measured: bool) -> dict[str, Any]:
    return {
        "status": change.status.value,
        "instruction": short_command(change.created_by),
        "createdBy": change.created_by,
        "oldIndex": change.old_index,
        "newIndex": change.new_index,
        "oldDigest": change.old.digest if change.old else None,
        "newDigest": change.new.digest if change.new else None,
        "oldSize": change.old.size if change.old and measured else None,
        "newSize": change.new.size if change.new and measured else None,
        "sizeDelta": change.size_delta if measured else None,
        "uncompressedDelta": change.uncompressed_delta,
    }


def _platform_document(platform: PlatformDiff) -> dict[str, Any]:
    measured = platform.compressed_measured
    content = platform.content
    return {
        "platform": str(platform.platform),
        "old": _side(platform.old),
        "new": _side(platform.new),
        "compressedDelta": platform.compressed_delta if measured else None,
        "uncompressedDelta": platform.uncompressed_delta,
        "bases": {
            "old": _bases(platform.old_bases),
            "new": _bases(platform.new_bases),
            "changed": platform.base_changed,
        },
        "layers": [_layer_document(change, measured) for change in platform.layers],
        "content": None
        if content is None
        else {
            "packagesAdded": list(content.packages_added),
            "packagesRemoved": list(content.packages_removed),
            "toolsAppeared": list(content.tools_appeared),
            "toolsGone": list(content.tools_gone),
            "wastedBytesOld": content.wasted_bytes_old,
            "wastedBytesNew": content.wasted_bytes_new,
            "wastedBytesDelta": content.wasted_bytes_delta,
        },
    }


def signed_bytes(delta: int | None) -> str:
    """``+12 MiB``, ``-3 KiB``, ``±0 B``; ``?`` when unknown."""
    if delta is None:
        return "?"
    if delta == 0:
        return "±0 B"
    return ("+" if delta > 0 else "-") + format_bytes(abs(delta))


def _size(value: int | None) -> str:
    return "?" if value is None else format_bytes(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def diff_markdown(document: Mapping[str, Any]) -> str:
    """The report as a pull-request comment: a heading, then per platform sizes, base and the changed layers."""
    old, new = document["old"], document["new"]
    lines = [f"### slimguard diff: `{_cell(old['image'])}` → `{_cell(new['image'])}`", ""]
    for platform in document["platforms"]:
        before, after = platform["old"] or {}, platform["new"] or {}
        lines += [
            f"#### {platform['platform']}",
            "",
            "| | old | new | change |",
            "|---|---:|---:|---:|",
            f"| compressed | {_size(before.get('compressedSize'))} | {_size(after.get('compressedSize'))} "
            f"| {signed_bytes(platform['compressedDelta'])} |",
            f"| uncompressed | {_size(before.get('uncompressedSize'))} | {_size(after.get('uncompressedSize'))} "
            f"| {signed_bytes(platform['uncompressedDelta'])} |",
            f"| layers | {before.get('layerCount', 0)} | {after.get('layerCount', 0)} | |",
            "",
        ]
        bases = platform["bases"]
        old_base = ", ".join(base["reference"] for base in bases["old"]) or "unknown"
        new_base = ", ".join(base["reference"] for base in bases["new"]) or "unknown"
        lines += [f"Base: {'**changed**: ' if bases['changed'] else ''}`{old_base}` → `{new_base}`", ""]
        changed = [layer for layer in platform["layers"] if layer["status"] != "same"]
        same = len(platform["layers"]) - len(changed)
        if changed:
            lines += ["| layer | status | size change | instruction |", "|---|---|---:|---|"]
            for layer in changed[:MARKDOWN_LAYERS]:
                position = layer["newIndex"] if layer["newIndex"] is not None else layer["oldIndex"]
                lines.append(
                    f"| {position + 1} | {layer['status']} | {signed_bytes(layer['sizeDelta'])} "
                    f"| `{_cell(layer['instruction'])}` |"
                )
            if len(changed) > MARKDOWN_LAYERS:
                lines.append(f"| | … {len(changed) - MARKDOWN_LAYERS} more in the JSON report | | |")
            lines.append("")
        lines += [f"{same} layer{'s' if same != 1 else ''} unchanged.", ""]
        content = platform["content"]
        if content is not None:
            lines += [
                f"Packages added: {', '.join(content['packagesAdded']) or 'none'}; "
                f"removed: {', '.join(content['packagesRemoved']) or 'none'}.",
                f"Tools that appeared: {', '.join(content['toolsAppeared']) or 'none'}.",
                f"Wasted bytes: {format_bytes(content['wastedBytesOld'])} → {format_bytes(content['wastedBytesNew'])} "
                f"({signed_bytes(content['wastedBytesDelta'])}).",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def baseline_from_report(document: object, image: str | None) -> ImageFacts:
    """The baseline a JSON report holds: the image a ``check --format json`` report checked (``image``, or its only
    one), or the new image of a ``diff --format json`` report, per platform its compressed size and layers."""
    tool = document.get("tool") if isinstance(document, Mapping) else None
    if not isinstance(document, Mapping) or not isinstance(tool, Mapping) or tool.get("name") != "slimguard":
        raise UnreadableBaseline("the baseline is not a slimguard JSON report (slimguard check or diff --format json)")
    try:
        if document.get("command") == "diff":
            return _facts(document["new"]["digest"], [_diff_side(p) for p in document["platforms"] if p["new"]])
        if document.get("command") == "check":
            images = document["images"]
            chosen = [entry for entry in images if image is None or entry["image"] == image]
            if not chosen and len(images) == 1:
                chosen = images
            if len(chosen) != 1:
                raise UnreadableBaseline(
                    f"the baseline report checked {len(images)} images, none of them or several named {image}: "
                    "give a report of the one image"
                )
            entry = chosen[0]
            if "platforms" not in entry:
                raise UnreadableBaseline(
                    "the baseline report holds no sizes (written by a slimguard before 0.x? run check again)"
                )
            return _facts(entry["digest"], [_check_side(p) for p in entry["platforms"]])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise UnreadableBaseline(f"the baseline report is garbled ({type(error).__name__}: {error})") from None
    raise UnreadableBaseline(f"a {document.get('command')!r} report holds no image sizes: give a check or diff report")


def _facts(digest: object, platforms: list[PlatformImage]) -> ImageFacts:
    media_type = OCI_INDEX if len(platforms) > 1 else OCI_MANIFEST
    return ImageFacts(digest=str(digest or "unknown"), media_type=media_type, platforms=tuple(platforms))


def _measured_size(value: object) -> int:
    if value is None:
        raise UnreadableBaseline(
            "the baseline report holds no compressed size: its image was read uncompressed (--docker, or a docker "
            "save archive); write it again with --measure-compressed, or from the pushed image"
        )
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"a size must be a whole number of bytes, not {value!r}")
    return value


def _diff_side(platform: Mapping[str, Any]) -> PlatformImage:
    layers = tuple(
        Layer(
            digest=str(layer["newDigest"]),
            size=_measured_size(layer["newSize"]),
            media_type="",
            created_by=layer["createdBy"],
        )
        for layer in sorted((lay for lay in platform["layers"] if lay["newDigest"]), key=lambda lay: lay["newIndex"])
    )
    total = _measured_size(platform["new"]["compressedSize"])
    return PlatformImage(
        platform=Platform.parse(platform["platform"]),
        manifest_digest=str(platform["new"]["manifestDigest"]),
        config_digest="",
        config_size=max(0, total - sum(layer.size for layer in layers)),
        layers=layers,
    )


def _check_side(platform: Mapping[str, Any]) -> PlatformImage:
    layers = tuple(
        Layer(
            digest=str(layer["digest"]),
            size=_measured_size(layer["size"]),
            media_type="",
            created_by=layer["createdBy"],
        )
        for layer in platform["layers"]
    )
    total = _measured_size(platform["compressedSize"])
    return PlatformImage(
        platform=Platform.parse(platform["platform"]),
        manifest_digest=str(platform["manifestDigest"]),
        config_digest="",
        config_size=max(0, total - sum(layer.size for layer in layers)),
        layers=layers,
    )
