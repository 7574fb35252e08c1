"""An image's layers, in order, → its ``ContentFacts``. Pure: the walker's LayerContents in, a summary out.

Two views of the same layers:
- the **final file system**, as a container runtime unpacks it (OCI whiteouts and opaque directories apply
  to the layers below; a file replacing a directory removes what was in it): packages, tools, executables;
- **dive's accounting** (``dive_efficiency``), replicated from dive v0.13.1 (``dive/filetree/efficiency.go``,
  ``file_tree.go``, ``file_node.go``) so a team moving its ``.dive-ci`` thresholds into the cluster gets the
  same numbers, including where dive's tree differs from the runtime's (it ignores opaque markers, counts a
  file's whiteout as 0 bytes and a directory's as everything it deletes).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from slimguard.core.facts.content import (
    ContentFacts,
    EntryKind,
    FoundTool,
    LayerContent,
    LayerEntry,
    PackageCount,
    PackageManager,
)
from slimguard.core.facts.image_facts import Layer
from slimguard.core.facts.packages import UnreadableDatabase, database_of, installed_names, unreadable_reason
from slimguard.core.model.tools import CATEGORIES, executable_category, package_category

_MAX_LINK_HOPS = 32


class ContentMismatch(ValueError):
    """Layer contents that are not the image's layers (wrong count or digests): a caller's bug, named."""


def analyse_content(layers: Sequence[Layer], contents: Sequence[LayerContent]) -> ContentFacts:
    """What the image whose ``layers`` (from its manifest, in order) hold, given each layer's content."""
    if len(layers) != len(contents) or any(
        layer.digest != content.digest for layer, content in zip(layers, contents, strict=True)
    ):
        raise ContentMismatch("layer contents do not match the image's layers")
    tree = FinalTree.of(contents)
    packages, package_layers = _packages(tree, contents)
    executables = tree.executables()
    tools = _tools(executables, packages, package_layers)
    efficiency, wasted = dive_efficiency(contents)
    return ContentFacts(
        packages=packages,
        tools=tools,
        executables=executables,
        efficiency=efficiency,
        wasted_bytes=wasted,
        file_count=len(tree.entries),
    )


# --- the final file system --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placed:
    entry: LayerEntry
    layer: int


@dataclass
class FinalTree:
    """Path → the entry that is there after every layer, and the layer that put it there."""

    entries: dict[str, Placed] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, contents: Sequence[LayerContent]) -> FinalTree:
        tree = cls()
        for index, content in enumerate(contents):
            # Whiteouts and opaque markers hide what the layers *below* have: apply them before this layer adds.
            for entry in content.entries:
                if entry.kind is EntryKind.WHITEOUT:
                    tree.remove(entry.path)
                elif entry.kind is EntryKind.OPAQUE:
                    tree.remove_children(entry.path)
            for entry in content.entries:
                if entry.kind not in (EntryKind.WHITEOUT, EntryKind.OPAQUE):
                    tree.put(entry, index)
        return tree

    def put(self, entry: LayerEntry, layer: int) -> None:
        before = self.entries.get(entry.path)
        if before is not None and before.entry.kind is EntryKind.DIRECTORY and entry.kind is not EntryKind.DIRECTORY:
            self.remove_children(entry.path)
        self.entries[entry.path] = Placed(entry, layer)
        parent = posixpath.dirname(entry.path)
        self.children.setdefault(parent, set()).add(entry.path)

    def remove(self, path: str) -> None:
        self.remove_children(path)
        if self.entries.pop(path, None) is not None:
            self.children.get(posixpath.dirname(path), set()).discard(path)

    def remove_children(self, path: str) -> None:
        for child in self.children.pop(path, set()):
            self.remove_children(child)
            self.entries.pop(child, None)

    def resolve(self, path: str) -> Placed | None:
        """The entry ``path`` leads to, following symbolic links in every component (as the kernel would)."""
        hops = 0
        parts = [part for part in path.split("/") if part]
        resolved: list[str] = []
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            resolved.append(part)
            placed = self.entries.get("/".join(resolved))
            if placed is None:
                return None
            if placed.entry.kind is EntryKind.SYMLINK and placed.entry.link_target is not None:
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    return None
                resolved.pop()
                target = placed.entry.link_target
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p] + parts
        return self.entries.get("/".join(resolved)) if resolved else None

    def executables(self) -> tuple[tuple[str, int], ...]:
        """(path, layer) of every executable file, hard link, or symbolic link to an executable file."""
        found = []
        for path, placed in sorted(self.entries.items()):
            entry = placed.entry
            if entry.kind is EntryKind.FILE or entry.kind is EntryKind.HARDLINK:
                executable = entry.executable
            elif entry.kind is EntryKind.SYMLINK:
                target = self.resolve(path)
                executable = (
                    target is not None
                    and target.entry.kind in (EntryKind.FILE, EntryKind.HARDLINK)
                    and target.entry.executable
                )
            else:
                executable = False
            if executable:
                found.append((path, placed.layer))
        return tuple(found)


