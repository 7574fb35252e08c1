"""The chart's two controller replicas on the real node (issue 22, "a highly available controller"): the leader's Pod
deleted, as `kubectl delete pod`, a drain or a rollout does, 5 times in a row; each time the standby Pod takes the
Lease and labels a Deployment created after the deletion, which only a leader can. Measured from the deletion to
the new leader's Lease (its acquireTime) and to that label; printed as ``LEADER-FAILOVER`` lines, never asserted
beyond a timeout. The chart is installed by `helm install` with only the values a user sets, from slimguard's own
image, as in test_install_on_node.py; this module installs and uninstalls its own release.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import STATUS, deployment, image_policy, namespace, wait_for
from kubernetes import config as kube_config
from kubernetes.client import AppsV1Api

from slimguard import __version__
from slimguard_testbed import DockerEngine, oci
from slimguard_testbed.images import FixtureImages
from slimguard_testbed.images.engine_built import engine_image_artifact
from slimguard_testbed.images.self_image import build_self_image
from slimguard_testbed.node import RealNode

pytestmark = pytest.mark.timeout(1200)

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "slimguard"
RELEASE_NAMESPACE = "slimguard-system"
LEASE = "slimguard-controller"
WORKLOADS = "node-failover"
TRIES = 5


def measured(what: str, **numbers: Any) -> None:
    print(f"LEADER-FAILOVER {json.dumps({'what': what, **numbers}, sort_keys=True)}")


def helm_run(helm: str, node: RealNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args, "--kubeconfig", str(node.admin_kubeconfig)], capture_output=True, text=True, check=False
    )


@dataclass(frozen=True)
class ControllerPods:
    node: RealNode

    def ready(self) -> list[str]:
        """The controller Pods that are Ready and not being deleted."""
        found = self.node.kubectl(
            "get", "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=controller", "-o", "json"
        ).stdout
        return [
            pod["metadata"]["name"]
            for pod in json.loads(found)["items"]
            if "deletionTimestamp" not in pod["metadata"]
            and all(status.get("ready") for status in pod["status"].get("containerStatuses") or [{}])
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
    real_node: RealNode,
    docker_engine: DockerEngine,
    fixture_images: FixtureImages,
    helm: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControllerPods]:
    # slimguard's image built from this checkout now (the engine's cache makes it quick), and taken by its id at
    # once: the engine is shared, and its fixed tag may name another checkout's build by the time the real node
    # is ours.
    client = docker_engine.client(timeout=1200)
    try:
        tag = build_self_image(
            client,
            repo_root=REPO,
            node_base=client.images.pull(fixture_images.node_base.ref).id,
            debian_fat=client.images.pull(fixture_images.debian_fat.ref).id,
            workdir=tmp_path_factory.mktemp("self-image"),
        )
        artifact = engine_image_artifact(client, client.images.get(tag).id, name="self-image-for-failover")
    finally:
        client.close()
    digest = oci.push(real_node.registry.endpoint, "slimguard/slimguard", __version__, artifact)
    image = real_node.image("slimguard/slimguard", __version__)
    real_node.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    real_node.plane.wait_established()
    result = helm_run(
        helm, real_node,
        "install", "slimguard", str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        "--set", f"image.repository={image.rsplit(':', 1)[0]}",
        "--set", f"image.tag={__version__}",
        # By digest: the node's containerd keeps images between sessions, and a tag it already holds (an
        # earlier build of the same version) would be run as it is (imagePullPolicy IfNotPresent).
        "--set", f"image.digest={digest}",
        "--set", "registries.allowPrivate=true",
        "--set-file", f"registries.caBundle={real_node.registry.ca_file}",
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    logs = real_node.kubectl(
        "logs", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=controller", "--tail=30", check=False
    ).stdout
    assert result.returncode == 0, result.stdout + result.stderr + logs[-4000:]
    yield ControllerPods(real_node)
    uninstalled = helm_run(helm, real_node, "uninstall", "slimguard", "--namespace", RELEASE_NAMESPACE, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    real_node.kubectl("delete", "namespace", WORKLOADS, "--wait=false", "--ignore-not-found")
    real_node.kubectl("delete", "imagepolicy", "node-failover", "--ignore-not-found")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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

        def labelled(name: str = name) -> datetime | None:
            found = apps.read_namespaced_deployment(name, WORKLOADS)
            return datetime.now(UTC) if STATUS in (found.metadata.labels or {}) else None

        labelled_at = wait_for(f"{name} to be labelled by the new leader", labelled, timeout=120, every=0.1)
        lease = controllers.lease()
        holder = str(lease["holderIdentity"]).rpartition("_")[0]
        # The standby, as a rule; the Pod replacing the deleted one could win the race if it started first.
        assert holder != leader, lease
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
