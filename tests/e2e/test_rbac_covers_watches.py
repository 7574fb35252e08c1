"""Each component's ClusterRole lets it list and watch everything it watches (its kopf handlers, the controller's
own workload informer, both components' report and Node watches), and the CRDs; the controller's Role lets it hold its
leader Lease.

A forbidden watch makes kopf retry, then stop the whole process: a webhook with a gap in its role served for
54 s and died (found by bench/admission_latency.py). This derives what to check from the handlers themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest

from slimguard.admission.handlers import build_registry as webhook_registry
from slimguard.admission.server import ServerSettings
from slimguard.admission.settings import WebhookSettings
from slimguard.controller.handlers import build_registry as controller_registry
from slimguard.controller.settings import ControllerSettings
from slimguard.kube.leader import LEASE_NAME
from slimguard.kube.resources import (
    EVENT_RESOURCE,
    IMAGE_REPORT_RESOURCE,
    NODE_RESOURCE,
    VULNERABILITY_REPORT_RESOURCE,
    WORKLOAD_RESOURCES,
)
from slimguard_testbed import ControlPlane
from slimguard_testbed.install import NAMESPACE

TRIVY_CRD = Path(__file__).parent / "crds" / "aquasecurity.github.io_vulnerabilityreports.yaml"
# kopf watches CRDs itself, to notice resources that appear after it started.
KOPF_OWN = [("apiextensions.k8s.io", "customresourcedefinitions")]


def watched(registry: kopf.OperatorRegistry) -> list[tuple[str, str]]:
    return sorted({(h.selector.group or "", h.selector.any_name or "") for h in registry._watching.get_all_handlers()})


INFORMED = [(group, plural) for group, _, plural in WORKLOAD_RESOURCES.values()]  # the controller's own watches
# Both components' own watches: the report kinds (engine/report_feed.py; the VulnerabilityReports' while a policy
# reads them) and the Nodes (engine/node_watch.py).
REPORTS = [
    (group, plural) for group, _, plural in (IMAGE_REPORT_RESOURCE, VULNERABILITY_REPORT_RESOURCE, NODE_RESOURCE)
]

# The controller leader's watch of the kubelets' Pulled Events (kube/pull_events.py).
PULLS = [(EVENT_RESOURCE[0], EVENT_RESOURCE[2])]

COMPONENTS: dict[str, Any] = {
    "controller": lambda: watched(controller_registry(ControllerSettings())) + INFORMED + REPORTS + PULLS,
    "webhook": lambda: (
        watched(webhook_registry(WebhookSettings(server=ServerSettings(cert_file="c", key_file="k")))) + REPORTS
    ),
}


def _can(plane: ControlPlane, account: str, verb: str, resource: str, namespace: str) -> bool:
    answer = plane.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", account, check=False).stdout
    return answer.strip() == "yes"


def test_the_webhook_may_write_its_own_certificate_secret_and_no_other(
    control_plane: ControlPlane, webhook_kubeconfig: str
) -> None:
    """--certificate-secret: the webhook creates its Secret and then reads and replaces it by name, in its own
    namespace only (create cannot be limited to a name: the apiserver authorizes it before the object has one)."""
    from slimguard_testbed.webhook import SELF_MANAGED_SECRET

    webhook = f"system:serviceaccount:{NAMESPACE}:slimguard-webhook"
    own = f"secrets/{SELF_MANAGED_SECRET}"
    allowed = [("create", "secrets"), *[(verb, own) for verb in ("get", "update", "delete")]]
    assert [check for check in allowed if not _can(control_plane, webhook, *check, NAMESPACE)] == []
    denied = [("update", "secrets/another"), ("delete", "secrets/another"), ("patch", own), ("list", "secrets")]
    assert [check for check in denied if _can(control_plane, webhook, *check, NAMESPACE)] == []
    for namespace in ("default", "kube-system"):
        assert not _can(control_plane, webhook, "create", "secrets", namespace)
        assert not _can(control_plane, webhook, "update", own, namespace)


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_the_service_account_may_list_and_watch_every_watched_resource(
    component: str, control_plane: ControlPlane, operator_kubeconfig: str, webhook_kubeconfig: str
) -> None:
    # kubectl resolves resource names by discovery: the scan-report CRD must exist to be asked about.
    control_plane.kubectl("apply", "-f", str(TRIVY_CRD))
    account = f"system:serviceaccount:{NAMESPACE}:slimguard-{component}"
    resources = COMPONENTS[component]() + KOPF_OWN
    assert len(resources) >= 3
    missing = []
    for group, plural in resources:
        resource = f"{plural}.{group}" if group else plural
        for verb in ("list", "watch"):
            allowed = control_plane.kubectl(
                "auth", "can-i", verb, resource, "--all-namespaces", "--as", account, check=False
            )
            if allowed.stdout.strip() != "yes":
                missing.append(f"{verb} {resource}")
    assert missing == [], f"slimguard-{component}'s ClusterRole lacks: {missing}"


def test_the_controller_may_take_and_renew_its_leader_lease_where_it_elects(
    control_plane: ControlPlane, operator_kubeconfig: str
) -> None:
    """--leader-elect is the default; its Lease lives in the controller's own namespace (its ServiceAccount's)."""
    account = f"system:serviceaccount:{NAMESPACE}:slimguard-controller"
    lease = f"leases.coordination.k8s.io/{LEASE_NAME}"
    denied = [
        verb
        for verb in ("get", "create", "update")
        if control_plane.kubectl(
            "auth", "can-i", verb, lease, "-n", NAMESPACE, "--as", account, check=False
        ).stdout.strip()
        != "yes"
    ]
    assert denied == [], f"slimguard-controller may not {denied} its Lease in {NAMESPACE}"
