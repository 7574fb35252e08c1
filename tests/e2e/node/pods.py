"""Pods on the real node, as the node tier's tests make and read them."""

from __future__ import annotations

import json
from typing import Any

from cluster import wait_for

from slimguard_testbed.node import RealNode


def sleeping_pod(name: str, namespace: str, image: str, **spec: Any) -> dict[str, Any]:
    """A Pod whose one container sleeps (an image with busybox's sleep)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}],
            "terminationGracePeriodSeconds": 1,
            **spec,
        },
    }


def component_pods(node: RealNode, namespace: str, component: str) -> list[dict[str, Any]]:
    """slimguard's Pods of one component (``app.kubernetes.io/component``) in ``namespace``, not being deleted."""
    found = node.kubectl(
        "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/component={component}", "-o", "json"
    ).stdout
    return [pod for pod in json.loads(found)["items"] if not pod["metadata"].get("deletionTimestamp")]


def pod_phase(node: RealNode, name: str, namespace: str) -> str:
    found = node.kubectl("get", "pod", name, "-n", namespace, "-o", "json", "--ignore-not-found").stdout
    return str(json.loads(found)["status"].get("phase", "")) if found.strip() else ""


def denied_by_slimguard(node: RealNode, manifest: str, *, timeout: float = 60) -> str:
    """The apiserver's refusal of a server-side dry-run create, once slimguard's webhook answers it (it learns of a
    new policy through its watch: until then the create is admitted). A refusal by failurePolicy (the webhook not
    reached) is not slimguard's and does not count."""

    def denied() -> str | None:
        attempt = node.kubectl("create", "--dry-run=server", "-f", "-", input=manifest, check=False)
        return attempt.stderr if attempt.returncode != 0 and "denied the request" in attempt.stderr else None

    message: str = wait_for("slimguard's webhook to deny the create", denied, timeout=timeout)
    return message
