"""slimguard installed on the real node the way a user installs it: its own image (built from the repository's
Dockerfile by the Docker engine) pushed to the node's registry, `kubectl apply --server-side -f crds/`, then
`helm install` with only the values a user with a private registry sets, or `kubectl apply -k` of an overlay of
the kustomize base a user with a private registry writes. Shared by the node tier and `make demo`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from slimguard import __version__
from slimguard_testbed import oci
from slimguard_testbed.cache import REPO_ROOT
from slimguard_testbed.images.engine_built import engine_image_artifact
from slimguard_testbed.process import TestbedError

if TYPE_CHECKING:
    import docker

    from slimguard_testbed.node.cluster import RealNode

CHART = REPO_ROOT / "deploy" / "helm" / "slimguard"
RELEASE = "slimguard"
RELEASE_NAMESPACE = "slimguard-system"
IMAGE_REPOSITORY = "slimguard/slimguard"
KUSTOMIZE = REPO_ROOT / "deploy" / "kustomize"
KUSTOMIZE_NAMESPACE = "slimguard"
"""The kustomize base's namespace, which the user creates."""


def push_self_image(node: RealNode, client: docker.DockerClient, engine_tag: str) -> str:
    """The engine's build of slimguard's image, in the node's registry as a release would publish it; its
    reference by digest. (`docker save`d once per image ID: the engine cannot push to the node's TLS registry
    itself.) By digest: the node's containerd keeps its images between sessions, and with the version's tag
    alone (``imagePullPolicy: IfNotPresent``) it runs an earlier build it already holds, not the one pushed."""
    artifact = engine_image_artifact(client, client.images.get(engine_tag).id, name="self-image-for-node")
    digest = oci.push(node.registry.endpoint, IMAGE_REPOSITORY, __version__, artifact)
    return f"{node.image(IMAGE_REPOSITORY, __version__).rsplit(':', 1)[0]}@{digest}"


def helm(helm_binary: str, node: RealNode, *args: str) -> subprocess.CompletedProcess[str]:
    """helm against the node's cluster, as its admin."""
    return subprocess.run(
        [helm_binary, *args, "--kubeconfig", str(node.admin_kubeconfig)], capture_output=True, text=True, check=False
    )


def apply_crds(node: RealNode) -> None:
    """`kubectl apply --server-side -f crds/`, as the README's install does before `helm install`."""
    node.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
    node.plane.wait_established()


def image_values(image: str) -> list[str]:
    """The chart's image values for a reference by tag or by digest (the tag then the version's)."""
    repository, digest = image.split("@", 1) if "@" in image else (image, "")
    repository, tag = (repository, __version__) if digest else repository.rsplit(":", 1)
    return ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}", "--set", f"image.digest={digest}"]


def install_slimguard(node: RealNode, helm_binary: str, image: str, *values: str) -> float:
    """CRDs, then `helm install` of the chart with the image (by tag or by digest) and the node registry's address
    allowed and its CA trusted (``values``: more ``--set``/``--set-file`` arguments), waiting for every Pod to be
    Ready; the seconds it took."""
    started = time.monotonic()
    apply_crds(node)
    result = helm(
        helm_binary, node,
        "install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        *image_values(image),
        "--set", "registries.allowPrivate=true",
        "--set-file", f"registries.caBundle={node.registry.ca_file}",
        *values,
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    if result.returncode != 0:
        raise TestbedError(f"helm install failed:\n{result.stdout}{result.stderr}{diagnose(node)}")
    return time.monotonic() - started


def write_kustomize_overlay(directory: Path, node: RealNode, image: str) -> Path:
    """The overlay a user with a private registry writes over the kustomize base: the image (by digest), the
    registry's CA through components/registry-ca and its private address through components/private-registries.
    Its paths to the base are relative, as kustomize requires."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "registry-ca.pem").write_bytes(Path(node.registry.ca_file).read_bytes())
    name, digest = image.split("@", 1)
    to_kustomize = os.path.relpath(KUSTOMIZE, directory)
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": KUSTOMIZE_NAMESPACE,
        "resources": [f"{to_kustomize}/base"],
        "components": [f"{to_kustomize}/components/registry-ca", f"{to_kustomize}/components/private-registries"],
        "configMapGenerator": [{"name": "slimguard-registry-ca", "files": ["ca.crt=registry-ca.pem"]}],
        "images": [{"name": "ghcr.io/slimguard/slimguard", "newName": name, "digest": digest}],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return directory


def install_slimguard_kustomize(node: RealNode, overlay: Path) -> float:
    """The namespace, then `kubectl apply --server-side -k` of the overlay (CRDs included), waiting for both
    Deployments to roll out; the seconds it took."""
    started = time.monotonic()
    node.kubectl("create", "namespace", KUSTOMIZE_NAMESPACE)
    node.kubectl("apply", "--server-side", "-k", str(overlay))
    for deployment in ("slimguard-controller", "slimguard-webhook"):
        rolled = node.kubectl(
            "rollout", "status", f"deployment/{deployment}", "-n", KUSTOMIZE_NAMESPACE, "--timeout=5m", check=False
        )
        if rolled.returncode != 0:
            raise TestbedError(f"{deployment} did not roll out:\n{rolled.stderr}{diagnose(node, KUSTOMIZE_NAMESPACE)}")
    return time.monotonic() - started


def uninstall_slimguard_kustomize(node: RealNode, overlay: Path) -> None:
    """`kubectl delete -k` of the overlay (the CRDs, and every ImagePolicy with them, go too), then the namespace."""
    node.kubectl("delete", "-k", str(overlay), "--ignore-not-found", "--wait")
    node.kubectl("delete", "namespace", KUSTOMIZE_NAMESPACE, "--ignore-not-found", "--wait")


def diagnose(node: RealNode, namespace: str = RELEASE_NAMESPACE) -> str:
    """What a user looks at when Pods do not become Ready: Pods, the install namespace's Events, the logs."""
    pods = node.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
    events = node.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout
    logs = node.kubectl("logs", "-n", namespace, "-l", "app.kubernetes.io/name=slimguard", "--tail=30",
                        "--all-containers", "--prefix", check=False).stdout  # fmt: skip
    # A crash-looping container's own last words are in its previous instance.
    previous = node.kubectl("logs", "-n", namespace, "-l", "app.kubernetes.io/name=slimguard", "--tail=15",
                            "--all-containers", "--prefix", "--previous", check=False).stdout  # fmt: skip
    return (
        f"\n--- pods\n{pods}\n--- events\n{events[-4000:]}\n--- logs\n{logs[-6000:]}"
        f"\n--- previous containers' logs\n{previous[-3000:]}"
    )


__all__ = [
    "CHART",
    "KUSTOMIZE_NAMESPACE",
    "RELEASE_NAMESPACE",
    "apply_crds",
    "diagnose",
    "helm",
    "image_values",
    "install_slimguard",
    "install_slimguard_kustomize",
    "push_self_image",
    "uninstall_slimguard_kustomize",
    "write_kustomize_overlay",
]
