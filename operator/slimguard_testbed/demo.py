"""`make demo`: slimguard on an embedded control plane and registry, end to end, in a couple of minutes.

Starts etcd + kube-apiserver + kube-controller-manager and a TLS registry with token auth on 127.0.0.1,
pushes a fat image (a real debootstrap Debian with node, playing node:20-bookworm) and a slim multi-stage
one built by the Docker engine, runs `slimguard controller` and `slimguard webhook` as the install would
(ServiceAccounts bound to deploy/'s ClusterRoles), applies two ImagePolicies and a fat and a slim workload,
and prints what slimguard did. Everything stops at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from slimguard.core.quantity import format_bytes
from slimguard_testbed import CertificateAuthority, ControlPlane, DockerEngine, Registry
from slimguard_testbed.images import publish_fixture_images
from slimguard_testbed.install import install_rbac
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kustomize" / "base"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def kubectl_apply(plane: ControlPlane, *documents: dict[str, Any]) -> str:
    result = plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents), check=False)
    return (result.stdout + result.stderr).strip()


def workload(name: str, namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
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
    plane: ControlPlane, namespace: str, names: list[str], timeout: float = 120
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


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="slimguard-demo-"))
    ca = CertificateAuthority("slimguard demo CA")
    say("starting Kubernetes v1.36 (etcd, kube-apiserver, kube-controller-manager) and a TLS registry on 127.0.0.1")
    with (
        ControlPlane(workdir=workdir / "cluster", ca=ca) as plane,
        Registry(storage_dir=workdir / "registry-data", ca=ca, auth="token", workdir=workdir / "registry") as registry,
    ):
        engine: DockerEngine | None = None
        try:

            def docker() -> DockerEngine:
                nonlocal engine
                engine = engine or DockerEngine().start()
                return engine

            say("pushing images (built once per machine, cached in ~/.cache/slimguard)")
            images = publish_fixture_images(registry.endpoint, docker)
            fat, slim = images.fat_app, images.slim_app
            for image in (fat, slim):
                size = format_bytes(image.compressed_size)
                print(f"  {image.ref:<45} {size:>10} compressed, {image.platforms[0].layers} layers")

            say("installing slimguard: CRDs from crds/, ServiceAccounts bound to deploy/'s ClusterRoles")
            plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
            plane.wait_established("imagepolicies.slimguard.dev")
            controller_config = install_rbac(plane, BASE, "controller")
            webhook_config = install_rbac(plane, BASE, "webhook")
            controller = ManagedProcess(
                "controller",
                [
                    sys.executable,
                    "-m",
                    "slimguard.cli.main",
                    "controller",
                    "--kubeconfig",
                    str(controller_config),
                    "--allow-loopback-registries",
                    "--ca-file",
                    str(registry.ca_file),
                    "--metrics-port",
                    str(free_port()),
                ],
                log_file=workdir / "controller.log",
            )
            controller.start()
            webhook = WebhookReplicas(
                kubeconfig=str(webhook_config),
                ca=ca,
                registry_ca_file=str(registry.ca_file),
                workdir=workdir,
                replicas=1,
            )
            with webhook:
                register(
                    plane,
                    webhook_configuration(
                        BASE / "validatingwebhookconfiguration.yaml",
                        url=webhook.url,
                        ca_pem=ca.cert_pem,
                        name="slimguard",
                    ),
                )
                rules = {
                    "maxCompressedSize": "200Mi",
                    "requireNonRootUser": True,
                    "deniedBaseImages": ["*/base/node:*-bookworm", "*/base/debian:*"],
                }
                say("ImagePolicy slim-images (Audit, namespace shop) and slim-prod (Enforce, namespace prod)")
                print(
                    kubectl_apply(
                        plane,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}},
                        {
                            **policy("slim-images", "Audit", ["shop"], rules),
                            "spec": {
                                **policy("slim-images", "Audit", ["shop"], rules)["spec"],
                                "knownBaseImages": [images.node_base.ref, images.debian_fat.ref],
                            },
                        },
                        policy("slim-prod", "Enforce", ["prod"], rules),
                    )
                )
                time.sleep(2)

                say("kubectl apply: a fat and a slim Deployment in shop (Audit: both admitted)")
                print(
                    kubectl_apply(plane, workload("api-fat", "shop", fat.ref), workload("api-slim", "shop", slim.ref))
                )
                found = wait_for_verdicts(plane, "shop", ["api-fat", "api-slim"])
                for name in ("api-fat", "api-slim"):
                    metadata = found[name]
                    print(f"\n  Deployment shop/{name}: {STATUS_LABEL}={metadata['labels'][STATUS_LABEL]}")
                    findings = (metadata.get("annotations") or {}).get("slimguard.dev/violations")
                    for item in json.loads(findings or "[]"):
                        print(f"    - [{item['rule']}] {item['message']}")
                say(f"kubectl get deployments -A -l {STATUS_LABEL}=noncompliant")
                print(plane.kubectl("get", "deployments", "-A", "-l", f"{STATUS_LABEL}=noncompliant").stdout)

                say("kubectl apply: the same fat Deployment in prod (Enforce: rejected at admission)")
                print(kubectl_apply(plane, workload("api-fat", "prod", fat.ref)))
                say("kubectl apply: the slim one in prod (admitted)")
                print(kubectl_apply(plane, workload("api-slim", "prod", slim.ref)))

                time.sleep(2)
                say("kubectl get imagepolicies")
                print(plane.kubectl("get", "imagepolicies").stdout)
                say("kubectl get events -n shop --field-selector reason=ImagePolicyViolation")
                print(
                    plane.kubectl(
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
            controller.stop()
        finally:
            if engine is not None:
                engine.stop()
    say(f"done; logs are in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
