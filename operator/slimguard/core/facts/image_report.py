"""ImageReport custom resources ↔ ImageFacts: what slimguard learned about one image digest, kept in the cluster.

Pure: a body in, facts out, and back. A report is a cache the controller writes so that a restart or a new
webhook replica reads nothing again from the registry; it is never the only source of truth. So reading one is
strict where a verdict would depend on it and tolerant everywhere else:
- unknown fields are ignored (a newer slimguard may add some);
- a garbled report (wrong types, a digest that does not match its name, an unknown format) raises
  ``GarbledReport``: the caller ignores it and the controller writes it again from the registry;
- what the writer had to cut to stay well under etcd's object limit is listed in ``report.truncated``, and a
  platform whose cut touched what a rule reads (layers, executables, package names, tools) is read back with
  its content unknown (``content`` None) or the whole report without facts, never as a smaller truth.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.facts.content import ContentFacts, FoundTool, PackageCount, PackageManager
from slimguard.core.facts.image_facts import BaseImage, BaseImageMethod, ImageFacts, Layer, PlatformImage
from slimguard.core.facts.pulls import ImagePulls, pulls_in, pulls_out
from slimguard.core.model.platform import Platform
from slimguard.core.model.quantity import format_bytes
from slimguard.core.text import shorten

GROUP = "slimguard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ImageReport"
PLURAL = "imagereports"
FORMAT = 1
"""``report.format``: bumped when a field changes meaning; a report of another format is rewritten."""

MAX_REFERENCES = 16
MAX_LISTED_PLATFORMS = 128
MAX_PLATFORMS = 32
MAX_LAYERS = 256
MAX_CREATED_BY = 1024
MAX_LABELS = 64
MAX_LABEL_CHARS = 1024
MAX_PACKAGE_NAMES = 4096
MAX_TOOLS = 1024
MAX_EXECUTABLES = 4096
MAX_SLIMMER_BASES = 16
"""Hints kept per report (one per policy asking for them): each is a few hundred bytes."""
MAX_REPORT_BYTES = 1_000_000
"""etcd refuses objects above 1.5 MiB; the apiserver adds metadata and managedFields on top of this."""

_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class GarbledReport(ValueError):
    """A report that cannot be read back into facts; it is ignored, never trusted into a verdict."""


@dataclass(frozen=True, slots=True)
class StoredReport:
    """An ImageReport as read from the cluster."""

    digest: str
    facts: ImageFacts | None
    """None when a cut made it incomplete where a rule would read it (the report is then display only)."""
    references: tuple[str, ...]
    truncated: tuple[str, ...]
    fingerprint: str
    """``report_fingerprint`` of the ``report`` field as stored, to tell whether writing again would change
    anything; the field itself is not kept (the facts say what it says, and thousands are held)."""
    slimmer_bases: tuple[SlimmerBase, ...] = ()
    """The slimmer-base hints of the policies that gave one for this image when it was last evaluated."""
    pulls: ImagePulls | None = None
    """The kubelets' pulls of this digest folded so far (core.facts.pulls); None: none reported, or garbled (a
    garbled ``pulls`` costs its counts, never the facts beside it). Shared: copy it before folding into it."""


def report_name(digest: str) -> str:
    """``sha256:ab…`` → ``sha256-ab…``: readable, and a valid object name (at most 253 characters)."""
    name = digest.lower().replace(":", "-")
    if len(name) <= 253 and _NAME.match(name) and "--" not in name:
        return name
    return "digest-" + hashlib.sha256(digest.encode()).hexdigest()


def digest_of_name(name: str) -> str | None:
    """The digest ``report_name`` gave this name (``sha256-ab…`` → ``sha256:ab…``); None for a hashed name, or one
    no digest gives. Said by the name alone, before the report is read."""
    algorithm, dash, encoded = name.partition("-")
    if not dash or algorithm == "digest":
        return None
    digest = f"{algorithm}:{encoded}"
    return digest if _DIGEST.match(digest) and report_name(digest) == name else None


# --- facts → body ------------------------------------------------------------------------------------------


def report_body(
    facts: ImageFacts,
    references: Iterable[str],
    slimmer_bases: Iterable[SlimmerBase] = (),
    pulls: ImagePulls | None = None,
) -> dict[str, Any]:
    """The whole ImageReport object for ``facts`` (name, labels and ``report``), within the size budget.

    ``slimmer_bases``: the hints evaluation gave for this image, one per policy (the first for a policy is kept).
    ``pulls``: the kubelets' pulls folded so far (bounded by core.facts.pulls' caps: a few KB at most).
    """
    cuts: list[str] = []
    seen = list(dict.fromkeys(references))
    if len(seen) > MAX_REFERENCES:
        cuts.append(f"references: {len(seen) - MAX_REFERENCES} of {len(seen)} not kept")
    seen = seen[:MAX_REFERENCES]
    listed = [str(platform) for platform in facts.listed_platforms]
    if len(listed) > MAX_LISTED_PLATFORMS:
        cuts.append(f"listedPlatforms: {len(listed) - MAX_LISTED_PLATFORMS} of {len(listed)} not kept")
        listed = listed[:MAX_LISTED_PLATFORMS]
    platforms = [_platform_out(index, image, cuts) for index, image in enumerate(facts.platforms[:MAX_PLATFORMS])]
    if len(facts.platforms) > MAX_PLATFORMS:
        cuts.append(f"platforms: {len(facts.platforms) - MAX_PLATFORMS} of {len(facts.platforms)} not kept")
    report: dict[str, Any] = {
        "format": FORMAT,
        "digest": facts.digest,
        "mediaType": facts.media_type,
        "image": seen[0] if seen else "",
        "references": seen,
        "platforms": platforms,
    }
    if listed:
        report["listedPlatforms"] = listed
    if facts.annotated_base is not None:
        report["annotatedBase"] = _base_out(facts.annotated_base)
    hints = _hints_out(slimmer_bases, cuts)
    if hints:
        report["slimmerBases"] = hints
    if pulls is not None and pulls.digest == facts.digest:
        report["pulls"] = pulls_out(pulls)
    report["summary"] = _summary(facts, hints)
    _fit(report, cuts)
    if cuts:
        report["truncated"] = cuts
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": report_name(facts.digest), "labels": {"app.kubernetes.io/managed-by": "slimguard"}},
        "report": report,
    }


def _hints_out(slimmer_bases: Iterable[SlimmerBase], cuts: list[str]) -> list[dict[str, str | int]]:
    """One hint per policy, in policy order, so the same hints always make the same report (no rewrite)."""
    by_policy: dict[str, SlimmerBase] = {}
    for hint in slimmer_bases:
        by_policy.setdefault(hint.policy, hint)
    hints = [by_policy[policy].as_dict() for policy in sorted(by_policy)]
    if len(hints) > MAX_SLIMMER_BASES:
        cuts.append(f"slimmerBases: {len(hints) - MAX_SLIMMER_BASES} of {len(hints)} not kept")
    return hints[:MAX_SLIMMER_BASES]


def _base_out(base: BaseImage) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": base.reference, "method": base.method.value}
    if base.digest is not None:
        out["digest"] = base.digest
    if base.shared_layers is not None:
        out["sharedLayers"] = base.shared_layers
    return out


def _platform_out(index: int, image: PlatformImage, cuts: list[str]) -> dict[str, Any]:
    where = f"platforms[{index}]"
    platform: dict[str, Any] = {"os": image.platform.os, "architecture": image.platform.architecture}
    if image.platform.variant is not None:
        platform["variant"] = image.platform.variant
    out: dict[str, Any] = {
        "platform": platform,
        "manifestDigest": image.manifest_digest,
        "configDigest": image.config_digest,
        "configSize": image.config_size,
        "compressedSize": image.compressed_size,
        "user": image.user,
    }
    if (uncompressed := image.uncompressed_size) is not None:
        out["uncompressedSize"] = uncompressed
    if image.created is not None:
        out["created"] = image.created.isoformat()
    labels = dict(list(image.labels.items())[:MAX_LABELS])
    if len(image.labels) > MAX_LABELS:
        cuts.append(f"{where}.labels: {len(image.labels) - MAX_LABELS} of {len(image.labels)} not kept")
    if any(len(value) > MAX_LABEL_CHARS for value in labels.values()):
        cuts.append(f"{where}.labels: values longer than {MAX_LABEL_CHARS} characters shortened")
        labels = {key: shorten(value, MAX_LABEL_CHARS) for key, value in labels.items()}
    if labels:
        out["labels"] = labels
    if image.annotated_base is not None:
        out["annotatedBase"] = _base_out(image.annotated_base)
    if len(image.layers) > MAX_LAYERS:
        # The sizes could not be summed again from a part: the platform is kept for people, not for verdicts.
        cuts.append(f"{where}.layers: {len(image.layers) - MAX_LAYERS} of {len(image.layers)} not kept")
        out["incomplete"] = True
    out["layers"] = [_layer_out(layer) for layer in image.layers[:MAX_LAYERS]]
    if shortened := sum(len(layer.created_by or "") > MAX_CREATED_BY for layer in image.layers[:MAX_LAYERS]):
        cuts.append(f"{where}.layers: {shortened} createdBy shortened to {MAX_CREATED_BY} characters")
    if image.content is not None:
        out["content"] = _content_out(image.content, where, cuts)
    return out


def _layer_out(layer: Layer) -> dict[str, Any]:
    out: dict[str, Any] = {"digest": layer.digest, "size": layer.size, "mediaType": layer.media_type}
    if layer.diff_id is not None:
        out["diffID"] = layer.diff_id
    if layer.uncompressed_size is not None:
        out["uncompressedSize"] = layer.uncompressed_size
    if layer.uncompressed_estimated:
        out["uncompressedEstimated"] = True
    if layer.created_by is not None:
        out["createdBy"] = shorten(layer.created_by, MAX_CREATED_BY)
    return out


def _content_out(content: ContentFacts, where: str, cuts: list[str]) -> dict[str, Any]:
    packages = content.packages
    package_out: dict[str, Any] = {"managers": [manager.value for manager in packages.managers]}
    if packages.count is not None:
        package_out["count"] = packages.count
    if packages.unknown_reason is not None:
        package_out["unknownReason"] = packages.unknown_reason
    incomplete: list[str] = []
    if len(packages.names) > MAX_PACKAGE_NAMES:
        incomplete.append("packages.names")
        cuts.append(f"{where}.content.packages.names: {len(packages.names)} names, not kept")
    else:
        package_out["names"] = list(packages.names)
    out: dict[str, Any] = {
        "packages": package_out,
        "efficiency": content.efficiency,
        "wastedBytes": content.wasted_bytes,
        "fileCount": content.file_count,
    }
    if len(content.tools) > MAX_TOOLS:
        incomplete.append("tools")
        cuts.append(f"{where}.content.tools: {len(content.tools)} tools, not kept")
    else:
        out["tools"] = [
            {"category": tool.category, "what": tool.what, "byPackage": tool.by_package, "layer": tool.layer_index}
            for tool in content.tools
        ]
    if len(content.executables) > MAX_EXECUTABLES:
        incomplete.append("executables")
        cuts.append(f"{where}.content.executables: {len(content.executables)} paths, not kept")
    else:
        out["executables"] = _executables_out(content.executables)
    if incomplete:
        out["incomplete"] = incomplete
    return out


def _executables_out(executables: Sequence[tuple[str, int]]) -> dict[str, list[Any]]:
    """Two parallel lists, in the analysis' order: a layer index costs a few bytes, an object per path many."""
    return {"paths": [path for path, _ in executables], "layers": [layer for _, layer in executables]}


