"""Install slimguard's own RBAC into a test-bed cluster and hand back a kubeconfig for its ServiceAccount."""

from __future__ import annotations

from pathlib import Path

import yaml

from slimguard_testbed.controlplane import ControlPlane

NAMESPACE = "slimguard-system"
SERVICE_ACCOUNT = "slimguard-controller"


def install_controller_rbac(plane: ControlPlane, kustomization: Path) -> Path:
    """Apply the install's ClusterRoles, bind the controller's to a ServiceAccount, return its kubeconfig."""
    rendered = plane.kubectl("kustomize", str(kustomization)).stdout
    roles = [doc for doc in yaml.safe_load_all(rendered) if doc and doc.get("kind") == "ClusterRole"]
    controller_roles = [role for role in roles if "controller" in role["metadata"]["name"]]
    if not controller_roles:
        raise RuntimeError(f"no controller ClusterRole in {kustomization}")
    role_name = controller_roles[0]["metadata"]["name"]
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}},
        *roles,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{SERVICE_ACCOUNT}-e2e"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
        },
    ]
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))
    return plane.service_account_kubeconfig(NAMESPACE, SERVICE_ACCOUNT)
