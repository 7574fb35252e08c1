"""The install artefacts against the real apiserver: the kustomize output applies, its RBAC grants what
slimguard needs and nothing more, its webhook's matchConditions skip image-less UPDATEs, its pods pass
the `restricted` Pod Security Standard, and the chart and kustomize copies of shared files stay identical.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from slimguard.core.model.kinds import WORKLOADS
from slimguard_testbed import CertificateAuthority, ControlPlane, free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
TEST_CRDS = Path(__file__).parent / "crds"
CHART = REPO / "deploy" / "helm" / "slimguard"
KUSTOMIZE_BASE = REPO / "deploy" / "kustomize" / "base"
KUSTOMIZE_DEV = REPO / "deploy" / "kustomize" / "overlays" / "dev"
NAMESPACE = "slimguard"
WEBHOOK_RESOURCES = {entry.plural for entry in WORKLOADS}  # pods, deployments, ..., cronjobs: the table of kinds


def _render(cluster: ControlPlane, directory: Path) -> str:
    return cluster.kubectl("kustomize", str(directory)).stdout


def _objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


@pytest.fixture(scope="module")
def base_objects(control_plane: ControlPlane) -> list[dict[str, Any]]:
    return _objects(_render(control_plane, KUSTOMIZE_BASE))


# -- copies that must not drift (the CRDs' are generated from crds/: tests/unit/test_crd_copies.py) ---------


def test_match_conditions_are_the_same_in_chart_and_kustomize(base_objects: list[dict[str, Any]]) -> None:
    shared = yaml.safe_load((CHART / "files" / "match-conditions.yaml").read_text())
    webhook = _one(base_objects, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert webhook["matchConditions"] == shared


# -- what the kustomize base produces ---------------------------------------------------------------------


def _copy_of_kustomize(into: Path) -> Path:
    """deploy/kustomize copied, without a certs/ made by hand in the repository: the tests write nothing there."""
    copy = into / "kustomize"
    shutil.copytree(KUSTOMIZE_DEV.parents[1], copy, ignore=shutil.ignore_patterns("certs"))
    return copy / "overlays" / "dev"


def _user_overlay(into: Path, kustomization: str) -> Path:
    """An overlay a user writes beside the copied base and components (``../../base``), holding ``kustomization``."""
    overlay = _copy_of_kustomize(into).parent / "user"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(kustomization)
    return overlay


@pytest.fixture(scope="module")
def dev_overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev overlay as its README says to install it: nothing to make first (the webhook makes its certificate)."""
    return _copy_of_kustomize(tmp_path_factory.mktemp("dev-overlay"))


def test_kustomize_base_and_dev_overlay_apply(control_plane: ControlPlane, dev_overlay: Path) -> None:
    control_plane.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n")
    for directory in (KUSTOMIZE_BASE, dev_overlay):
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=_render(control_plane, directory)
        )
        assert "validatingwebhookconfiguration.admissionregistration.k8s.io/slimguard" in result.stdout
        assert "deprecated" not in result.stderr.lower(), result.stderr


def test_webhook_configuration_is_safe_by_default(base_objects: list[dict[str, Any]]) -> None:
    (webhook,) = _one(base_objects, "ValidatingWebhookConfiguration")["webhooks"]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 3
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["clientConfig"]["service"] == {
        "name": "slimguard-webhook", "namespace": NAMESPACE, "path": "/validate", "port": 443
    }  # fmt: skip
    excluded, ignore_label = webhook["namespaceSelector"]["matchExpressions"]
    assert excluded == {
        "key": "kubernetes.io/metadata.name", "operator": "NotIn",
        "values": ["kube-system", "kube-node-lease", NAMESPACE],
    }  # fmt: skip
    assert ignore_label == {"key": "slimguard.dev/ignore", "operator": "NotIn", "values": ["true"]}
    resources = {resource for rule in webhook["rules"] for resource in rule["resources"]}
    assert resources == WEBHOOK_RESOURCES
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in webhook["rules"])


def test_deployments_are_hardened(base_objects: list[dict[str, Any]]) -> None:
    deployments = {o["metadata"]["name"]: o for o in base_objects if o["kind"] == "Deployment"}
    assert set(deployments) == {"slimguard-controller", "slimguard-webhook"}
    # Two controllers, one leading: a rollout starts the new Pod before it stops an old one.
    assert deployments["slimguard-controller"]["spec"]["replicas"] == 2
    assert deployments["slimguard-controller"]["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert deployments["slimguard-webhook"]["spec"]["replicas"] == 2
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
    webhook = deployments["slimguard-webhook"]["spec"]["template"]["spec"]["containers"][0]
    assert webhook["args"][0] == "webhook"
    assert webhook["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert {"name": "https", "containerPort": 8443} in webhook["ports"]
    controller = deployments["slimguard-controller"]["spec"]["template"]["spec"]["containers"][0]
    assert controller["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    for component in ("controller", "webhook"):
        budget = _one(base_objects, "PodDisruptionBudget", f"slimguard-{component}")["spec"]
        assert budget["minAvailable"] == 1
        assert budget["selector"] == deployments[f"slimguard-{component}"]["spec"]["selector"]
    metrics = _one(base_objects, "Service", "slimguard-metrics")["spec"]["ports"]
    assert metrics == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]


def test_pods_meet_the_restricted_pod_security_standard(
    control_plane: ControlPlane, base_objects: list[dict[str, Any]]
) -> None:
    # The apiserver's own Pod Security admission judges the pod templates; `warn` reports, never blocks.
    namespace = "slimguard-pss-test"
    control_plane.apply(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/warn": "restricted"}},
            }
        )
    )
    for deployment in (o for o in base_objects if o["kind"] == "Deployment"):
        deployment = {**deployment, "metadata": {**deployment["metadata"], "namespace": namespace}}
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment)
        )  # fmt: skip
        assert "PodSecurity" not in result.stderr, result.stderr


# -- RBAC: what each identity may do, asked of the real authorizer ----------------------------------------

RBAC_NAMESPACE = "slimguard-rbac-test"
RBAC_PREFIX = "rbac-test-"