def _summary(facts: ImageFacts, hints: Sequence[Mapping[str, str | int]] = ()) -> dict[str, Any]:
    """What ``kubectl get imagereports`` shows: the largest platform read (what the heaviest node pulls), and
    the largest saving a slimmer base would bring."""
    summary: dict[str, Any] = {}
    if hints:
        summary["saves"] = format_bytes(max(int(hint["savedBytes"]) for hint in hints))
    if not facts.platforms:
        return summary
    largest = max(facts.platforms, key=lambda image: image.compressed_size)
    summary["compressedBytes"] = largest.compressed_size
    summary["compressedSize"] = format_bytes(largest.compressed_size)
    contents = [image.content for image in facts.platforms if image.content is not None]
    if contents:
        counts = [content.packages.count for content in contents]
        known = [count for count in counts if count is not None]
        summary["packages"] = str(max(known)) if len(known) == len(counts) else "unknown"
        categories: dict[str, int] = {}
        for content in contents:
            for tool in content.tools:
                categories[tool.category] = categories.get(tool.category, 0) + 1
        summary["tools"] = ",".join(f"{name}({count})" for name, count in sorted(categories.items())) or "none"
        summary["efficiency"] = f"{min(content.efficiency for content in contents):.4f}"
    return summary


def _fit(report: dict[str, Any], cuts: list[str]) -> None:
    """Cut what is largest and least needed until the report fits: executables, then contents, then commands."""

    def size() -> int:
        return len(json.dumps(report, separators=(",", ":")))

    if size() <= MAX_REPORT_BYTES:
        return
    for index, platform in enumerate(report["platforms"]):
        content = platform.get("content")
        if content is not None and content.pop("executables", None) is not None:
            content.setdefault("incomplete", []).append("executables")
            cuts.append(f"platforms[{index}].content.executables: dropped to fit the report")
            if size() <= MAX_REPORT_BYTES:
                return
    for index, platform in enumerate(report["platforms"]):
        if platform.pop("content", None) is not None:
            cuts.append(f"platforms[{index}].content: dropped to fit the report")
            if size() <= MAX_REPORT_BYTES:
                return
    for index, platform in enumerate(report["platforms"]):
        for layer in platform["layers"]:
            layer.pop("createdBy", None)
        platform.pop("labels", None)
        cuts.append(f"platforms[{index}]: layer commands and labels dropped to fit the report")
        if size() <= MAX_REPORT_BYTES:
            return
    # Still too large (thousands of platforms' worth of layers): keep the summary only, for people.
    for platform in report["platforms"]:
        platform["layers"] = []
        platform["incomplete"] = True
    cuts.append("platforms: layers dropped to fit the report")


