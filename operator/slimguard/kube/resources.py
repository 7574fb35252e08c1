"""Where everything slimguard watches lives in the Kubernetes API: workload kinds, its policies and image
reports, scan reports, namespaces and nodes."""

from __future__ import annotations

from urllib.parse import quote

from slimguard.core.facts import image_report
from slimguard.core.model.kinds import BY_KIND, WORKLOADS

Resource = tuple[str, str, str]
"""(group, version, plural), as kopf and the custom-objects API take them."""

POLICY_RESOURCE: Resource = ("slimguard.dev", "v1alpha1", "imagepolicies")
POLICY_API_VERSION = f"{POLICY_RESOURCE[0]}/{POLICY_RESOURCE[1]}"
IMAGE_REPORT_RESOURCE: Resource = (image_report.GROUP, image_report.VERSION, image_report.PLURAL)
VULNERABILITY_REPORT_RESOURCE: Resource = ("aquasecurity.github.io", "v1alpha1", "vulnerabilityreports")
NAMESPACE_RESOURCE: Resource = ("", "v1", "namespaces")
NODE_RESOURCE: Resource = ("", "v1", "nodes")
EVENT_RESOURCE: Resource = ("", "v1", "events")
"""core/v1 Events: the kubelet records each pull there (reason ``Pulled``); events.k8s.io shows the same objects."""

# kind → (group, version, plural): the informer's watches, from the one table of kinds (core.model.kinds).
WORKLOAD_RESOURCES: dict[str, Resource] = {
    entry.kind: (entry.group, entry.version, entry.plural) for entry in WORKLOADS
}


def api_version(kind: str) -> str:
    """``apps/v1`` for a Deployment, ``v1`` for a Pod (the core group has no name)."""
    return BY_KIND[kind].api_version


def object_path(resource: Resource, namespace: str | None, name: str) -> str:
    """The object's URL path on the apiserver, for any kind: ``/api/v1/namespaces/team/pods/api`` for the core
    group, ``/apis/GROUP/VERSION/...`` otherwise, ``namespace`` None for a cluster-scoped object. Quoted: names
    come from the objects watched."""
    group, version, plural = resource
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    scope = f"/namespaces/{quote(namespace, safe='')}" if namespace is not None else ""
    return f"{root}{scope}/{plural}/{quote(name, safe='')}"
