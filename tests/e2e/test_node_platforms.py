"""Platforms from the nodes, on the real apiserver: a policy listing no ``platforms`` judges an index on every
platform the cluster's Ready nodes run, not on linux/amd64 alone.

This tier has no kubelet: the Nodes are objects created through the API, their Ready condition and nodeInfo set
through the status subresource as a kubelet sets them (no node lifecycle controller runs to undo it). The index
is pushed to the test registry: a 256 KiB linux/amd64 image and a 3 MiB linux/arm64 one, against a 1 MiB limit.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cluster import apply, deployment, get, image_policy, namespace, pod, violations, wait_for, wait_for_status

from slimguard_testbed import ControlPlane, Registry, oci
from slimguard_testbed.images.base_variants import push, stand_in
from slimguard_testbed.images.published import FixtureImage
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.webhook import WebhookReplicas

DENIED = 'admission webhook "images.slimguard.dev" denied the request'
KiB, MiB = 1024, 1024 * 1024
LIMIT = {"maxCompressedSize": "1Mi"}
NODES = ("e2e-arm64-node", "e2e-amd64-node")


@pytest.fixture(scope="module")
def fat_on_arm64(registry: Registry) -> FixtureImage:
    """An index whose linux/arm64 image (3 MiB, incompressible) is over the limit and linux/amd64 (256 KiB) is not."""
    index = oci.build_index(
        [
            stand_in("node-platforms-amd64", 256 * KiB),
            stand_in("node-platforms-arm64", 3 * MiB, platform=oci.Platform("linux", "arm64", "v8")),
        ]
    )
    return push(registry.endpoint, "shop/fat-on-arm64", "1.0", index)


@pytest.fixture(scope="module")
def nodes(control_plane: ControlPlane) -> Iterator[None]:
    """Whatever a test made of the Nodes, none is left for the rest of the session (its verdicts would change)."""
    yield
    control_plane.kubectl("delete", "node", *NODES, "--ignore-not-found", "--wait=false")


def make_node(plane: ControlPlane, name: str, arch: str, *, ready: bool = True) -> None:
    """A Node as a kubelet registers it, then its status as the kubelet reports it."""
    if get(plane, "node", name) is None:
        labels = {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux", "kubernetes.io/hostname": name}
        apply(plane, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})
    set_ready(plane, name, arch, ready=ready)


def set_ready(plane: ControlPlane, name: str, arch: str, *, ready: bool) -> None:
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": "stands for a node of the e2e tier (no kubelet behind it)",
            }
        ],
        "nodeInfo": {"operatingSystem": "linux", "architecture": arch, "kubeletVersion": "v1.36.3"},
    }
    plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))


def dry_run(plane: ControlPlane, *documents: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Created through the apiserver, which calls the webhook, and not kept (--dry-run=server)."""
    return plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(documents), check=False)


def pinned(body: dict[str, Any], arch: str) -> dict[str, Any]:
    spec = body["spec"]["template"]["spec"] if body["kind"] == "Deployment" else body["spec"]
    spec["nodeSelector"] = {"kubernetes.io/arch": arch}
    return body


def every_replica_says(plane: ControlPlane, document: dict[str, Any], *, denied: bool) -> bool:
    """Several reviews in a row, so both webhook replicas (one port, either answers) are asked."""
    return all((DENIED in dry_run(plane, document).stderr) is denied for _ in range(6))


def test_an_index_fat_on_arm64_is_denied_once_an_arm64_node_is_ready_and_a_pod_pinned_to_amd64_is_admitted(
    control_plane: ControlPlane, webhook: WebhookReplicas, fat_on_arm64: FixtureImage, nodes: None
) -> None:
    ns = "node-platforms-admit"
    apply(control_plane, namespace(ns), image_policy("arm-aware", LIMIT, namespaces=[ns], mode="Enforce"))
    unpinned = pod("api", ns, fat_on_arm64.ref)
    amd64_only = pinned(pod("api-amd64", ns, fat_on_arm64.ref), "amd64")
    probe = pod("probe", ns, "127.0.0.1:1/never/pushed:1")  # onUnknown: Allow warns once the policy applies
    wait_for("the webhook to see the policy", lambda: "slimguard" in dry_run(control_plane, probe).stderr)

    # No Node at all: linux/amd64 is judged, as before, and its 256 KiB image is within the limit.
    assert get(control_plane, "node", NODES[0]) is None
    admitted = dry_run(control_plane, unpinned)
    assert admitted.returncode == 0, admitted.stderr

    make_node(control_plane, NODES[1], "amd64")
    make_node(control_plane, NODES[0], "arm64")
    wait_for("both webhook replicas to judge arm64", lambda: every_replica_says(control_plane, unpinned, denied=True))
    denied = dry_run(control_plane, unpinned)
    assert denied.returncode != 0
    assert f'container "api": image {fat_on_arm64.ref} is ' in denied.stderr
    assert '(linux/arm64/v8); ImagePolicy "arm-aware" allows 1 MiB' in denied.stderr
    pinned_admitted = dry_run(control_plane, amd64_only)
    assert pinned_admitted.returncode == 0, pinned_admitted.stderr

    # The arm64 node NotReady: no Ready node runs arm64 any more, so arm64 is not judged.
    set_ready(control_plane, NODES[0], "arm64", ready=False)
    wait_for("arm64 to be judged no more", lambda: every_replica_says(control_plane, unpinned, denied=False))
    assert dry_run(control_plane, amd64_only).returncode == 0
    control_plane.kubectl("delete", "imagepolicy", "arm-aware")


def test_the_audit_judges_arm64_while_an_arm64_node_is_ready_and_the_status_says_which_platforms_were_judged(
    control_plane: ControlPlane, operator: InProcessOperator, fat_on_arm64: FixtureImage, nodes: None
) -> None:
    ns = "node-platforms-audit"
    make_node(control_plane, NODES[1], "amd64")
    make_node(control_plane, NODES[0], "arm64")
    apply(
        control_plane,
        namespace(ns),
        deployment("unpinned", ns, fat_on_arm64.ref),
        pinned(deployment("on-amd64", ns, fat_on_arm64.ref), "amd64"),
        image_policy("arm-audit", LIMIT, namespaces=[ns]),
    )
    found = wait_for_status(control_plane, "deployment", "unpinned", ns, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "maxCompressedSize"
    assert "(linux/arm64/v8)" in finding["message"]
    wait_for_status(control_plane, "deployment", "on-amd64", ns, "compliant")

    def status() -> dict[str, Any] | None:
        body = get(control_plane, "imagepolicy", "arm-audit") or {}
        found = body.get("status") or {}
        return found if found.get("judgedPlatforms") == ["linux/amd64", "linux/arm64/v8"] else None

    said = wait_for("the policy status to name the platforms judged", status)
    (condition,) = [c for c in said["conditions"] if c["type"] == "Platforms"]
    assert (condition["status"], condition["reason"]) == ("True", "NodePlatforms")

    # The arm64 node deleted: the workloads it judged are audited again, without waiting for the next audit.
    control_plane.kubectl("delete", "node", NODES[0])
    wait_for_status(control_plane, "deployment", "unpinned", ns, "compliant")
    control_plane.kubectl("delete", "imagepolicy", "arm-audit")