# --- body → facts ------------------------------------------------------------------------------------------


def read_report(body: Mapping[str, Any]) -> StoredReport:
    """The facts an ImageReport holds; raises GarbledReport for anything a verdict could not rely on."""
    try:
        return _read(body)
    except GarbledReport:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise GarbledReport(f"ImageReport {_name_of(body)!r} is garbled: {error!r}") from None


def _name_of(body: Any) -> str:
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    return str(metadata.get("name")) if isinstance(metadata, Mapping) else "?"


def _read(body: Mapping[str, Any]) -> StoredReport:
    name = _name_of(body)
    report = _mapping(body["report"], "report")
    if report.get("format") != FORMAT:
        raise GarbledReport(f"ImageReport {name!r} has format {report.get('format')!r}, not {FORMAT}")
    digest = _string(report["digest"], "digest")
    if not _DIGEST.match(digest):
        raise GarbledReport(f"ImageReport {name!r} names no digest ({digest!r})")
    if report_name(digest) != name:
        raise GarbledReport(f"ImageReport {name!r} is filed under another name than its digest {digest}")
    references = tuple(_string(item, "references[]") for item in _list(report.get("references", [])))
    truncated = tuple(_string(item, "truncated[]") for item in _list(report.get("truncated", [])))
    platforms = [_mapping(item, "platforms[]") for item in _list(report.get("platforms", []))]
    images = tuple(_platform_in(item) for item in platforms)
    complete = not any(item.get("incomplete") for item in platforms)
    listed = tuple(_platform_of(item) for item in _list(report.get("listedPlatforms", [])))
    hints = tuple(_hint_in(_mapping(item, "slimmerBases[]")) for item in _list(report.get("slimmerBases", [])))
    facts = ImageFacts(
        digest=digest,
        media_type=_string(report["mediaType"], "mediaType"),
        platforms=images,
        annotated_base=_base_in(report.get("annotatedBase")),
        listed_platforms=listed,
    )
    return StoredReport(
        digest=digest,
        facts=facts if complete else None,
        references=references,
        truncated=truncated,
        fingerprint=report_fingerprint(report),
        slimmer_bases=hints,
        pulls=_pulls_in(digest, report.get("pulls")),
    )


