"""The operator, started by kopf against the real apiserver with a ServiceAccount token, reacts to a policy."""

from __future__ import annotations

from pathlib import Path

import yaml
from cluster import apply, get, image_policy, wait_for

from slimguard_testbed import ControlPlane
from slimguard_testbed.operator_runner import InProcessOperator


def test_the_operator_runs_as_a_service_account_not_as_admin(operator_kubeconfig: str) -> None:
    config = yaml.safe_load(Path(operator_kubeconfig).read_text())
    (user,) = config["users"]
    assert user["user"].get("token"), "a ServiceAccount token, not a client certificate"
    assert "client-certificate-data" not in user["user"]


def test_the_operator_records_the_observed_generation_of_a_policy(
    control_plane: ControlPlane, operator: InProcessOperator
) -> None:
    apply(control_plane, image_policy("smoke", {"maxCompressedSize": "200Mi"}, namespaces=["smoke-*"]))
    apply(control_plane, image_policy("smoke", {"maxCompressedSize": "100Mi"}, namespaces=["smoke-*"]))

    def observed() -> dict | None:  # type: ignore[type-arg]
        body = get(control_plane, "imagepolicy", "smoke") or {}
        status = body.get("status") or {}
        generation = body["metadata"]["generation"]
        return status if status.get("observedGeneration") == generation == 2 else None

    status = wait_for("status.observedGeneration to reach 2", observed)
    conditions = {condition["type"]: condition for condition in status["conditions"]}
    assert list(conditions) == ["Ready", "Enforcing", "Platforms"]
    assert conditions["Ready"]["status"] == "True"
    # No workload in smoke-* yet: whether its rules or onUnknown decide is not known.
    assert (conditions["Enforcing"]["status"], conditions["Enforcing"]["reason"]) == ("Unknown", "NoImagesChecked")
    # The control-plane tier has no Node: linux/amd64 is judged, and the status says why.
    assert (conditions["Platforms"]["status"], conditions["Platforms"]["reason"]) == ("False", "NoReadyNodes")
    control_plane.kubectl("delete", "imagepolicy", "smoke")
