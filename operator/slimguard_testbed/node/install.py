"""slimguard installed on the real node the way a user installs it: its own image (built from the repository's
Dockerfile by the Docker engine) pushed to the node's registry, `kubectl apply --server-side -f crds/`, then
`helm install` with only the values a user with a private registry sets. Shared by the node tier and `make demo`."""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

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


def install_slimguard(node: RealNode, helm_binary: str, image: str, *values: str) -> float:
    """CRDs, then `helm install` of the chart with the image (by tag or by digest) and the node registry's address
    allowed and its CA trusted (``values``: more ``--set``/``--set-file`` arguments), waiting for every Pod to be
    Ready; the seconds it took."""
    started = time.monotonic()
    node.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds"))
    node.plane.wait_established()
    repository, digest = image.split("@", 1) if "@" in image else (image, "")
    repository, tag = (repository, __version__) if digest else repository.rsplit(":", 1)
    result = helm(
        helm_binary, node,
        "install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--set", f"image.digest={digest}",
        "--set", "registries.allowPrivate=true",
        "--set-file", f"registries.caBundle={node.registry.ca_file}",
        *values,
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    if result.returncode != 0:
        raise TestbedError(f"helm install failed:\n{result.stdout}{result.stderr}{diagnose(node)}")
    return time.monotonic() - started


def diagnose(node: RealNode) -> str:
    """What a user looks at when Pods do not become Ready: Pods, the release namespace's Events, the logs."""
    pods = node.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
    events = node.kubectl("get", "events", "-n", RELEASE_NAMESPACE, "--sort-by=.lastTimestamp", check=False).stdout
    logs = node.kubectl("logs", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/name=slimguard", "--tail=30",
                        "--all-containers", "--prefix", check=False).stdout  # fmt: skip
    return f"\n--- pods\n{pods}\n--- events\n{events[-4000:]}\n--- logs\n{logs[-6000:]}"


__all__ = ["CHART", "RELEASE_NAMESPACE", "diagnose", "helm", "install_slimguard", "push_self_image"]
