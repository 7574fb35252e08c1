"""The Nodes, as both components read them: each Ready node's platform (``ClusterView.observe_node``), for the
policies that list no ``platforms`` (core.model.placement).

Through slimguard's own informer (kube/informer.py: a LIST in pages, then a WATCH), not kopf: kopf LISTs a kind in
one response, and a Node's status lists every image it holds (tens of KB on a busy node), so a 5,000-node cluster
would be one response of hundreds of MB in the controller and in every webhook replica. A page here is decoded,
each Node read for its platform and readiness (and, by the controller, its runtime: engine.pull_ledger), and
dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slimguard.kube.informer import Credentials, KindWatch
from slimguard.kube.resources import NODE_RESOURCE

NODE_PAGE_SIZE = 100
"""Nodes per LIST page: a busy node's status (its image list) is tens of KB, so ~a few MB a page."""


def watch_nodes(
    observe: Callable[[Mapping[str, Any], bool], object], credentials: Credentials, *, component: str
) -> KindWatch:
    """The Nodes' watch, handing each node (body, deleted) to ``observe`` (not started). Every component that
    decides waits for its first LIST, so no first decision judges linux/amd64 for want of the nodes."""

    def hand_on(_kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        observe(body, deleted)

    return KindWatch(
        "Node",
        NODE_RESOURCE,
        credentials,
        hand_on,
        page_size=NODE_PAGE_SIZE,
        component=component,
        absent_is_empty=False,  # the core kind is always served: a 404 is a fault, retried
    )