# --- packages ---------------------------------------------------------------------------------------------


def _packages(tree: FinalTree, contents: Sequence[LayerContent]) -> tuple[PackageCount, dict[str, int]]:
    """The installed packages of the final file system, and for each the layer that installed it."""
    names: list[str] = []
    managers: list[PackageManager] = []
    unknown: list[str] = []
    added_by: dict[str, int] = {}
    for path, placed in sorted(tree.entries.items()):
        database = database_of(path)
        if database is None or placed.entry.kind is not EntryKind.FILE:
            continue
        if database.manager not in managers:
            managers.append(database.manager)
        if not database.readable:
            unknown.append(unreadable_reason(path))
            continue
        content = contents[placed.layer]
        if path in content.oversized_databases:
            unknown.append(f"the package database /{path} is larger than slimguard reads")
            continue
        body = content.package_databases.get(path)
        if body is None:
            unknown.append(f"the package database /{path} was not read")
            continue
        try:
            listed = installed_names(path, body)
        except UnreadableDatabase as error:
            unknown.append(str(error))
            continue
        names.extend(listed)
        for name, layer in _installed_by(path, contents, placed.layer, listed).items():
            added_by.setdefault(name, layer)
    if unknown:
        return (
            PackageCount(count=None, managers=tuple(managers), names=tuple(names), unknown_reason="; ".join(unknown)),
            added_by,
        )
    return PackageCount(count=len(names), managers=tuple(managers), names=tuple(names)), added_by


def _installed_by(
    path: str, contents: Sequence[LayerContent], final_layer: int, final: Sequence[str]
) -> dict[str, int]:
    """For each package of the final database, the layer since which every version of it lists the package."""
    since: dict[str, int] = {}
    previous: set[str] = set()
    for index in range(final_layer + 1):
        body = contents[index].package_databases.get(path)
        if body is None:
            continue
        try:
            listed = set(installed_names(path, body))
        except UnreadableDatabase:
            continue
        for name in listed - previous:
            since[name] = index
        previous = listed
    return {name: since.get(name, final_layer) for name in final}


# --- tools ------------------------------------------------------------------------------------------------


def _tools(
    executables: Sequence[tuple[str, int]], packages: PackageCount, package_layers: dict[str, int]
) -> tuple[FoundTool, ...]:
    found: list[FoundTool] = []
    for category in CATEGORIES:
        for path, layer in executables:
            if executable_category(category, path):
                found.append(FoundTool(category.name, path, by_package=False, layer_index=layer))
        for name in dict.fromkeys(packages.names):
            if package_category(category, name):
                found.append(FoundTool(category.name, name, by_package=True, layer_index=package_layers.get(name, 0)))
    return tuple(found)


# --- dive's efficiency and wasted bytes ---------------------------------------------------------------------

_WHITEOUT_PREFIX = ".wh."