def _pulls_in(digest: str, value: Any) -> ImagePulls | None:
    if value is None:
        return None
    try:
        return pulls_in(digest, _mapping(value, "pulls"))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, GarbledReport):
        return None


def report_fingerprint(report: Mapping[str, Any]) -> str:
    """A digest of a ``report`` field that two equal fields share, whatever the order of their keys."""
    canonical = json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hint_in(item: Mapping[str, Any]) -> SlimmerBase:
    hint = SlimmerBase(
        policy=_string(item["policy"], "slimmerBases[].policy"),
        image=_string(item["image"], "slimmerBases[].image"),
        base=_string(item["base"], "slimmerBases[].base"),
        base_size=_count(item["baseBytes"], "slimmerBases[].baseBytes"),
        alternative=_string(item["alternative"], "slimmerBases[].alternative"),
        alternative_size=_count(item["alternativeBytes"], "slimmerBases[].alternativeBytes"),
        platform=Platform.parse(_string(item["platform"], "slimmerBases[].platform")),
    )
    saved = _count(item["savedBytes"], "slimmerBases[].savedBytes")
    if hint.alternative_size >= hint.base_size or saved != hint.saving:
        raise GarbledReport(
            f"slimmerBases: {hint.alternative} ({hint.alternative_size} bytes) saving {saved} bytes on "
            f"{hint.base} ({hint.base_size} bytes) does not add up"
        )
    return hint


