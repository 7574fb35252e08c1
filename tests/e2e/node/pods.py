"""Pods on the real node, as the node tier's tests make and read them."""

from __future__ import annotations

import json
from typing import Any

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


def pod_phase(node: RealNode, name: str, namespace: str) -> str:
    found = node.kubectl("get", "pod", name, "-n", namespace, "-o", "json", "--ignore-not-found").stdout
    return str(json.loads(found)["status"].get("phase", "")) if found.strip() else ""
