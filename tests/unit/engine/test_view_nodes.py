"""The cluster view's node platforms: what the Ready nodes run, told by the Node watch one event at a time."""

from __future__ import annotations

from typing import Any

from slimguard.core.model.platform import Platform
from slimguard.engine.view import ClusterView

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


def node(name: str, arch: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": arch}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"operatingSystem": "linux", "architecture": arch},
        },
    }


def test_a_platform_is_run_while_one_ready_node_runs_it() -> None:
    view = ClusterView()
    assert view.node_platforms == frozenset()
    assert view.observe_node(node("a", "amd64")) is True
    assert view.observe_node(node("b", "arm64")) is True
    assert view.observe_node(node("c", "arm64")) is False  # arm64 was run already
    assert view.node_platforms == {AMD64, ARM64}
    assert view.observe_node(node("b", "arm64", ready=False)) is False  # c still runs arm64
    assert view.observe_node(node("c", "arm64"), deleted=True) is True
    assert view.node_platforms == {AMD64}
    assert view.observe_node(node("b", "arm64")) is True  # Ready again
    assert view.node_platforms == {AMD64, ARM64}


def test_a_node_event_that_changes_nothing_about_its_platform_changes_nothing() -> None:
    view = ClusterView()
    view.observe_node(node("a", "amd64"))
    assert view.observe_node(node("a", "amd64")) is False
    assert view.observe_node(node("gone", "amd64"), deleted=True) is False
    assert view.observe_node({"metadata": {"name": "garbled"}, "status": "x"}) is False
    assert view.node_platforms == {AMD64}


def test_ten_thousand_node_events_keep_one_platform_object_each() -> None:
    view = ClusterView()
    for n in range(5000):
        view.observe_node(node(f"node-{n}", "arm64" if n % 2 else "amd64"))
    kept = {id(platform) for platform in view._node_platforms.values()}
    assert len(kept) == 2
    for n in range(5000):
        view.observe_node(node(f"node-{n}", "arm64"), deleted=True)
    assert view.node_platforms == frozenset()
