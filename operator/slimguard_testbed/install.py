"""Install slimguard's own RBAC into a test-bed cluster and hand back a kubeconfig for its ServiceAccount."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slimguard_testbed.controlplane import ControlPlane

NAMESPACE = "slimguard-system"


def install_controller_rbac(plane: ControlPlane, kustomization: Path) -> Path:
    return install_rbac(plane, kustomization, "controller")


def install_rbac(plane: ControlPlane, kustomization: Path, component: str) -> Path:
    """Apply the install's ClusterRoles, bind the component's to a ServiceAccount, return its kubeconfig.

    The component's namespaced Roles (the controller's, for its leader election's Lease) are applied and bound in
    NAMESPACE, the namespace of the ServiceAccount and so of the kubeconfig: where the install puts them.
    """
    rendered = [doc for doc in yaml.safe_load_all(plane.kubectl("kustomize", str(kustomization)).stdout) if doc]
    roles = [doc for doc in rendered if doc.get("kind") == "ClusterRole"]
    role_name = f"slimguard-{component}"
    if role_name not in {role["metadata"]["name"] for role in roles}:
        raise RuntimeError(f"no ClusterRole {role_name} in {kustomization}")
    account = role_name
    own = [doc for doc in rendered if doc["metadata"].get("name") == account]
    namespaced = [_moved(doc) for doc in own if doc.get("kind") in ("Role", "RoleBinding")]
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": NAMESPACE}},
        *roles,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{account}-e2e"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
        },
        *namespaced,
    ]
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))
    return plane.service_account_kubeconfig(NAMESPACE, account)


def _moved(document: dict[str, Any]) -> dict[str, Any]:
    """A Role or RoleBinding of the install, in NAMESPACE (a binding's ServiceAccount too)."""
    moved = {**document, "metadata": {**document["metadata"], "namespace": NAMESPACE}}
    if "subjects" in moved:
        moved["subjects"] = [{**subject, "namespace": NAMESPACE} for subject in moved["subjects"]]
    return moved
