"""ImagePolicy status from the running operator: what `kubectl get` and the conditions tell a platform team.

The operator runs under a ServiceAccount token bound to the install's own ClusterRole, not as admin. Every
image here is on 127.0.0.1; nothing is fetched from beyond loopback.
"""

from __future__ import annotations

from typing import Any

from cluster import apply, deployment, get, image_policy, namespace, wait_for

from slimguard_testbed import ControlPlane
from slimguard_testbed.operator_runner import InProcessOperator


def conditions(plane: ControlPlane, name: str) -> dict[str, dict[str, Any]]:
    status = (get(plane, "imagepolicy", name) or {}).get("status") or {}
    return {c["type"]: c for c in status.get("conditions") or []}


def test_glob_only_base_rules_are_flagged_in_the_status_until_a_concrete_base_is_named(
    control_plane: ControlPlane, operator: InProcessOperator
) -> None:
    name = "status-base-detection"
    rules = {"deniedBaseImages": ["*/node:*-bookworm"]}
    apply(control_plane, image_policy(name, rules, namespaces=["status-matches-nothing-*"]))

    def blind() -> dict[str, Any] | None:
        found = conditions(control_plane, name).get("BaseDetection")
        return found if found and found["status"] == "False" else None

    detection = wait_for("a BaseDetection=False condition", blind)
    assert detection["reason"] == "AnnotationOnly"
    assert detection["message"].startswith("deniedBaseImages */node:*-bookworm match only images that carry")
    assert conditions(control_plane, name)["Ready"]["status"] == "True"

    known = ["127.0.0.1:1/base/node:20-bookworm"]  # concrete; no workload matches, so it is never fetched
    apply(control_plane, image_policy(name, rules, namespaces=["status-matches-nothing-*"], knownBaseImages=known))

    def seeing() -> dict[str, Any] | None:
        found = conditions(control_plane, name).get("BaseDetection")
        return found if found and found["status"] == "True" and found["observedGeneration"] == 2 else None

    assert wait_for("BaseDetection=True for generation 2", seeing)["reason"] == "LayersAndAnnotations"
    control_plane.kubectl("delete", "imagepolicy", name)


def test_kubectl_get_shows_workloads_in_error_beside_noncompliant_ones(
    control_plane: ControlPlane, operator: InProcessOperator
) -> None:
    """NONCOMPLIANT 0 must not read as all clear while every workload is in error."""
    ns, name = "status-errors", "status-errors"
    apply(control_plane, namespace(ns), deployment("unreachable", ns, "127.0.0.1:1/shop/api:1.0"))
    apply(control_plane, image_policy(name, {"maxCompressedSize": "200Mi"}, namespaces=[ns]))

    def counted() -> dict[str, Any] | None:
        status = (get(control_plane, "imagepolicy", name) or {}).get("status") or {}
        return status if status.get("errors") == 1 else None

    wait_for("the policy to count the error", counted)
    table = control_plane.kubectl("get", "imagepolicies", name).stdout.splitlines()
    header = table[0].split()
    row = dict(zip(header, table[1].split(), strict=True))
    assert header == ["NAME", "MODE", "ENFORCING", "MATCHED", "NONCOMPLIANT", "ERRORS", "AGE"]
    assert (row["MATCHED"], row["NONCOMPLIANT"], row["ERRORS"]) == ("1", "0", "1")
    # Its one image's registry (127.0.0.1:1) answers nothing: nothing from there is enforced.
    assert row["ENFORCING"] == "False"
    control_plane.kubectl("delete", "imagepolicy", name)
