"""The workload kinds slimguard watches, and where each lives in the Kubernetes API."""

from __future__ import annotations

# kind → (group, version, plural)
WORKLOAD_RESOURCES: dict[str, tuple[str, str, str]] = {
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Pod": ("", "v1", "pods"),
}


def api_version(kind: str) -> str:
    """``apps/v1`` for a Deployment, ``v1`` for a Pod (the core group has no name)."""
    group, version, _ = WORKLOAD_RESOURCES[kind]
    return f"{group}/{version}" if group else version
