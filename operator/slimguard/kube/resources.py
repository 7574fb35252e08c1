"""Where everything slimguard watches lives in the Kubernetes API: workload kinds, its policies and image
reports, scan reports."""

from __future__ import annotations

from slimguard.core.facts import image_report

Resource = tuple[str, str, str]
"""(group, version, plural), as kopf and the custom-objects API take them."""

POLICY_RESOURCE: Resource = ("slimguard.dev", "v1alpha1", "imagepolicies")
POLICY_API_VERSION = f"{POLICY_RESOURCE[0]}/{POLICY_RESOURCE[1]}"
IMAGE_REPORT_RESOURCE: Resource = (image_report.GROUP, image_report.VERSION, image_report.PLURAL)
VULNERABILITY_REPORT_RESOURCE: Resource = ("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")
NAMESPACE_RESOURCE: Resource = ("", "v1", "namespaces")

# kind → (group, version, plural), for every kind of core.model.policy.WORKLOAD_KINDS (a unit test holds them equal).
WORKLOAD_RESOURCES: dict[str, Resource] = {
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