def _platform_of(value: Any) -> Platform:
    if isinstance(value, str):
        return Platform.parse(value)
    item = _mapping(value, "platform")
    variant = item.get("variant")
    return Platform(
        _string(item["os"], "os"),
        _string(item["architecture"], "architecture"),
        None if variant is None else _string(variant, "variant"),
    )


def _platform_in(item: Mapping[str, Any]) -> PlatformImage:
    created = item.get("created")
    labels = {_string(k, "labels"): _string(v, "labels") for k, v in _mapping(item.get("labels", {}), "labels").items()}
    content = item.get("content")
    return PlatformImage(
        platform=_platform_of(item["platform"]),
        manifest_digest=_string(item["manifestDigest"], "manifestDigest"),
        config_digest=_string(item["configDigest"], "configDigest"),
        config_size=_count(item["configSize"], "configSize"),
        layers=tuple(_layer_in(_mapping(layer, "layers[]")) for layer in _list(item["layers"])),
        user=_string(item.get("user", ""), "user"),
        labels=labels,
        created=None if created is None else datetime.fromisoformat(_string(created, "created")),
        annotated_base=_base_in(item.get("annotatedBase")),
        content=None if content is None else _content_in(_mapping(content, "content")),
    )


def _layer_in(item: Mapping[str, Any]) -> Layer:
    diff_id, uncompressed, created_by = item.get("diffID"), item.get("uncompressedSize"), item.get("createdBy")
    return Layer(
        digest=_string(item["digest"], "layer digest"),
        size=_count(item["size"], "layer size"),
        media_type=_string(item["mediaType"], "layer mediaType"),
        diff_id=None if diff_id is None else _string(diff_id, "diffID"),
        uncompressed_size=None if uncompressed is None else _count(uncompressed, "uncompressedSize"),
        created_by=None if created_by is None else _string(created_by, "createdBy"),
        uncompressed_estimated=_flag(item.get("uncompressedEstimated", False), "uncompressedEstimated"),
    )