WORKLOADS = (
    "deployments.apps", "statefulsets.apps", "daemonsets.apps", "replicasets.apps", "jobs.batch", "cronjobs.batch",
    "pods",
)  # fmt: skip
REPORTS = ("policyreports.wgpolicyk8s.io", "reports.openreports.io")
REPORT_VERBS = ("get", "list", "create", "patch", "delete")
CONTROLLER_MAY = [
    ("list", "imagepolicies.slimguard.dev"),
    ("watch", "imagepolicies.slimguard.dev"),
    ("patch", "imagepolicies.slimguard.dev", "--subresource=status"),
    *[(verb, "imagereports.slimguard.dev") for verb in ("watch", "create", "update", "patch", "delete")],
    *[("patch", workload) for workload in WORKLOADS],
    ("watch", "pods"),
    ("watch", "namespaces"),
    ("get", "secrets"),
    ("get", "serviceaccounts"),
    ("watch", "vulnerabilityreports.aquasecurity.github.io"),
    ("create", "events"),
    ("create", "events.events.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    *[(verb, reports) for verb in REPORT_VERBS for reports in REPORTS],
]
CONTROLLER_MAY_NOT = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("update", "secrets"),
    ("patch", "imagepolicies.slimguard.dev"),
    ("create", "imagepolicies.slimguard.dev"),
    ("update", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("create", "pods"),
    ("delete", "pods"),
    ("patch", "namespaces"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "clusterkopfpeerings.kopf.dev"),
]
WEBHOOK_MAY = [
    # The caBundle of its own webhook configuration, which it keeps trusting its self-managed certificate.
    ("get", "validatingwebhookconfigurations.admissionregistration.k8s.io/slimguard"),
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/slimguard"),
    ("watch", "imagepolicies.slimguard.dev"),
    ("watch", "imagereports.slimguard.dev"),
    ("watch", "namespaces"),
    ("get", "secrets"),
    ("get", "serviceaccounts"),
    ("watch", "vulnerabilityreports.aquasecurity.github.io"),
]
WEBHOOK_MAY_NOT = [
    ("list", "secrets"),
    ("update", "secrets"),  # its own certificate Secret only, in its namespace (a Role, checked below)
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/another-webhook"),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    ("delete", "validatingwebhookconfigurations.admissionregistration.k8s.io/slimguard"),
    ("patch", "mutatingwebhookconfigurations.admissionregistration.k8s.io/slimguard"),
    ("patch", "deployments.apps"),
    ("patch", "pods"),
    ("patch", "imagepolicies.slimguard.dev", "--subresource=status"),
    ("create", "events"),
    *[("create", reports) for reports in REPORTS],
    ("create", "imagereports.slimguard.dev"),
    ("delete", "imagereports.slimguard.dev"),
]


@pytest.fixture(scope="module")
def rbac_installed(control_plane: ControlPlane, base_objects: list[dict[str, Any]]) -> Iterator[None]:
    """The base's ServiceAccounts, Roles, ClusterRoles and bindings, renamed so they clash with no real install
    (the namespaced ones in RBAC_NAMESPACE, which stands for the install's namespace)."""
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    objects = [json.loads(json.dumps(o)) for o in base_objects if o["kind"] in wanted]
    for obj in objects:
        obj["metadata"]["name"] = RBAC_PREFIX + obj["metadata"]["name"]
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            obj["metadata"]["namespace"] = RBAC_NAMESPACE
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            obj["roleRef"]["name"] = RBAC_PREFIX + obj["roleRef"]["name"]
            for subject in obj["subjects"]:
                subject["name"], subject["namespace"] = RBAC_PREFIX + subject["name"], RBAC_NAMESPACE
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RBAC_NAMESPACE}}
    manifest = yaml.safe_dump_all([namespace, *objects])
    # `kubectl auth can-i` resolves resource names through discovery: the CRDs must be served.
    control_plane.apply(CRDS)
    control_plane.apply(TEST_CRDS)
    control_plane.wait_established()
    control_plane.apply(manifest)
    yield
    control_plane.kubectl("delete", "--wait=false", "--ignore-not-found", "-f", "-", input=manifest)


def _can(cluster: ControlPlane, account: str, verb: str, resource: str, *extra: str) -> bool:
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, *extra, "--all-namespaces",
        f"--as=system:serviceaccount:{RBAC_NAMESPACE}:{RBAC_PREFIX}{account}",
        check=False,
    )  # fmt: skip
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.usefixtures("rbac_installed")
@pytest.mark.parametrize(
    ("account", "allowed", "denied"),
    [
        ("slimguard-controller", CONTROLLER_MAY, CONTROLLER_MAY_NOT),
        ("slimguard-webhook", WEBHOOK_MAY, WEBHOOK_MAY_NOT),
    ],
)
def test_rbac_grants_what_is_needed_and_no_more(
    control_plane: ControlPlane, account: str, allowed: list[tuple[str, ...]], denied: list[tuple[str, ...]]
) -> None:
    missing = [check for check in allowed if not _can(control_plane, account, *check)]
    excess = [check for check in denied if _can(control_plane, account, *check)]
    assert not missing, f"{account} lacks {missing}"
    assert not excess, f"{account} may also {excess}"


LEASES = "leases.coordination.k8s.io"


def _can_in(cluster: ControlPlane, account: str, verb: str, resource: str, namespace: str) -> bool:
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace,
        f"--as=system:serviceaccount:{RBAC_NAMESPACE}:{RBAC_PREFIX}{account}",
        check=False,
    )  # fmt: skip
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.usefixtures("rbac_installed")
def test_the_controller_may_hold_its_leader_lease_in_its_own_namespace_and_nowhere_else(
    control_plane: ControlPlane,
) -> None:
    controller = "slimguard-controller"
    assert [
        v for v in ("get", "create", "update") if not _can_in(control_plane, controller, v, LEASES, RBAC_NAMESPACE)
    ] == []
    assert not _can_in(control_plane, controller, "delete", LEASES, RBAC_NAMESPACE)
    # The cluster's own controllers elect on Leases in kube-system; nodes heartbeat in kube-node-lease.
    for namespace in ("kube-system", "kube-node-lease", "default"):
        assert not any(_can_in(control_plane, controller, v, LEASES, namespace) for v in ("get", "create", "update"))
    assert not any(_can_in(control_plane, "slimguard-webhook", v, LEASES, RBAC_NAMESPACE) for v in ("create", "update"))


