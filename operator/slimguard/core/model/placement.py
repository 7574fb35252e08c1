"""Which platforms a workload's image is judged on: those the cluster's Ready nodes run, narrowed by the pod
spec's pin on ``kubernetes.io/arch`` and ``kubernetes.io/os`` (its nodeSelector, its required node affinity).

A policy that lists ``platforms`` is judged on those and nothing here applies (``Rules.judged_on``). One that
lists none used to be judged on linux/amd64 alone, so an index whose arm64 image is 350 MiB was admitted in a
cluster of arm64 nodes; the platforms of the nodes are a fact handed in (``engine.view`` keeps them from a
watch), never read here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from slimguard.core.model.platform import DEFAULT_PLATFORMS, Platform

ARCH_LABELS = ("kubernetes.io/arch", "beta.kubernetes.io/arch")
OS_LABELS = ("kubernetes.io/os", "beta.kubernetes.io/os")
"""The well-known labels every kubelet sets on its Node (the beta ones are deprecated, still set and still
selected on by older manifests)."""
_FIELD_OF_LABEL = {**dict.fromkeys(ARCH_LABELS, "architecture"), **dict.fromkeys(OS_LABELS, "os")}


def node_platform(body: Mapping[str, Any]) -> Platform | None:
    """The platform a Node runs pods on, or None when it is not Ready (or says no platform).

    ``status.nodeInfo`` is what the kubelet reports; the ``kubernetes.io/os`` and ``/arch`` labels stand in
    when it is empty (a Node object made through the API with labels only).
    """
    status = _mapping(body.get("status"))
    ready = any(
        _mapping(condition).get("type") == "Ready" and _mapping(condition).get("status") == "True"
        for condition in _list(status.get("conditions"))
    )
    if not ready:
        return None
    info = _mapping(status.get("nodeInfo"))
    labels = _mapping(_mapping(body.get("metadata")).get("labels"))
    operating_system = str(info.get("operatingSystem") or labels.get(OS_LABELS[0]) or "")
    architecture = str(info.get("architecture") or labels.get(ARCH_LABELS[0]) or "")
    return Platform.of_node(operating_system, architecture)


@dataclass(frozen=True, slots=True)
class _Requirement:
    """One constraint on a node's os or architecture: ``kubernetes.io/arch In [arm64]``, or a nodeSelector pair."""

    field: str
    """``os`` or ``architecture``."""
    operator: str
    values: frozenset[str]

    def admits(self, platform: Platform) -> bool:
        value = platform.os if self.field == "os" else platform.architecture
        if self.operator == "In":
            return value in self.values
        if self.operator == "NotIn":
            return value not in self.values
        # Exists: every node carries the label. DoesNotExist matches no node; Gt and Lt read integers, which no
        # os or architecture is; an unknown operator is refused by the apiserver before we see it.
        return self.operator == "Exists"


@dataclass(frozen=True, slots=True)
class PlatformPin:
    """What a pod spec says about the platform of the node it may run on."""

    required: tuple[_Requirement, ...] = ()
    """From its nodeSelector: every one must hold."""
    terms: tuple[tuple[_Requirement, ...], ...] = ()
    """From its required node affinity: the terms that constrain the os or architecture, one of which must hold
    (none: the affinity, if any, does not constrain the platform)."""

    @property
    def pinned(self) -> bool:
        return bool(self.required or self.terms)

    def admits(self, platform: Platform) -> bool:
        if not all(requirement.admits(platform) for requirement in self.required):
            return False
        return not self.terms or any(all(r.admits(platform) for r in term) for term in self.terms)

    def named(self) -> tuple[Platform, ...]:
        """The platforms it names (``In`` values, nodeSelector values) that it admits; linux when it names no os."""
        every = (*self.required, *(requirement for term in self.terms for requirement in term))
        architectures = sorted({v for r in every if r.field == "architecture" and r.operator == "In" for v in r.values})
        systems = sorted({v for r in every if r.field == "os" and r.operator == "In" for v in r.values}) or ["linux"]
        found = (Platform.of_node(os, arch) for os in systems for arch in architectures)
        return _in_order(platform for platform in found if platform is not None and self.admits(platform))


ANYWHERE = PlatformPin()
"""A pod spec that pins no platform (nearly all): one object shared by every such workload."""


def platform_pin(pod_spec: Mapping[str, Any]) -> PlatformPin:
    """The pin of a pod spec: its nodeSelector's os and arch labels, and its required node affinity's terms.

    Required affinity terms are alternatives: a term that says nothing of the os or architecture admits every
    platform, and so does the whole affinity then. Preferred affinity pins nothing.
    """
    selector = _mapping(pod_spec.get("nodeSelector"))
    required = tuple(
        _Requirement(_FIELD_OF_LABEL[key], "In", frozenset({str(value)}))
        for key, value in selector.items()
        if key in _FIELD_OF_LABEL
    )
    affinity = _mapping(_mapping(pod_spec.get("affinity")).get("nodeAffinity"))
    node_selector = _mapping(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms: list[tuple[_Requirement, ...]] = []
    for term in _list(node_selector.get("nodeSelectorTerms")):
        constraints = tuple(
            _Requirement(
                _FIELD_OF_LABEL[str(expression["key"])],
                str(expression.get("operator") or ""),
                frozenset(str(value) for value in _list(expression.get("values"))),
            )
            for expression in (_mapping(item) for item in _list(_mapping(term).get("matchExpressions")))
            if isinstance(expression.get("key"), str) and expression["key"] in _FIELD_OF_LABEL
        )
        if not constraints:  # this alternative lets the pod run on any platform
            terms = []
            break
        terms.append(constraints)
    if not required and not terms:
        return ANYWHERE
    return PlatformPin(required, tuple(terms))


class PlatformSource(StrEnum):
    NODES = "Nodes"
    """The platforms the cluster's Ready nodes run (those the pod's pin admits, when it pins)."""
    PIN = "Pin"
    """The pod's pin names platforms no Ready node runs (a node pool scaled to zero), or no node is known."""
    DEFAULT = "Default"
    """No Ready node is known and the pod pins none: linux/amd64, as before slimguard read the nodes."""


@dataclass(frozen=True, slots=True)
class JudgedPlatforms:
    """The platforms a decision judges for the policies that list none, and where they come from."""

    platforms: tuple[Platform, ...]
    source: PlatformSource

    def __str__(self) -> str:
        return ", ".join(str(platform) for platform in self.platforms)


@functools.lru_cache(maxsize=256)  # a handful of node sets and pins: every verdict shares a few objects
def judged_platforms(pin: PlatformPin, nodes: frozenset[Platform]) -> JudgedPlatforms:
    """What a workload with this pin is judged on, in a cluster whose Ready nodes run ``nodes``."""
    fitting = _in_order(platform for platform in nodes if pin.admits(platform))
    if fitting:
        return JudgedPlatforms(fitting, PlatformSource.NODES)
    if named := pin.named():
        return JudgedPlatforms(named, PlatformSource.PIN)
    if nodes:  # a pin no Ready node satisfies and that names no platform: it runs nowhere yet, so judge them all
        return JudgedPlatforms(_in_order(nodes), PlatformSource.NODES)
    return JudgedPlatforms(DEFAULT_PLATFORMS, PlatformSource.DEFAULT)


def _in_order(platforms: Iterable[Platform]) -> tuple[Platform, ...]:
    return tuple(sorted(set(platforms), key=str))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


WITHOUT_NODES = judged_platforms(ANYWHERE, frozenset())
"""What an unpinned workload is judged on when no Ready node is known: linux/amd64."""
