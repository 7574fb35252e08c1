"""The chart's two controller Pods on the real node (issue 22, "a highly available controller"): the leader's Pod
deleted, as `kubectl delete pod`, a drain or a rollout does, 5 times in a row. A Deployment created at once is
labelled without a loss across the handover: by the old leader while it still holds the Lease (a deleted Pod works
on until the kubelet's SIGTERM stops it, seen once on a cold machine), or by the new one. Another Pod then holds
the Lease, and its first write is timed: on that Deployment, or on one created once it leads when the old leader
wrote the first. Measured from the deletion to the new leader's Lease (its acquireTime) and to that label;
printed as ``LEADER-FAILOVER`` lines, never asserted beyond a timeout. slimguard is installed as
test_install_on_node.py installs it (slimguard_testbed.node.install); this module installs and uninstalls its
own release.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from cluster import STATUS, deployment, image_policy, namespace, wait_for
from kubernetes import config as kube_config
from kubernetes.client import AppsV1Api
from pods import component_pods

from slimguard_testbed import DockerEngine
from slimguard_testbed.images import FixtureImages
from slimguard_testbed.node import RealNode
from slimguard_testbed.node.install import RELEASE, RELEASE_NAMESPACE, install_slimguard, push_self_image
from slimguard_testbed.node.install import helm as helm_run

pytestmark = pytest.mark.timeout(1200)

LEASE = "slimguard-controller"
WORKLOADS = "node-failover"
TRIES = 5


def measured(what: str, **numbers: Any) -> None:
    print(f"LEADER-FAILOVER {json.dumps({'what': what, **numbers}, sort_keys=True)}")


@dataclass(frozen=True)
class ControllerPods:
    node: RealNode

    def ready(self) -> list[str]:
        """The controller Pods that are Ready and not being deleted."""
        return [
            pod["metadata"]["name"]
            for pod in component_pods(self.node, RELEASE_NAMESPACE, "controller")
            if all(status.get("ready") for status in pod["status"].get("containerStatuses") or [{}])
        ]

    def lease(self) -> dict[str, Any]:
        found = self.node.kubectl("get", "lease", LEASE, "-n", RELEASE_NAMESPACE, "-o", "json").stdout
        return dict(json.loads(found)["spec"])

    def pair(self) -> list[str] | None:
        """Two Ready Pods, one of them leading (the Deployment has replaced the Pod deleted last), or None."""
        ready = self.ready()
        return ready if len(ready) == 2 and self.leader() in ready else None

    def leader(self) -> str | None:
        """The Pod named by the Lease's holder (``POD-NAME_suffix``), if it holds it now."""
        holder = self.lease().get("holderIdentity") or ""
        return holder.rpartition("_")[0] or None


@pytest.fixture(scope="module")
def controllers(
    real_node: RealNode, self_image: str, docker_engine: DockerEngine, helm: str
) -> Iterator[ControllerPods]:
    client = docker_engine.client(timeout=600)
    try:
        image = push_self_image(real_node, client, self_image)
    finally:
        client.close()
    install_slimguard(real_node, helm, image)
    yield ControllerPods(real_node)
    uninstalled = helm_run(helm, real_node, "uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    real_node.kubectl("delete", "namespace", WORKLOADS, "--wait=false", "--ignore-not-found")
    real_node.kubectl("delete", "imagepolicy", "node-failover", "--ignore-not-found")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _labelled(apps: AppsV1Api, name: str) -> Callable[[], datetime | None]:
    """When the Deployment carries slimguard's status label: now, else None."""

    def labelled() -> datetime | None:
        found = apps.read_namespaced_deployment(name, WORKLOADS)
        return datetime.now(UTC) if STATUS in (found.metadata.labels or {}) else None

    return labelled


def _held_by_another(controllers: ControllerPods, leader: str | None) -> Callable[[], dict[str, Any] | None]:
    """The Lease, once a Pod other than ``leader`` holds it, else None."""

    def held() -> dict[str, Any] | None:
        lease = controllers.lease()
        return lease if str(lease.get("holderIdentity") or "").rpartition("_")[0] not in ("", leader) else None

    return held


def test_the_standby_pod_takes_over_when_the_leaders_pod_is_deleted_5_times_in_a_row(
    controllers: ControllerPods, fixture_images: FixtureImages
) -> None:
    node = controllers.node
    node.apply(
        yaml.safe_dump_all(
            [
                namespace(WORKLOADS),
                image_policy("node-failover", {"maxCompressedSize": "100Mi"}, namespaces=[WORKLOADS]),
            ]
        )
    )
    image = node.image(fixture_images.busybox.repository, fixture_images.busybox.tag)
    apps = AppsV1Api(kube_config.new_client_from_config(str(node.admin_kubeconfig)))
    taken, written = [], []
    for attempt in range(1, TRIES + 1):
        pair = wait_for("two Ready controller Pods, one of them the leader", controllers.pair, timeout=300)
        leader = controllers.leader()
        (standby,) = [pod for pod in pair if pod != leader]
        name = f"after-delete-{attempt}"
        body = deployment(name, WORKLOADS, image)
        body["spec"]["replicas"] = 0  # judged all the same; no Pod needed
        deleted_at = datetime.now(UTC)
        node.kubectl("delete", "pod", str(leader), "-n", RELEASE_NAMESPACE, "--wait=false")
        node.apply(yaml.safe_dump(body))

        # Labelled without a loss across the handover: by the new leader, or by the old one while it still held
        # the Lease (its Pod is deleted, but it works on until the kubelet's SIGTERM stops it, then releases).
        labelled_at = wait_for(f"{name} to be labelled", _labelled(apps, name), timeout=120, every=0.1)
        lease = wait_for("another Pod to hold the Lease", _held_by_another(controllers, leader), timeout=120, every=0.1)
        holder = str(lease["holderIdentity"]).rpartition("_")[0]
        if labelled_at < _time(lease["acquireTime"]):
            # The old leader's last write: the new leader's first is timed on a Deployment made now.
            name = f"after-delete-{attempt}-handed-over"
            body = deployment(name, WORKLOADS, image)
            body["spec"]["replicas"] = 0
            node.apply(yaml.safe_dump(body))
            labelled_at = wait_for(
                f"{name} to be labelled by the new leader", _labelled(apps, name), timeout=120, every=0.1
            )
        taken.append(round((_time(lease["acquireTime"]) - deleted_at).total_seconds(), 2))
        written.append(round((labelled_at - deleted_at).total_seconds(), 2))
        measured(
            "Pod deleted",
            attempt=attempt,
            lease_taken_s=taken[-1],
            first_workload_write_s=written[-1],
            by="standby" if holder == standby else "replacement",
        )
    measured("Pod deleted summary", lease_taken_s=taken, first_workload_write_s=written, worst_s=max(written))