# -- matchConditions, judged by the apiserver itself -------------------------------------------------------

MC_NAMESPACE = "slimguard-match-conditions-test"


@pytest.fixture(scope="module")
def unreachable_webhook(control_plane: ControlPlane, base_objects: list[dict[str, Any]]) -> Iterator[str]:
    """The base's webhook, pointed at a closed port with failurePolicy Fail, for one namespace only.

    Every request the apiserver decides to send then fails loudly, and every request the matchConditions
    skip succeeds: which is which shows exactly what the conditions match.
    """
    control_plane.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {MC_NAMESPACE}}}\n")
    configuration = json.loads(json.dumps(_one(base_objects, "ValidatingWebhookConfiguration")))
    configuration["metadata"] = {"name": "slimguard-match-conditions-test"}
    (webhook,) = configuration["webhooks"]
    webhook["clientConfig"] = {"url": f"https://127.0.0.1:{free_port()}/validate"}
    webhook["failurePolicy"] = "Fail"
    webhook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": MC_NAMESPACE}}
    _wait_for_service_account(control_plane)
    kubectl = ("-n", MC_NAMESPACE)
    control_plane.kubectl(*kubectl, "create", "deployment", "web", "--image=registry.example.com/web:1", "--replicas=0")
    control_plane.kubectl(
        *kubectl, "create", "cronjob", "nightly", "--image=registry.example.com/job:1", "--schedule=0 0 * * *"
    )
    control_plane.kubectl(*kubectl, "run", "solo", "--image=registry.example.com/solo:1")
    control_plane.apply(yaml.safe_dump(configuration))
    try:
        _wait_until_webhook_is_called(control_plane)
        yield MC_NAMESPACE
    finally:
        control_plane.kubectl("delete", "validatingwebhookconfiguration", configuration["metadata"]["name"])
        control_plane.kubectl("delete", "namespace", MC_NAMESPACE, "--wait=false")


def _wait_for_service_account(cluster: ControlPlane) -> None:
    # The controller-manager creates the namespace's `default` ServiceAccount; Pods need it.
    deadline = time.monotonic() + 30
    while cluster.kubectl("-n", MC_NAMESPACE, "get", "sa", "default", check=False).returncode != 0:
        assert time.monotonic() < deadline, "no default ServiceAccount"
        time.sleep(0.2)


def _wait_until_webhook_is_called(cluster: ControlPlane) -> None:
    # The apiserver picks up a new webhook configuration asynchronously; probe with a CREATE until it bites.
    deadline = time.monotonic() + 30
    while True:
        result = cluster.kubectl(
            "-n", MC_NAMESPACE, "create", "deployment", "probe", "--image=x/y:1", "--dry-run=server", check=False
        )
        if result.returncode != 0:
            return
        assert time.monotonic() < deadline, "the webhook configuration never took effect"
        time.sleep(0.2)


def _called(result: subprocess.CompletedProcess[str]) -> bool:
    if result.returncode == 0:
        return False
    assert 'failed calling webhook "images.slimguard.dev"' in result.stderr, result.stderr
    return True


@pytest.mark.parametrize(
    ("change", "calls_webhook"),
    [
        (("scale", "deployment", "web", "--replicas=3"), False),
        (("label", "deployment", "web", "slimguard.dev/status=compliant"), False),
        (("annotate", "deployment", "web", "slimguard.dev/violations=[]"), False),
        (("label", "deployment", "web", "team=shop"), False),
        (("set", "resources", "deployment", "web", "--limits=cpu=200m"), False),
        (("set", "image", "deployment/web", "web=registry.example.com/web:2"), True),
        (("patch", "cronjob", "nightly", "-p", '{"spec": {"suspend": true}}'), False),
        (("set", "image", "cronjob/nightly", "nightly=registry.example.com/job:2"), True),
        (("label", "pod", "solo", "team=shop"), False),
        (("set", "image", "pod/solo", "solo=registry.example.com/solo:2"), True),
        (("create", "deployment", "fresh", "--image=registry.example.com/web:1"), True),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_match_conditions_send_only_creates_and_image_changes(
    control_plane: ControlPlane, unreachable_webhook: str, change: tuple[str, ...], calls_webhook: bool
) -> None:
    result = control_plane.kubectl("-n", unreachable_webhook, *change, "--dry-run=server", check=False)
    assert _called(result) == calls_webhook, result.stdout + result.stderr


# -- webhook certificates: none rendered by default, cert-manager as a component ---------------------------------


def _self_managed_names(objects: list[dict[str, Any]], webhook: str = "slimguard-webhook") -> dict[str, str]:
    """What the webhook is told to keep (its --certificate-secret, --service and --webhook-configuration)."""
    (container,) = _one(objects, "Deployment", webhook)["spec"]["template"]["spec"]["containers"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"][1:] if "=" in arg)
    env = {variable["name"]: variable.get("valueFrom") for variable in container["env"]}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    return {key: flags[key] for key in ("certificate-secret", "service", "webhook-configuration")}


def assert_the_webhook_keeps_its_own_certificate(objects: list[dict[str, Any]]) -> None:
    """No secret material, no caBundle; what the webhook is told to write is what its RBAC lets it write."""
    assert [o for o in objects if o["kind"] in ("Secret", "Certificate", "Issuer")] == []
    configuration = _one(objects, "ValidatingWebhookConfiguration")
    (webhook,) = configuration["webhooks"]
    assert "caBundle" not in webhook["clientConfig"]
    names = _self_managed_names(objects)
    assert names["webhook-configuration"] == configuration["metadata"]["name"]
    assert names["service"] == webhook["clientConfig"]["service"]["name"]
    pod = _one(objects, "Deployment", "slimguard-webhook")["spec"]["template"]["spec"]
    assert "tls" not in {volume["name"] for volume in pod["volumes"]}
    cluster_role = _one(objects, "ClusterRole", "slimguard-webhook")
    assert {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["validatingwebhookconfigurations"],
        "resourceNames": [names["webhook-configuration"]],
        "verbs": ["get", "patch"],
    } in cluster_role["rules"]
    role = _one(objects, "Role", "slimguard-webhook")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [names["certificate-secret"]],
            "verbs": ["get", "update", "delete"],
        },
    ]
    binding = _one(objects, "RoleBinding", "slimguard-webhook")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
    ]
    assert role["metadata"]["namespace"] == NAMESPACE


