"""The controller's own workload informer, against the real apiserver, as the controller's ServiceAccount:
every object is listed in pages and handed on, changes and deletions arrive by watch, one object the
controller cannot take does not stop the others, and a kind watched as metadata is read whole only where it
was not made by another workload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import pytest
from cluster import apply, deployment, namespace

from slimguard.core.model.workload import made_by_a_workload, normalise
from slimguard.kube.informer import ResourceInformer, http_client
from slimguard.kube.login import connection_info
from slimguard.kube.resources import WORKLOAD_RESOURCES
from slimguard_testbed import ControlPlane

NS = "informer"
NS_MADE = "informer-metadata"
BROKEN = "unobservable"


class Seen:
    """What the informer handed on, in order: (name, first image or None, deleted)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, bool]] = []

    def observe(self, kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        assert kind == "Deployment"
        name = str(body["metadata"]["name"])
        if name == BROKEN:
            raise RuntimeError("the controller cannot take this one")
        containers = ((body.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
        self.events.append((name, containers[0].get("image"), deleted))

    def last(self, name: str) -> tuple[str, str | None, bool] | None:
        return next((event for event in reversed(self.events) if event[0] == name), None)


async def until(what: str, probe: Callable[[], bool]) -> None:
    """A deadline for waiting, never a performance claim."""
    deadline = time.monotonic() + 60
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def in_thread(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


def informer_for(
    kubeconfig: str, seen: Seen, requests: list[httpx.Request], *, page_size: int
) -> tuple[ResourceInformer, httpx.AsyncClient]:
    client = http_client(lambda: connection_info(kubeconfig))

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    client.event_hooks["request"].append(record)
    informer = ResourceInformer(
        "Deployment", WORKLOAD_RESOURCES["Deployment"], lambda: client, seen.observe, page_size=page_size
    )
    return informer, client


async def running(informer: ResourceInformer, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(informer.run())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.timeout(180)
async def test_workloads_are_listed_in_pages_then_changes_and_deletions_arrive_by_watch(
    control_plane: ControlPlane, operator_kubeconfig: str
) -> None:
    names = [f"app-{n}" for n in range(5)]
    await in_thread(
        lambda: apply(
            control_plane,
            namespace(NS),
            *(deployment(name, NS, "registry.example/app:1") for name in [*names, BROKEN]),
        )
    )
    seen, requests = Seen(), list[httpx.Request]()
    informer, client = informer_for(operator_kubeconfig, seen, requests, page_size=2)

    async def scenario() -> None:
        await asyncio.wait_for(informer.synced.wait(), timeout=60)
        listed = {event[0] for event in seen.events}
        assert set(names) <= listed, "every Deployment is handed on by the LIST"
        assert BROKEN not in listed
        pages = [r for r in requests if "watch" not in r.url.params]
        assert all(r.url.params["limit"] == "2" for r in pages)
        assert len(pages) >= 3, "six Deployments, listed in pages of 2"
        assert any("continue" in r.url.params for r in pages)

        await in_thread(
            lambda: control_plane.kubectl("set", "image", "-n", NS, "deployment/app-1", "api=registry.example/app:2")
        )
        await until("the new image by watch", lambda: seen.last("app-1") == ("app-1", "registry.example/app:2", False))
        await in_thread(lambda: control_plane.kubectl("delete", "deployment", "-n", NS, "app-2", "--wait=false"))
        await until("the deletion by watch", lambda: (seen.last("app-2") or ("", "", False))[2])
        assert informer.lists == 1, "a watch that runs on needs no second LIST"

    try:
        await running(informer, scenario)
    finally:
        await client.aclose()
        await in_thread(lambda: control_plane.kubectl("delete", "namespace", NS, "--wait=false"))


def replicaset(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS_MADE},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
        },
    }


@pytest.mark.timeout(180)
async def test_replicasets_made_by_a_deployment_arrive_as_metadata_and_one_made_by_hand_with_its_body(
    control_plane: ControlPlane, operator_kubeconfig: str
) -> None:
    await in_thread(
        lambda: apply(
            control_plane,
            namespace(NS_MADE),
            deployment("owned", NS_MADE, "registry.example/owned:1"),
            replicaset("by-hand", "registry.example/by-hand:1"),
        )
    )
    bodies: dict[str, Mapping[str, Any]] = {}

    def observe(kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        if body["metadata"].get("namespace") == NS_MADE:
            bodies[str(body["metadata"]["name"])] = body

    client = http_client(lambda: connection_info(operator_kubeconfig))
    informer = ResourceInformer(
        "ReplicaSet",
        WORKLOAD_RESOURCES["ReplicaSet"],
        lambda: client,
        observe,
        needs_body=lambda body: not made_by_a_workload(body),
    )

    def owned_replicaset() -> Mapping[str, Any] | None:
        return next((body for name, body in bodies.items() if name.startswith("owned-")), None)

    async def scenario() -> None:
        await until("both ReplicaSets", lambda: "by-hand" in bodies and owned_replicaset() is not None)

    try:
        await running(informer, scenario)
    finally:
        await client.aclose()
        await in_thread(lambda: control_plane.kubectl("delete", "namespace", NS_MADE, "--wait=false"))
    made = owned_replicaset()
    assert made is not None
    assert made["kind"] == "PartialObjectMetadata", "the Deployment's ReplicaSet: metadata only"
    assert "spec" not in made
    assert [ref["kind"] for ref in made["metadata"]["ownerReferences"]] == ["Deployment"]
    by_hand = normalise("ReplicaSet", bodies["by-hand"])
    assert not by_hand.controlled
    assert by_hand.images == ("registry.example/by-hand:1",), "the one made by hand is read whole"
