"""The third tier: a real node (kubelet, containerd, CNI, kube-proxy, scheduler) whose Pods run on this machine.

Every test here is marked ``node`` (``pytest -m node`` runs this tier alone, ``-m "not node"`` the others). A
machine runs one real node at a time: the session's (``real_node``) serves the e2e registry's storage on the
node's bridge, so every fixture image is pullable by containerd at once. Tests marked ``own_node`` start nodes of
their own to check start and teardown, so they are moved ahead of everything else: the session's node then
starts after them and stays up until the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slimguard_testbed import CertificateAuthority
from slimguard_testbed.node import RealNode

NODE_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(NODE_DIR):
            item.add_marker(pytest.mark.node)
    own_node = [item for item in items if item.get_closest_marker("own_node")]
    if own_node:
        items[:] = own_node + [item for item in items if not item.get_closest_marker("own_node")]


@pytest.fixture(scope="session")
def real_node(
    tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority, registry_storage: Path
) -> Iterator[RealNode]:
    """The session's real node; its registry serves the session registry's storage (same CA)."""
    with RealNode(
        workdir=tmp_path_factory.mktemp("real-node"), ca=testbed_ca, registry_storage=registry_storage
    ) as node:
        print(f"real node Ready in {node.ready_seconds:.1f} s")
        yield node