class _Node:
    """dive's FileNode: a name, children by name, and the FileInfo that matters here (size, is a directory)."""

    __slots__ = ("children", "is_dir", "name", "parent", "size")

    def __init__(self, name: str, parent: _Node | None, size: int = 0, is_dir: bool = False) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.size = size
        self.is_dir = is_dir

    def copy(self, parent: _Node | None) -> _Node:
        twin = _Node(self.name, parent, self.size, self.is_dir)
        twin.children = {name: child.copy(twin) for name, child in self.children.items()}
        return twin

    @property
    def is_whiteout(self) -> bool:
        return self.name.startswith(_WHITEOUT_PREFIX)

    def path(self) -> str:
        """dive's node.Path(): from the root, the node's own ``.wh.`` prefix dropped."""
        names = []
        node: _Node | None = self
        while node is not None and node.parent is not None:
            name = node.name
            if node is self:
                name = name.removeprefix(_WHITEOUT_PREFIX)
            names.append(name)
            node = node.parent
        return "/" + "/".join(reversed(names))

    def child_first(self) -> Iterator[_Node]:
        """dive's VisitDepthChildFirst: children by name (byte order), each before its parent; the root never."""
        stack: list[tuple[_Node, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if node.parent is not None:
                    yield node
                continue
            stack.append((node, True))
            for name in sorted(node.children, reverse=True):
                stack.append((node.children[name], False))


class _Tree:
    def __init__(self, root: _Node | None = None) -> None:
        self.root = root or _Node("", None)

    def copy(self) -> _Tree:
        return _Tree(self.root.copy(None))

    def get(self, path: str) -> _Node | None:
        node = self.root
        for name in path.strip("/").split("/"):
            if not name:
                continue
            child = node.children.get(name)
            if child is None:
                return None
            node = child
        return node

    def add(self, path: str, size: int, is_dir: bool) -> None:
        """dive's AddPath: missing parents get an empty FileInfo; a ``.wh..wh.`` name stops the walk."""
        names = [name for name in path.strip("/").split("/") if name]
        node = self.root
        for position, name in enumerate(names):
            child = node.children.get(name)
            if child is None:
                if name.startswith(".wh..wh."):
                    return
                child = _Node(name, node)
                node.children[name] = child
            node = child
            if position == len(names) - 1:
                node.size, node.is_dir = size, is_dir

    def remove(self, path: str) -> None:
        node = self.get(path)
        if node is not None and node.parent is not None:
            del node.parent.children[node.name]

    def stack(self, upper: _Tree) -> None:
        """dive's Stack: every node of ``upper``, children first, added over this tree; whiteouts remove."""
        for node in upper.root.child_first():
            if node.is_whiteout:
                self.remove(node.path())
            else:
                self.add(node.path(), node.size, node.is_dir)


def _layer_tree(content: LayerContent) -> _Tree:
    """dive's tree of one layer: each tar entry added by its path, whiteouts under their ``.wh.`` name."""
    tree = _Tree()
    for entry in content.entries:
        if entry.kind is EntryKind.WHITEOUT:
            parent, name = posixpath.split(entry.path)
            tree.add(posixpath.join(parent, _WHITEOUT_PREFIX + name), 0, False)
        elif entry.kind is EntryKind.OPAQUE:
            tree.add(posixpath.join(entry.path, ".wh..wh..opq"), 0, False)
        else:
            tree.add(entry.path, entry.size, entry.kind is EntryKind.DIRECTORY)
    return tree


class _MissingLowerPath(Exception):
    """dive's GetNode error for a whiteout of a path no lower layer has: it ends that layer's visit."""


def dive_efficiency(contents: Sequence[LayerContent]) -> tuple[float, int]:
    """(efficiency, wasted bytes) exactly as dive v0.13.1's ``filetree.Efficiency`` and ``image.Analyze``.

    Per path, over the leaves of every layer's tree: cumulative size and smallest size seen. A whiteout's size
    is 0 when what it deletes was a file, and the sum of every node under it (itself included) when it was a
    directory, looked up in the layers below stacked. efficiency = Σ smallest / Σ cumulative (1.0 if the
    latter is 0); wasted bytes = Σ cumulative of the paths seen in two or more layers.
    """
    cumulative: dict[str, int] = {}
    smallest: dict[str, int] = {}
    seen: dict[str, int] = {}
    trees = [_layer_tree(content) for content in contents]
    lower: _Tree | None = None
    for index, tree in enumerate(trees):
        below = trees[0].copy() if index == 0 else lower
        assert below is not None
        try:
            for node in tree.root.child_first():
                if node.children:
                    continue  # dive visits leaves only
                path = node.path()
                # dive creates the path's record before sizing it: a failed whiteout leaves it with
                # cumulative 0 and smallest -1, which then counts in Σ smallest.
                cumulative.setdefault(path, 0)
                smallest.setdefault(path, -1)
                seen.setdefault(path, 0)
                size = _whiteout_size(below, path) if node.is_whiteout else node.size
                cumulative[path] += size
                smallest[path] = size if smallest[path] < 0 else min(smallest[path], size)
                seen[path] += 1
        except _MissingLowerPath:
            pass  # dive logs "unable to propagate ref tree" and goes on with the next layer
        if index == 0:
            lower = trees[0].copy()
        assert lower is not None
        lower.stack(tree)
    total = sum(cumulative.values())
    efficiency = 1.0 if total == 0 else sum(smallest.values()) / total
    wasted = sum(size for path, size in cumulative.items() if seen[path] >= 2)
    return efficiency, wasted


def _whiteout_size(below: _Tree, path: str) -> int:
    deleted = below.get(path)
    if deleted is None:
        raise _MissingLowerPath(path)
    if not deleted.is_dir:
        return 0
    return sum(node.size for node in deleted.child_first())
