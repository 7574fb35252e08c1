"""`make demo`: slimguard installed by its Helm chart on a real one-node Kubernetes on this machine, end to end.

Starts the test bed's real node (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, the
kubelet, kube-proxy and a TLS registry, all on a bridge of its own), builds slimguard's image from the
repository's Dockerfile with the Docker engine, pushes it and the demo's images (a real debootstrap Debian with
node, playing node:20-bookworm, and a slim multi-stage app) to the node's registry, `helm install`s slimguard,
applies two ImagePolicies and a fat and a slim workload, and prints what slimguard did. Everything stops and is
undone at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from slimguard.core.model.quantity import format_bytes
from slimguard_testbed import DockerEngine
from slimguard_testbed.images import publish_fixture_images, warm_fixture_cache
from slimguard_testbed.images.engine_warm import EngineNeeds, warm_docker_engine
from slimguard_testbed.images.self_image import SELF_TAG
from slimguard_testbed.node import RealNode
from slimguard_testbed.node.install import RELEASE_NAMESPACE, install_slimguard, push_self_image
from slimguard_testbed.warmup import run_build_script


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def kubectl_apply(plane: RealNode, *documents: dict[str, Any]) -> str:
    result = plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents), check=False)
    return (result.stdout + result.stderr).strip()


def workload(name: str, namespace: str, image: str, *, replicas: int = 1) -> dict[str, Any]:
    # The demo's app images carry no Node runtime (the slim one is busybox): the container sleeps instead.
    container = {"name": "api", "image": image, "command": ["sleep", "86400"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def policy(name: str, mode: str, namespaces: list[str], rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": name},
        "spec": {"mode": mode, "match": {"namespaces": namespaces}, "rules": rules},
    }


STATUS_LABEL = "slimguard.dev/status"


def wait_for_verdicts(
    plane: RealNode, namespace: str, names: list[str], timeout: float = 120
) -> dict[str, dict[str, Any]]:
    """Each named Deployment's metadata, once slimguard's status label on every one is a final verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = json.loads(plane.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
        found = {i["metadata"]["name"]: i["metadata"] for i in items}
        verdicts = [(found.get(n, {}).get("labels") or {}).get(STATUS_LABEL) for n in names]
        if all(verdict in ("compliant", "noncompliant", "error") for verdict in verdicts):
            return found
        time.sleep(0.5)
    raise TimeoutError("slimguard did not label the demo workloads in time")


def wait_for_policy_status(plane: RealNode, matched: dict[str, int], timeout: float = 120) -> None:
    """Until each policy's status counts its workloads and says whether it is enforcing (the controller writes
    status after its verdicts, coalesced)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = json.loads(plane.kubectl("get", "imagepolicies", "-o", "json").stdout)["items"]
        statuses = {item["metadata"]["name"]: item.get("status") or {} for item in items}
        if all(
            statuses.get(name, {}).get("matchedWorkloads") == count
            and any(c.get("type") == "Enforcing" for c in statuses.get(name, {}).get("conditions") or ())
            for name, count in matched.items()
        ):
            return
        time.sleep(0.5)
    raise TimeoutError("slimguard did not write the demo policies' status in time")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="slimguard-demo-"))
    say("building slimguard's image from the Dockerfile with the Docker engine (minutes the first time, then cached)")
    warm_docker_engine(warm_fixture_cache(), EngineNeeds(self_image=True), say=lambda line: print(f"  {line}"))
    helm = run_build_script("build-helm.sh")
    say("starting a one-node Kubernetes v1.36 on this machine: kubelet, containerd, kube-proxy, a TLS registry")
    with RealNode(workdir=workdir / "node") as node, DockerEngine() as engine:
        print(f"  node {node.network.host_ip} Ready in {node.ready_seconds:.1f} s; registry {node.registry.host}")
        say("pushing slimguard's image and the demo's images to the node's registry")
        client = engine.client(timeout=600)
        try:
            image = push_self_image(node, client, SELF_TAG)
        finally:
            client.close()
        images = publish_fixture_images(node.registry.endpoint, engine)
        fat, slim = images.fat_app, images.slim_app
        for pushed in (fat, slim):
            size = format_bytes(pushed.compressed_size)
            print(f"  {pushed.ref:<45} {size:>10} compressed, {pushed.platforms[0].layers} layers")
        print(f"  {image}")

        say(f"helm install slimguard deploy/helm/slimguard -n {RELEASE_NAMESPACE} (image, private registry, its CA)")
        seconds = install_slimguard(node, helm, image)
        print(f"  every Pod Ready {seconds:.0f} s after `kubectl apply -f crds/`")
        print(node.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide").stdout)

        rules = {
            "maxCompressedSize": "200Mi",
            "requireNonRootUser": True,
            "deniedBaseImages": ["*/base/node:*-bookworm", "*/base/debian:*"],
        }
        say("ImagePolicy slim-images (Audit, namespace shop) and slim-prod (Enforce, namespace prod)")
        audit = policy("slim-images", "Audit", ["shop"], rules)
        audit["spec"]["knownBaseImages"] = [images.node_base.ref, images.debian_fat.ref]
        print(
            kubectl_apply(
                node,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}},
                audit,
                policy("slim-prod", "Enforce", ["prod"], rules),
            )
        )
        time.sleep(2)

        say("kubectl apply: a fat (0 replicas: nothing pulls 800 MB) and a slim Deployment in shop (Audit: admitted)")
        print(
            kubectl_apply(
                node, workload("api-fat", "shop", fat.ref, replicas=0), workload("api-slim", "shop", slim.ref)
            )
        )
        found = wait_for_verdicts(node, "shop", ["api-fat", "api-slim"])
        for name in ("api-fat", "api-slim"):
            metadata = found[name]
            print(f"\n  Deployment shop/{name}: {STATUS_LABEL}={metadata['labels'][STATUS_LABEL]}")
            findings = (metadata.get("annotations") or {}).get("slimguard.dev/violations")
            for item in json.loads(findings or "[]"):
                print(f"    - [{item['rule']}] {item['message']}")
        say(f"kubectl get deployments -A -l {STATUS_LABEL}=noncompliant")
        print(node.kubectl("get", "deployments", "-A", "-l", f"{STATUS_LABEL}=noncompliant").stdout)

        say("kubectl apply: the same fat Deployment in prod (Enforce: rejected at admission)")
        print(kubectl_apply(node, workload("api-fat", "prod", fat.ref)))
        say("kubectl apply: the slim one in prod (admitted; containerd pulls it and the Pod runs)")
        print(kubectl_apply(node, workload("api-slim", "prod", slim.ref)))
        node.kubectl("rollout", "status", "deployment/api-slim", "-n", "prod", "--timeout=120s")
        say("kubectl get pods -n prod")
        print(node.kubectl("get", "pods", "-n", "prod").stdout)

        wait_for_policy_status(node, {"slim-images": 2, "slim-prod": 1})
        say("kubectl get imagepolicies")
        print(node.kubectl("get", "imagepolicies").stdout)
        say("kubectl get events -n shop --field-selector reason=ImagePolicyViolation")
        print(
            node.kubectl(
                "get",
                "events",
                "-n",
                "shop",
                "--field-selector",
                "reason=ImagePolicyViolation",
                "-o",
                "custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message",
            ).stdout
        )
    say(f"done: the node is stopped and every change to this machine undone; logs are in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