def _content_in(item: Mapping[str, Any]) -> ContentFacts | None:
    """None (unknown, as if never read) when the writer had to leave out a part a rule reads."""
    if item.get("incomplete"):
        return None
    packages = _mapping(item["packages"], "packages")
    count, reason = packages.get("count"), packages.get("unknownReason")
    efficiency = item["efficiency"]
    if isinstance(efficiency, bool) or not isinstance(efficiency, int | float) or not math.isfinite(efficiency):
        raise GarbledReport(f"efficiency {efficiency!r} is not a number")
    if not 0 <= efficiency <= 1:
        raise GarbledReport(f"efficiency {efficiency!r} is not between 0 and 1")
    found = _mapping(item["executables"], "executables")
    paths, layers = _list(found["paths"]), _list(found["layers"])
    if len(paths) != len(layers):
        raise GarbledReport("executables: as many paths as layers were expected")
    executables = [
        (_string(path, "executables.paths[]"), _count(layer, "executables.layers[]"))
        for path, layer in zip(paths, layers, strict=True)
    ]
    return ContentFacts(
        packages=PackageCount(
            count=None if count is None else _count(count, "packages.count"),
            managers=tuple(PackageManager(_string(m, "packages.managers[]")) for m in _list(packages["managers"])),
            names=tuple(_string(name, "packages.names[]") for name in _list(packages["names"])),
            unknown_reason=None if reason is None else _string(reason, "packages.unknownReason"),
        ),
        tools=tuple(_tool_in(_mapping(tool, "tools[]")) for tool in _list(item["tools"])),
        executables=tuple(executables),
        efficiency=float(efficiency),
        wasted_bytes=_count(item["wastedBytes"], "wastedBytes"),
        file_count=_count(item["fileCount"], "fileCount"),
    )


def _tool_in(item: Mapping[str, Any]) -> FoundTool:
    return FoundTool(
        category=_string(item["category"], "tools[].category"),
        what=_string(item["what"], "tools[].what"),
        by_package=_flag(item["byPackage"], "tools[].byPackage"),
        layer_index=_count(item["layer"], "tools[].layer"),
    )


def _base_in(value: Any) -> BaseImage | None:
    if value is None:
        return None
    item = _mapping(value, "annotatedBase")
    digest, shared = item.get("digest"), item.get("sharedLayers")
    return BaseImage(
        reference=_string(item["reference"], "annotatedBase.reference"),
        method=BaseImageMethod(_string(item["method"], "annotatedBase.method")),
        digest=None if digest is None else _string(digest, "annotatedBase.digest"),
        shared_layers=None if shared is None else _count(shared, "annotatedBase.sharedLayers"),
    )


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise GarbledReport(f"{what} is not an object")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise GarbledReport(f"a list was expected, not {type(value).__name__}")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise GarbledReport(f"{what} is not a string")
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GarbledReport(f"{what} is not a count ({value!r})")
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise GarbledReport(f"{what} is not true or false")
    return value


# --- learning more -------------------------------------------------------------------------------------------


def merged(known: ImageFacts | None, learned: ImageFacts) -> ImageFacts:
    """What a report should hold once ``learned`` is added to what it ``known``: every platform read, each at
    its most complete (uncompressed sizes, content), so a webhook that read less never makes a report poorer."""
    if known is None or known.digest != learned.digest:
        return learned
    by_platform: dict[Platform, PlatformImage] = {image.platform: image for image in known.platforms}
    for image in learned.platforms:
        before = by_platform.get(image.platform)
        by_platform[image.platform] = image if before is None else _richer(before, image)
    return replace(
        learned,
        platforms=tuple(by_platform.values()),
        annotated_base=learned.annotated_base or known.annotated_base,
        listed_platforms=learned.listed_platforms or known.listed_platforms,
    )


def _richer(before: PlatformImage, after: PlatformImage) -> PlatformImage:
    if before.manifest_digest != after.manifest_digest:
        return after
    chosen = after
    if after.uncompressed_size is None and before.uncompressed_size is not None:
        chosen = replace(chosen, layers=before.layers)
    if after.content is None and before.content is not None:
        chosen = replace(chosen, content=before.content)
    return chosen