def test_the_kustomize_base_and_dev_overlay_render_no_secret_material(
    base_objects: list[dict[str, Any]], control_plane: ControlPlane, dev_overlay: Path
) -> None:
    assert_the_webhook_keeps_its_own_certificate(base_objects)
    assert_the_webhook_keeps_its_own_certificate(_objects(_render(control_plane, dev_overlay)))


def test_the_cert_manager_component_mounts_the_certificate_it_issues_and_drops_the_write_access(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    overlay = _user_overlay(
        tmp_path,
        "resources: [../../base]\ncomponents: [../../components/cert-manager]\n",
    )
    objects = _objects(_render(control_plane, overlay))
    certificate = _one(objects, "Certificate")
    pod = _one(objects, "Deployment", "slimguard-webhook")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--tls-cert-file=/etc/slimguard/tls/tls.crt" in container["args"]
    assert not [arg for arg in container["args"] if arg.startswith(("--certificate-secret", "--webhook-configuration"))]
    (tls,) = [volume for volume in pod["volumes"] if volume["name"] == "tls"]
    assert tls["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert {"name": "tls", "mountPath": "/etc/slimguard/tls", "readOnly": True} in container["volumeMounts"]
    configuration = _one(objects, "ValidatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/{certificate['metadata']['name']}"
    }
    # The webhook writes no Secret (cert-manager does): no Role grants one; the controller's Lease Role stays.
    roles = [o for o in objects if o["kind"] == "Role"]
    assert not [rule for role in roles for rule in role["rules"] if "secrets" in rule["resources"]]
    rules = _one(objects, "ClusterRole", "slimguard-webhook")["rules"]
    assert not [rule for rule in rules if "validatingwebhookconfigurations" in rule["resources"]]


# -- Helm (built by scripts/build-helm.sh, which `make test` runs first) ---------------------------------------


def _helm_render(helm: str, *sets: str, set_files: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    # Offline, helm assumes Kubernetes v1.20, below the chart's kubeVersion: say which cluster we render for.
    argv = [helm, "template", "slimguard", str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.36.3"]
    for value in sets:
        argv += ["--set", value]
    for value in set_files:
        argv += ["--set-file", value]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _helm_template(helm: str, *sets: str, set_files: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rendered = _helm_render(helm, *sets, set_files=set_files)
    assert rendered.returncode == 0, rendered.stderr
    return _objects(rendered.stdout)


def _helm_refuses(helm: str, *sets: str) -> str:
    """The one error line of a render helm refuses."""
    rendered = _helm_render(helm, *sets)
    assert rendered.returncode != 0, f"helm rendered {sets}"
    (error,) = [line for line in rendered.stderr.splitlines() if line.startswith("Error:")]
    return error


def _pod(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    pod: dict[str, Any] = _one(objects, "Deployment", f"slimguard-{component}")["spec"]["template"]["spec"]
    return pod


def test_helm_lint(helm: str) -> None:
    result = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_and_kustomize_produce_the_same_objects(helm: str, base_objects: list[dict[str, Any]]) -> None:
    def comparable(objects: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        out = {}
        for obj in objects:
            if obj["kind"] == "CustomResourceDefinition":  # crds/ apart
                continue
            if "helm.sh/hook" in obj["metadata"].get("annotations", {}):  # `helm test`'s Pod is Helm's alone
                continue
            body = {key: value for key, value in obj.items() if key != "metadata"}
            out[(obj["kind"], obj["metadata"]["name"])] = body
        return out

    assert comparable(_helm_template(helm)) == comparable(json.loads(json.dumps(base_objects)))


def test_helm_chart_applies(helm: str, control_plane: ControlPlane) -> None:
    control_plane.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n")
    rendered = yaml.safe_dump_all(_helm_template(helm))
    control_plane.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=rendered)


def test_helm_runs_two_controllers_that_elect_a_leader_and_keeps_one_through_disruptions(helm: str) -> None:
    objects = _helm_template(helm)
    (controller,) = _pod(objects, "controller")["containers"]
    assert "--leader-elect-resource-name=slimguard-controller" in controller["args"]
    assert {e["name"]: e for e in controller["env"]}["POD_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert _one(objects, "Deployment", "slimguard-controller")["spec"]["replicas"] == 2
    assert _one(objects, "PodDisruptionBudget", "slimguard-controller")["spec"]["minAvailable"] == 1
    role = _one(objects, "Role", "slimguard-controller")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    # One replica: no budget, which would block every drain.
    single = _helm_template(helm, "controller.replicas=1")
    assert [o for o in single if o["kind"] == "PodDisruptionBudget" and "controller" in o["metadata"]["name"]] == []


def test_helm_optional_objects(helm: str) -> None:
    objects = _helm_template(
        helm, "webhook.certificates.mode=cert-manager", "serviceMonitor.enabled=true", "prometheusRule.enabled=true"
    )
    kinds = {obj["kind"] for obj in objects}
    assert {"Certificate", "Issuer", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert "Secret" not in kinds
    configuration = _one(objects, "ValidatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "slimguard/slimguard-webhook"
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    assert _one(objects, "Certificate")["spec"]["secretName"] == "slimguard-webhook-tls"
    assert_the_webhook_mounts_its_certificate(objects, "slimguard-webhook-tls")


def assert_the_webhook_mounts_its_certificate(objects: list[dict[str, Any]], secret: str) -> None:
    """cert-manager and provided: the webhook serves the mounted Secret and has no write access for certificates."""
    pod = _pod(objects, "webhook")
    (container,) = pod["containers"]
    assert {"--tls-cert-file=/etc/slimguard/tls/tls.crt", "--tls-key-file=/etc/slimguard/tls/tls.key"} <= set(
        container["args"]
    )
    assert not [arg for arg in container["args"] if arg.startswith("--certificate-secret")]
    assert {"name": "tls", "secret": {"secretName": secret}} in pod["volumes"]
    assert [o for o in objects if o["kind"] in ("Role", "RoleBinding") and "webhook" in o["metadata"]["name"]] == []
    rules = _one(objects, "ClusterRole", "slimguard-webhook")["rules"]
    assert not [rule for rule in rules if "validatingwebhookconfigurations" in rule["resources"]]


def test_helm_renders_no_secret_material_by_default_and_the_same_bytes_every_time(helm: str) -> None:
    first, second = _helm_render(helm), _helm_render(helm)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert_the_webhook_keeps_its_own_certificate(_objects(first.stdout))


def test_helm_provided_certificates_are_the_secret_and_ca_bundle_given(helm: str) -> None:
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n...").decode()
    objects = _helm_template(
        helm, "webhook.certificates.mode=provided", f"webhook.tls.caBundle={bundle}", "webhook.tls.secretName=own-tls"
    )
    (webhook,) = _one(objects, "ValidatingWebhookConfiguration")["webhooks"]
    assert webhook["clientConfig"]["caBundle"] == bundle
    assert [o for o in objects if o["kind"] in ("Secret", "Certificate")] == []
    assert_the_webhook_mounts_its_certificate(objects, "own-tls")


def test_helm_refuses_certificate_values_that_cannot_work(helm: str) -> None:
    assert 'webhook.certificates.mode must be self-managed, cert-manager or provided; got "generated"' in (
        _helm_refuses(helm, "webhook.certificates.mode=generated")
    )
    assert "webhook.certificates.mode=provided needs webhook.tls.caBundle" in (
        _helm_refuses(helm, "webhook.certificates.mode=provided")
    )
    assert "certManager.enabled is gone: set webhook.certificates.mode=cert-manager" in (
        _helm_refuses(helm, "certManager.enabled=true")
    )


GITOPS_NAMESPACE = "slimguard-gitops"


def test_two_renders_applied_in_a_row_change_nothing_and_keep_the_webhooks_own_ca_bundle(
    helm: str, control_plane: ControlPlane
) -> None:
    """`helm template | kubectl apply`, as a GitOps tool does on every sync: the webhook makes its certificate and
    patches the caBundle with the chart's own RBAC; the next render is the same bytes, and applied it changes
    nothing and keeps the caBundle."""
    import asyncio

    from slimguard.admission.certificate_manager import CertificateManager, SelfManagedCertificates
    from slimguard.kube.gateway import load_api_client
    from slimguard.kube.webhook_certificates import WebhookCertificateStore

    def render() -> str:
        result = subprocess.run(
            [helm, "template", "gitops", str(CHART), "--namespace", GITOPS_NAMESPACE, "--kube-version", "1.36.3"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return result.stdout

    rendered = render()
    objects = _objects(rendered)
    names = _self_managed_names(objects, "gitops-slimguard-webhook")
    control_plane.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {GITOPS_NAMESPACE}}}\n")
    try:
        control_plane.kubectl("apply", "-f", "-", input=rendered)
        account = _one(objects, "Deployment", "gitops-slimguard-webhook")["spec"]["template"]["spec"]
        kubeconfig = control_plane.service_account_kubeconfig(GITOPS_NAMESPACE, account["serviceAccountName"])
        settings = SelfManagedCertificates(
            secret_name=names["certificate-secret"],
            namespace=GITOPS_NAMESPACE,
            service=names["service"],
            webhook_configuration=names["webhook-configuration"],
        )

        async def keep_certificate() -> bytes:
            store = WebhookCertificateStore(
                load_api_client(str(kubeconfig)),
                namespace=settings.namespace,
                secret_name=settings.secret_name,
                configuration_name=settings.webhook_configuration,
            )
            manager = CertificateManager(store=store, settings=settings)
            try:
                await manager.start()
                assert manager.untrusted is None
                return manager.pem_file.read_bytes()
            finally:
                manager.remove_files()

        served = asyncio.run(keep_certificate())

        def ca_bundle() -> bytes:
            configuration = json.loads(
                control_plane.kubectl("get", "validatingwebhookconfiguration", "gitops-slimguard", "-o", "json").stdout
            )
            return base64.b64decode(configuration["webhooks"][0]["clientConfig"]["caBundle"])

        patched = ca_bundle()
        ca = x509.load_pem_x509_certificate(patched)
        x509.load_pem_x509_certificate(served).verify_directly_issued_by(ca)

        def versions() -> dict[tuple[str, str], str]:
            found = json.loads(control_plane.kubectl("get", "-f", "-", "-o", "json", input=rendered).stdout)
            return {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in found["items"]}

        before = versions()
        again = render()
        assert again == rendered
        # kubectl diff: nothing would change (caBundle is in no render, so no apply removes it) ...
        diff = control_plane.kubectl("diff", "-f", "-", input=again, check=False)
        assert diff.returncode == 0, diff.stdout + diff.stderr
        # ... and applying it writes nothing: no object changes (kubectl still says "configured" for the
        # PodDisruptionBudgets, whose selector it always sends whole: patchStrategy replace).
        control_plane.kubectl("apply", "-f", "-", input=again)
        assert versions() == before
        assert ca_bundle() == patched
        secret = json.loads(
            control_plane.kubectl(
                "get", "secret", names["certificate-secret"], "-n", GITOPS_NAMESPACE, "-o", "json"
            ).stdout
        )
        assert secret["metadata"]["ownerReferences"][0]["name"] == "gitops-slimguard"
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=rendered)
    # Uninstalled, the webhook configuration takes its CA with it (Kubernetes' garbage collector, by owner).
    deadline = time.monotonic() + 60
    while control_plane.kubectl(
        "get", "secret", names["certificate-secret"], "-n", GITOPS_NAMESPACE, "--ignore-not-found", "-o", "name"
    ).stdout.strip():
        assert time.monotonic() < deadline, "the webhook's Secret outlived its webhook configuration"
        time.sleep(0.5)
    control_plane.kubectl("delete", "namespace", GITOPS_NAMESPACE, "--wait=false")


def test_helm_passes_the_tag_ttl_and_staleness_to_both_components(helm: str) -> None:
    def args_of(*sets: str) -> list[list[str]]:
        deployments = [o for o in _helm_template(helm, *sets) if o["kind"] == "Deployment"]
        return [d["spec"]["template"]["spec"]["containers"][0]["args"] for d in deployments]

    set_both = args_of("registries.tagTtlSeconds=60", "registries.tagMaxStaleSeconds=0")
    assert len(set_both) == 2
    for args in set_both:
        assert "--tag-ttl=60" in args
        assert "--tag-max-stale=0" in args, "0 (no staleness) is a value, not an absence"
    for args in args_of():
        assert not any(a.startswith(("--tag-ttl", "--tag-max-stale")) for a in args)


def test_helm_passes_the_report_page_size_to_both_components(helm: str) -> None:
    def args_of(*sets: str) -> list[list[str]]:
        deployments = [o for o in _helm_template(helm, *sets) if o["kind"] == "Deployment"]
        return [d["spec"]["template"]["spec"]["containers"][0]["args"] for d in deployments]

    set_both = args_of("reportPageSize=25")
    assert len(set_both) == 2
    for args in set_both:
        assert "--report-page-size=25" in args
    for args in args_of():
        assert not any(a.startswith("--report-page-size") for a in args), "unset: slimguard's own default"


def test_helm_limits_trusted_report_namespaces_for_both_components(helm: str) -> None:
    objects = _helm_template(helm, "trustedReportNamespaces={trivy-system,security}")
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert len(deployments) == 2
    for deployment in deployments:
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--trusted-report-namespaces=trivy-system" in args
        assert "--trusted-report-namespaces=security" in args
    default = [o for o in _helm_template(helm) if o["kind"] == "Deployment"]
    assert not any(
        "--trusted-report-namespaces" in a
        for d in default
        for a in d["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_helm_policy_reports_are_on_by_default_and_can_be_turned_off(helm: str) -> None:
    def controller_and_role(*sets: str) -> tuple[list[str], list[dict[str, Any]]]:
        objects = _helm_template(helm, *sets)
        (controller,) = [o for o in objects if o["kind"] == "Deployment" and "controller" in o["metadata"]["name"]]
        (role,) = [o for o in objects if o["kind"] == "ClusterRole" and "controller" in o["metadata"]["name"]]
        return controller["spec"]["template"]["spec"]["containers"][0]["args"], role["rules"]

    def report_groups(rules: list[dict[str, Any]]) -> set[str]:
        return {g for rule in rules for g in rule["apiGroups"] if g in ("wgpolicyk8s.io", "openreports.io")}

    args, rules = controller_and_role()
    assert "--policy-reports=wgpolicyk8s.io" in args
    assert report_groups(rules) == {"wgpolicyk8s.io", "openreports.io"}
    args, _ = controller_and_role("policyReports.api=openreports.io")
    assert "--policy-reports=openreports.io" in args
    args, rules = controller_and_role("policyReports.enabled=false")
    assert "--policy-reports=none" in args
    assert report_groups(rules) == set()


def _scrape_annotations(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        o["metadata"]["name"]: (o["spec"]["template"]["metadata"].get("annotations") or {})
        for o in objects
        if o["kind"] == "Deployment"
    }


def test_pods_carry_plain_scrape_annotations_for_a_prometheus_without_the_operator(
    helm: str, base_objects: list[dict[str, Any]]
) -> None:
    for objects in (base_objects, _helm_template(helm)):
        deployments = [o for o in objects if o["kind"] == "Deployment"]
        assert len(deployments) == 2
        for deployment in deployments:
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            (metrics_port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
            assert annotations["prometheus.io/scrape"] == "true"
            assert annotations["prometheus.io/port"] == str(metrics_port)
            assert annotations["prometheus.io/path"] == "/metrics"
        # Not on the Services too: a Prometheus scraping annotated Services as well would count twice.
        for service in (o for o in objects if o["kind"] == "Service"):
            assert "prometheus.io/scrape" not in (service["metadata"].get("annotations") or {})


def test_helm_scrape_annotations_follow_the_port_and_can_be_turned_off(helm: str) -> None:
    moved = _scrape_annotations(_helm_template(helm, "metrics.port=9100", "controller.podAnnotations.team=shop"))
    assert {a["prometheus.io/port"] for a in moved.values()} == {"9100"}
    assert moved["slimguard-controller"]["team"] == "shop"
    off = _scrape_annotations(_helm_template(helm, "metrics.scrapeAnnotations=false"))
    assert not any("prometheus.io/scrape" in a for a in off.values())


def test_helm_sets_the_image_report_grace_period_of_the_controller(helm: str) -> None:
    def controller_args(*sets: str) -> list[str]:
        objects = _helm_template(helm, *sets)
        (controller,) = [o for o in objects if o["kind"] == "Deployment" and "controller" in o["metadata"]["name"]]
        return list(controller["spec"]["template"]["spec"]["containers"][0]["args"])

    assert "--report-grace-period=86400" in controller_args()
    assert "--report-grace-period=3600" in controller_args("controller.reportGracePeriod=3600")


# -- values a real install needed (issue 22) ---------------------------------------------------------------


def test_helm_webhook_path_is_the_same_in_the_server_and_its_configuration(helm: str) -> None:
    for sets, path in (((), "/validate"), (("webhook.path=/admit/images",), "/admit/images")):
        objects = _helm_template(helm, *sets)
        (configured,) = _one(objects, "ValidatingWebhookConfiguration")["webhooks"]
        assert configured["clientConfig"]["service"]["path"] == path
        assert f"--path={path}" in _pod(objects, "webhook")["containers"][0]["args"]


@pytest.mark.parametrize("path", ["validate", "/healthz"])
def test_helm_refuses_a_webhook_path_the_server_cannot_serve(helm: str, path: str) -> None:
    assert f'webhook.path must start with / and differ from /healthz and /readyz; got "{path}"' in _helm_refuses(
        helm, f"webhook.path={path}"
    )


def _registry_ca_wiring(pod: dict[str, Any]) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """The container's --ca-file flags, and the registry-ca volume and mount."""
    (container,) = pod["containers"]
    flags = [arg for arg in container["args"] if arg.startswith("--ca-file=")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "registry-ca"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "registry-ca"]
    return flags, volume, mount


def test_helm_registry_ca_bundle_given_inline_reaches_both_components(
    helm: str, testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    bundle = tmp_path / "registry-ca.crt"
    bundle.write_bytes(testbed_ca.cert_pem)
    objects = _helm_template(helm, set_files=(f"registries.caBundle={bundle}",))
    config_map = _one(objects, "ConfigMap", "slimguard-registry-ca")
    assert config_map["data"]["ca.crt"].strip() == testbed_ca.cert_pem.decode().strip()
    for component in ("controller", "webhook"):
        flags, volume, mount = _registry_ca_wiring(_pod(objects, component))
        assert flags == ["--ca-file=/etc/slimguard/registry-ca/ca.crt"]
        assert volume == {"name": "registry-ca", "configMap": {"name": "slimguard-registry-ca"}}
        assert mount == {"name": "registry-ca", "mountPath": "/etc/slimguard/registry-ca", "readOnly": True}
        template = _one(objects, "Deployment", f"slimguard-{component}")["spec"]["template"]
        assert "checksum/registry-ca" in template["metadata"]["annotations"]  # a new bundle rolls the Pods


def test_helm_registry_ca_bundle_from_an_existing_secret_or_config_map(helm: str) -> None:
    secret = _helm_template(helm, "registries.caBundleSecret=corp-ca", "registries.caBundleKey=bundle.pem")
    config_map = _helm_template(helm, "registries.caBundleConfigMap=corp-ca")
    for component in ("controller", "webhook"):
        flags, volume, _ = _registry_ca_wiring(_pod(secret, component))
        assert flags == ["--ca-file=/etc/slimguard/registry-ca/bundle.pem"]
        assert volume["secret"] == {"secretName": "corp-ca"}
        flags, volume, _ = _registry_ca_wiring(_pod(config_map, component))
        assert flags == ["--ca-file=/etc/slimguard/registry-ca/ca.crt"]
        assert volume["configMap"] == {"name": "corp-ca"}
    assert not [o for o in secret + config_map if o["kind"] == "ConfigMap"]


def test_helm_refuses_a_registry_ca_bundle_it_cannot_use(helm: str) -> None:
    assert 'registries.caBundle must be PEM text starting -----BEGIN CERTIFICATE-----; got "ca.crt"' in (
        _helm_refuses(helm, "registries.caBundle=ca.crt")
    )
    assert "set at most one of caBundle, caBundleConfigMap and caBundleSecret (got caBundleConfigMap=a, " in (
        _helm_refuses(helm, "registries.caBundleConfigMap=a", "registries.caBundleSecret=b")
    )


EXTRA_VOLUME = (
    "extraVolumes[0].name=corp-ca",
    "extraVolumes[0].secret.secretName=corp-ca",
    "extraVolumeMounts[0].name=corp-ca",
    "extraVolumeMounts[0].mountPath=/etc/corp",
    "extraVolumeMounts[0].readOnly=true",
)
EXTRA_VOLUME_VALUES = (
    *(f"{component}.{value}" for component in ("controller", "webhook") for value in EXTRA_VOLUME),
    "registries.extraCaFiles={/etc/corp/ca.pem}",
)


def test_helm_extra_volumes_and_ca_files_reach_both_components(helm: str) -> None:
    objects = _helm_template(helm, *EXTRA_VOLUME_VALUES)
    for component in ("controller", "webhook"):
        pod = _pod(objects, component)
        (container,) = pod["containers"]
        assert {"name": "corp-ca", "secret": {"secretName": "corp-ca"}} in pod["volumes"]
        assert {"name": "corp-ca", "mountPath": "/etc/corp", "readOnly": True} in container["volumeMounts"]
        assert [a for a in container["args"] if a.startswith("--ca-file=")] == ["--ca-file=/etc/corp/ca.pem"]


def test_helm_chart_with_a_registry_ca_and_extra_volumes_applies(
    helm: str, control_plane: ControlPlane, testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    bundle = tmp_path / "registry-ca.crt"
    bundle.write_bytes(testbed_ca.cert_pem)
    objects = _helm_template(helm, *EXTRA_VOLUME_VALUES, set_files=(f"registries.caBundle={bundle}",))
    control_plane.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n")
    control_plane.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump_all(objects)
    )


EKS_PROVIDERS = (
    "registries.credentialProviders.config=/etc/eks/image-credential-provider/config.json",
    "registries.credentialProviders.binDir=/etc/eks/image-credential-provider",
)


def _credential_provider_wiring(pod: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """The container's credential provider flags, and the volumes and mounts named credential-provider-*."""
    (container,) = pod["containers"]
    flags = [arg for arg in container["args"] if arg.startswith("--image-credential-provider-")]
    volumes = [v for v in pod["volumes"] if v["name"].startswith("credential-provider-")]
    mounts = [m for m in container["volumeMounts"] if m["name"].startswith("credential-provider-")]
    return flags, volumes, mounts


def test_helm_credential_providers_mount_the_nodes_configuration_and_binaries_read_only_in_both_components(
    helm: str,
) -> None:
    objects = _helm_template(helm, *EKS_PROVIDERS)
    for component in ("controller", "webhook"):
        flags, volumes, mounts = _credential_provider_wiring(_pod(objects, component))
        assert flags == [
            "--image-credential-provider-config=/etc/eks/image-credential-provider/config.json",
            "--image-credential-provider-bin-dir=/etc/eks/image-credential-provider",
        ]
        assert volumes == [
            {
                "name": "credential-provider-config",
                "hostPath": {"path": "/etc/eks/image-credential-provider/config.json", "type": "File"},
            },
            {
                "name": "credential-provider-bin",
                "hostPath": {"path": "/etc/eks/image-credential-provider", "type": "Directory"},
            },
        ]
        assert mounts == [
            {
                "name": "credential-provider-config",
                "mountPath": "/etc/eks/image-credential-provider/config.json",
                "readOnly": True,
            },
            {"name": "credential-provider-bin", "mountPath": "/etc/eks/image-credential-provider", "readOnly": True},
        ]
    # A directory of configuration files is mounted as a directory; with mount: volumes only the flags are set.
    providers_d = "registries.credentialProviders.config=/etc/kubelet/providers.d"
    directory = _helm_template(helm, providers_d, "registries.credentialProviders.binDir=/usr/libexec/providers")
    _, volumes, _ = _credential_provider_wiring(_pod(directory, "webhook"))
    assert volumes[0]["hostPath"] == {"path": "/etc/kubelet/providers.d", "type": "Directory"}
    own = _helm_template(helm, *EKS_PROVIDERS, "registries.credentialProviders.mount=volumes")
    flags, volumes, mounts = _credential_provider_wiring(_pod(own, "controller"))
    assert len(flags) == 2
    assert (volumes, mounts) == ([], [])
    # Off by default.
    assert _credential_provider_wiring(_pod(_helm_template(helm), "webhook")) == ([], [], [])


def test_helm_refuses_credential_provider_values_that_cannot_work(helm: str) -> None:
    assert "registries.credentialProviders: set both config and binDir" in _helm_refuses(
        helm, "registries.credentialProviders.config=/etc/eks/image-credential-provider/config.json"
    )
    refused = _helm_render(helm, "registries.credentialProviders.config=config.json")
    assert refused.returncode != 0
    assert "/registries/credentialProviders/config" in refused.stderr
    refused = _helm_render(helm, *EKS_PROVIDERS, "registries.credentialProviders.mount=emptyDir")
    assert refused.returncode != 0
    assert "/registries/credentialProviders/mount" in refused.stderr


def test_the_credential_providers_component_gives_the_pods_what_the_chart_gives_them(
    helm: str, control_plane: ControlPlane, tmp_path: Path
) -> None:
    overlay = _user_overlay(
        tmp_path,
        "resources: [../../base]\ncomponents: [../../components/credential-providers]\n",
    )
    kustomized = _objects(_render(control_plane, overlay))
    charted = _helm_template(helm, *EKS_PROVIDERS)
    for component in ("controller", "webhook"):
        assert _credential_provider_wiring(_pod(kustomized, component)) == _credential_provider_wiring(
            _pod(charted, component)
        )
    control_plane.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n")
    for objects in (charted, [o for o in kustomized if o["kind"] == "Deployment"]):
        control_plane.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump_all(objects)
        )


def test_pods_tell_kopf_who_they_are_and_probe_the_family_of_their_ip(
    helm: str, base_objects: list[dict[str, Any]]
) -> None:
    for objects in (base_objects, _helm_template(helm)):
        for component in ("controller", "webhook"):
            env = {e["name"]: e for e in _pod(objects, component)["containers"][0]["env"]}
            # kopf names itself after POD_ID, else the UID's passwd entry, which an arbitrary UID lacks.
            assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        (controller,) = _pod(objects, "controller")["containers"]
        assert "--liveness=http://[::]:8080/healthz" in controller["args"]
        assert {e["name"]: e for e in controller["env"]}["POD_IP"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "status.podIP"}
        }


# -- an egress proxy for registry requests (issue 24) ------------------------------------------------------------


def test_helm_passes_the_registry_proxy_to_both_components_and_refuses_a_url_with_a_path(helm: str) -> None:
    objects = _helm_template(
        helm,
        "registries.proxy.httpsProxy=http://svc:p4ss@proxy.corp.example:3128",
        "registries.proxy.httpProxy=proxy.corp.example:8080",
        "registries.proxy.noProxy={.svc,10.0.0.0/8,registry.corp.example:5000}",
    )
    for component in ("controller", "webhook"):
        args = _pod(objects, component)["containers"][0]["args"]
        assert [a for a in args if "proxy" in a] == [
            "--https-proxy=http://svc:p4ss@proxy.corp.example:3128",
            "--http-proxy=proxy.corp.example:8080",
            "--no-proxy=.svc",
            "--no-proxy=10.0.0.0/8",
            "--no-proxy=registry.corp.example:5000",
        ]
    # Unset: no flag, so the Pods' own HTTPS_PROXY/NO_PROXY (if any) apply.
    for component in ("controller", "webhook"):
        assert not [a for a in _pod(_helm_template(helm), component)["containers"][0]["args"] if "proxy" in a]
    refused = _helm_render(helm, "registries.proxy.httpsProxy=http://proxy:3128/x")
    assert refused.returncode != 0
    assert "at '/registries/proxy/httpsProxy': 'http://proxy:3128/x' does not match pattern" in refused.stderr


def test_the_registry_proxy_component_gives_both_components_the_proxy_options_from_the_overlay(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    from slimguard.cli.main import HttpProxy, HttpsProxy, NoProxy

    overlay = _user_overlay(
        tmp_path,
        "namespace: slimguard\nresources: [../../base]\ncomponents: [../../components/registry-proxy]\n"
        "configMapGenerator:\n  - name: slimguard-registry-proxy\n    literals:\n"
        "      - SLIMGUARD_HTTPS_PROXY=http://proxy.corp.example:3128\n"
        "      - SLIMGUARD_NO_PROXY=.svc,10.0.0.0/8\n",
    )
    objects = _objects(_render(control_plane, overlay))
    generated = _one(objects, "ConfigMap")
    # The keys the component documents are the options' own variables.
    options = {option.__metadata__[0].envvar for option in (HttpsProxy, HttpProxy, NoProxy)}
    assert options == {"SLIMGUARD_HTTPS_PROXY", "SLIMGUARD_HTTP_PROXY", "SLIMGUARD_NO_PROXY"}
    assert set(generated["data"]) <= options
    for component in ("controller", "webhook"):
        (container,) = _pod(objects, component)["containers"]
        assert container["envFrom"] == [
            {"configMapRef": {"name": generated["metadata"]["name"], "optional": True}},
            {"secretRef": {"name": "slimguard-registry-proxy", "optional": True}},
        ]
        assert not [e for e in container["env"] if e["name"].lower().endswith("_proxy")]  # not HTTPS_PROXY itself
