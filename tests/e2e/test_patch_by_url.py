"""The one patch every workload kind is written with (``KubeGateway.patch_obj``), against the real apiserver: a merge
patch addressed by URL adds the verdict's label and removes an annotation on a built-in kind of each API group, as
the controller's own ServiceAccount (the install's ClusterRole); and it writes a custom resource as well, which the
client's typed methods (a strategic merge patch, which custom resources refuse) could not.

The apiserver's refusals come back as ``kube.errors``: a workload gone is ``False``, a kind the role does not grant
is ``Forbidden``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import apply, get, namespace

from slimguard.kube.errors import Forbidden
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.resources import WORKLOAD_RESOURCES
from slimguard_testbed import ControlPlane

pytestmark = pytest.mark.e2e

NS = "patch-by-url"
STATUS = "slimguard.dev/status"
OLD = "slimguard.dev/violations"
POD_SPEC = {"containers": [{"name": "api", "image": "registry.example.com/shop/api:1.0"}]}
ROLLOUTS = ("argoproj.io", "v1alpha1", "rollouts")
ROLLOUT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "rollouts.argoproj.io"},
    "spec": {
        "group": "argoproj.io",
        "scope": "Namespaced",
        "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout", "listKind": "RolloutList"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                },
            }
        ],
    },
}


def _metadata(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NS, "labels": {"app": name}, "annotations": {OLD: "[]"}}


def _workloads() -> list[dict[str, Any]]:
    template = {"metadata": {"labels": {"app": "api"}}, "spec": POD_SPEC}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata("api"),
            "spec": {"selector": {"matchLabels": {"app": "api"}}, "template": template},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _metadata("api"),
            "spec": {
                "schedule": "0 0 1 1 *",
                "jobTemplate": {"spec": {"template": {**template, "spec": {**POD_SPEC, "restartPolicy": "Never"}}}},
            },
        },
        {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata("api"), "spec": POD_SPEC},
    ]


@pytest.fixture(scope="module")
def workloads(control_plane: ControlPlane) -> None:
    apply(control_plane, namespace(NS), *_workloads())


@pytest.mark.usefixtures("workloads")
@pytest.mark.parametrize("kind", ["Deployment", "CronJob", "Pod"])
def test_the_controller_patches_each_api_groups_kind_by_url(
    kind: str, control_plane: ControlPlane, operator_kubeconfig: str
) -> None:
    async def patch() -> bool:
        kube = KubeGateway(load_api_client(operator_kubeconfig))
        return await kube.patch_metadata(kind, NS, "api", labels={STATUS: "compliant"}, annotations={OLD: None})

    assert asyncio.run(patch())
    metadata = (get(control_plane, kind.lower(), "api", NS) or {})["metadata"]
    assert metadata["labels"] == {"app": "api", STATUS: "compliant"}
    assert OLD not in (metadata.get("annotations") or {})


@pytest.mark.usefixtures("workloads")
def test_a_workload_gone_is_said_not_raised(operator_kubeconfig: str) -> None:
    async def patch() -> bool:
        kube = KubeGateway(load_api_client(operator_kubeconfig))
        return await kube.patch_metadata("Deployment", NS, "gone", labels={STATUS: "compliant"})

    assert asyncio.run(patch()) is False


@pytest.fixture
def rollout(control_plane: ControlPlane) -> Iterator[None]:
    """A stand-in for Argo Rollouts' CRD (its names, a schema that keeps anything), and one Rollout; removed after."""
    apply(control_plane, namespace(NS), ROLLOUT_CRD)
    control_plane.wait_established("rollouts.argoproj.io")
    try:
        apply(control_plane, {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": _metadata("api")})
        yield
    finally:
        control_plane.kubectl("delete", "customresourcedefinition", "rollouts.argoproj.io", "--wait=false")


@pytest.mark.usefixtures("rollout")
def test_a_custom_resource_is_patched_the_same_way_and_a_kind_the_role_lacks_is_forbidden(
    control_plane: ControlPlane, operator_kubeconfig: str
) -> None:
    patch = {"metadata": {"labels": {STATUS: "noncompliant"}, "annotations": {OLD: None}}}

    async def as_admin() -> None:
        kube = KubeGateway(load_api_client(str(control_plane.admin_kubeconfig)))
        await kube.patch_obj(resource=ROLLOUTS, namespace=NS, name="api", patch=patch)

    asyncio.run(as_admin())
    metadata = (get(control_plane, "rollouts.argoproj.io", "api", NS) or {})["metadata"]
    assert metadata["labels"] == {"app": "api", STATUS: "noncompliant"}
    assert OLD not in (metadata.get("annotations") or {})

    async def as_the_controller() -> None:
        kube = KubeGateway(load_api_client(operator_kubeconfig))
        await kube.patch_obj(resource=ROLLOUTS, namespace=NS, name="api", patch=patch)

    with pytest.raises(Forbidden) as refused:  # its ClusterRole grants the kinds of the table, and no other
        asyncio.run(as_the_controller())
    assert refused.value.status == 403
    assert ROLLOUTS not in WORKLOAD_RESOURCES.values()
