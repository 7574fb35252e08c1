"""``forbiddenTools``: build and admin tools that have no place in what runs (compilers, package managers, …).

Each entry is a category of ``core.model.tools`` (found by executable name on a bin path and by package name) or a
path glob matched against the final file system's executables. A finding per entry and platform names what
was found, grouped by the layer that added it, with that layer's instruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from slimguard.core.evaluation.rules.blame import BLAMED_LAYERS, layer_step
from slimguard.core.evaluation.rules.common import PolicyRule, Reads, Subject, content_or_pending, reads_contents
from slimguard.core.facts.content import ContentFacts
from slimguard.core.facts.image_facts import PlatformImage
from slimguard.core.model.policy import Rules
from slimguard.core.model.tools import category_named, executable_rank, package_rank

SHOWN_PER_KIND = 4
HINT = "Build in a builder stage and COPY only the result into a final stage that has none of them."
FORBIDDEN_TOOLS = PolicyRule(
    "forbiddenTools",
    summary="No forbidden tools are in the image",
    description="Each required platform's final file system holds no tool of the forbiddenTools categories "
    "(found by executable name and by package) and no executable its path globs match.",
    fix=HINT,
)
RULE = FORBIDDEN_TOOLS.name


def reads(rules: Rules) -> Reads:
    return reads_contents(rules, when=bool(rules.forbidden_tools))


@dataclass(frozen=True, slots=True)
class Found:
    what: str
    by_package: bool
    layer: int
    rank: int


def found_for(entry: str, content: ContentFacts) -> list[Found]:
    """What ``entry`` (a category or a path glob) finds in the final file system."""
    category = category_named(entry)
    if category is None:
        glob = entry.lstrip("/")
        return [Found(path, False, layer, 0) for path, layer in content.executables if fnmatchcase(path, glob)]
    found = []
    for tool in content.tools:
        if tool.category != entry:
            continue
        rank = package_rank(category, tool.what) if tool.by_package else executable_rank(category, tool.what)
        found.append(Found(tool.what, tool.by_package, tool.layer_index, rank if rank is not None else 999))
    return found


def check(subject: Subject) -> None:
    entries = subject.rules.forbidden_tools
    if not entries:
        return
    report = subject.report
    for image in subject.images:
        content = content_or_pending(report, RULE, image)
        if content is None:
            continue
        for entry in entries:
            found = found_for(entry, content)
            if not found:
                continue
            what = entry if category_named(entry) else f"files matching {entry}"
            report.violation(
                RULE,
                f"has {what} ({image.platform}): {_by_layer(image, found)}; {report.policy_name} forbids "
                f"{entry} in the final image. {HINT}",
                limit=entry,
                actual=str(len(found)),
            )


def _by_layer(image: PlatformImage, found: Sequence[Found]) -> str:
    layers: dict[int, list[Found]] = {}
    for item in found:
        layers.setdefault(item.layer, []).append(item)
    ordered = sorted(layers.items(), key=lambda pair: (-len(pair[1]), pair[0]))
    parts = [f"{layer_step(image, layer)} adds {_items(items)}" for layer, items in ordered[:BLAMED_LAYERS]]
    if len(ordered) > BLAMED_LAYERS:
        parts.append(f"and {len(ordered) - BLAMED_LAYERS} more layers")
    return "; ".join(parts)


def _items(items: Sequence[Found]) -> str:
    def listed(kind: Sequence[Found], show: str) -> str:
        ranked = sorted(kind, key=lambda item: (item.rank, item.what))
        names = ", ".join(show.format(item.what) for item in ranked[:SHOWN_PER_KIND])
        more = len(ranked) - SHOWN_PER_KIND
        return names + (f" (+{more} more)" if more > 0 else "")

    packages = [item for item in items if item.by_package]
    paths = [item for item in items if not item.by_package]
    said = []
    if packages:
        said.append(("package " if len(packages) == 1 else "packages ") + listed(packages, "{}"))
    if paths:
        said.append(listed(paths, "/{}"))
    return " and ".join(said)
