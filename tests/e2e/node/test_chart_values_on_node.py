"""Every value the chart documents works (issue 22): installed on the real node with every value changed from its
default, then `helm upgrade` to a second set of changed values, then `helm uninstall`; after the install and the
upgrade slimguard's webhook answers (it denies a fat Deployment, admits a slim one) and every Pod serves its metrics
on the port the values name. The values an install cannot exercise here say where they are checked instead, and a
test keeps the tables complete: a value added to values.yaml without a place in them fails it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cluster import deployment, documented_values, image_policy, namespace, wait_for
from pods import component_pods, denied_by_slimguard

from slimguard_testbed import CertificateAuthority, DockerEngine
from slimguard_testbed.images import FixtureImages
from slimguard_testbed.node import RealNode
from slimguard_testbed.node.install import CHART, apply_crds, diagnose, image_values, push_self_image
from slimguard_testbed.node.install import helm as helm_run

pytestmark = pytest.mark.timeout(900)

RELEASE = "slimguard"
NAMESPACE = "slimguard-values"
WORKLOADS = "shop-values"
DASHBOARDS = "grafana"
REGISTRY_CA = "node-registry-ca"
"""A ConfigMap (key registry.pem) and a Secret (key ca.crt) of that name, both holding the node registry's CA."""
PULL_SECRET = "node-registry-pull"
SERVING_SECRET = "guard-serving"
"""The webhook's serving certificate in mode provided, made by the user (here by the test bed's CA)."""
EXTRA_CA_DIR = "/etc/extra-ca"
TOLERATION = {"key": "example.com/dedicated", "operator": "Exists", "effect": "NoSchedule"}
ON_LINUX = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
            ]
        }
    }
}
RESOURCES = {"requests": {"cpu": "20m", "memory": "96Mi"}, "limits": {"cpu": "500m", "memory": "448Mi"}}
EXTRA_CA_VOLUME = [{"name": "extra-ca", "configMap": {"name": REGISTRY_CA}}]
EXTRA_CA_MOUNT = [{"name": "extra-ca", "mountPath": EXTRA_CA_DIR, "readOnly": True}]


def first_values(*, registry: str, webhook_ca: bytes) -> dict[str, Any]:
    """The install: renamed, one replica each, another port and path, the user's own serving certificate,
    failurePolicy Fail, the registry CA from a ConfigMap, an arbitrary UID with group 0 (as OpenShift runs Pods)."""
    return {
        "nameOverride": "sg",
        "fullnameOverride": "guard",
        "image.pullPolicy": "Always",
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "logLevel": "DEBUG",
        "registries.allowPrivate": True,
        "registries.allowlist": [registry],
        "registries.tagTtlSeconds": 60,
        "registries.tagMaxStaleSeconds": 0,
        "registries.caBundleConfigMap": REGISTRY_CA,
        "registries.caBundleKey": "registry.pem",
        # A proxy nothing listens behind, and the registry in noProxy: the webhook denies the fat Deployment only if
        # the registry is read around the proxy, as noProxy says (tests/e2e/test_registry_proxy.py: through one).
        "registries.proxy.httpsProxy": f"http://{registry.rsplit(':', 1)[0]}:9",
        "registries.proxy.httpProxy": f"{registry.rsplit(':', 1)[0]}:9",
        "registries.proxy.noProxy": [registry],
        "trustedReportNamespaces": ["trivy-system"],
        "reportPageSize": 50,
        "policyReports.enabled": False,
        "controller.replicas": 1,
        "controller.workers": 2,
        "controller.auditInterval": 60,
        "controller.reportGracePeriod": 3600,
        "controller.dryRun": True,
        "controller.livenessPort": 8181,
        "controller.extraArgs": ["--image-metrics=20"],
        "controller.extraEnv": [{"name": "SLIMGUARD_VALUES", "value": "first"}],
        "controller.resources": RESOURCES,
        "controller.nodeSelector": {"kubernetes.io/os": "linux"},
        "controller.tolerations": [TOLERATION],
        "controller.affinity": ON_LINUX,
        "controller.podAnnotations": {"example.com/owner": "platform"},
        "webhook.replicas": 1,
        "webhook.port": 9443,
        "webhook.path": "/admit",
        "webhook.timeoutSeconds": 5,
        "webhook.failurePolicy": "Fail",
        "webhook.excludedNamespaces": ["kube-system"],
        "webhook.certificates.mode": "provided",
        "webhook.tls.secretName": SERVING_SECRET,
        "webhook.tls.caBundle": base64.b64encode(webhook_ca).decode(),
        "webhook.extraArgs": ["--shutdown-delay=2"],
        "webhook.extraEnv": [{"name": "SLIMGUARD_VALUES", "value": "first"}],
        "webhook.resources": RESOURCES,
        "webhook.nodeSelector": {"kubernetes.io/os": "linux"},
        "webhook.tolerations": [TOLERATION],
        "webhook.affinity": ON_LINUX,
        "webhook.podAnnotations": {"example.com/owner": "platform"},
        "metrics.port": 9191,
        "metrics.scrapeAnnotations": False,
        "serviceAccount.annotations": {"example.com/role": "slimguard"},
        "grafanaDashboard.enabled": True,
        "grafanaDashboard.label": "dashboards",
        "grafanaDashboard.labelValue": "slimguard",
        "grafanaDashboard.namespace": DASHBOARDS,
        "grafanaDashboard.annotations": {"grafana_folder": "slimguard"},
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000700000,
            "runAsGroup": 0,
            "fsGroup": 1000700000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


SECOND_VALUES: dict[str, Any] = {
    # Unchanged from the first set on purpose: it is in the Deployments' selectors, which an upgrade cannot change.
    "nameOverride": "sg",
    "registries.allowPrivate": True,
    "registries.caBundleSecret": REGISTRY_CA,
    "registries.extraCaFiles": [f"{EXTRA_CA_DIR}/registry.pem"],
    "policyReports.api": "openreports.io",
    "controller.replicas": 3,
    "controller.podDisruptionBudget.minAvailable": 2,
    "controller.extraVolumes": EXTRA_CA_VOLUME,
    "controller.extraVolumeMounts": EXTRA_CA_MOUNT,
    "webhook.replicas": 3,
    "webhook.podDisruptionBudget.minAvailable": 2,
    "webhook.extraVolumes": EXTRA_CA_VOLUME,
    "webhook.extraVolumeMounts": EXTRA_CA_MOUNT,
    # The user's own ServiceAccounts and RBAC, applied before the upgrade (the objects the chart would make).
    "serviceAccount.create": False,
    "rbac.create": False,
}
"""The upgrade, from chart defaults (no --reuse-values): everything renamed back, self-managed certificates, three
replicas each behind a PodDisruptionBudget, the registry CA from a Secret and, again, through extra volumes."""

SET_BY_EVERY_INSTALL = ("image.repository", "image.tag", "image.digest")
CHECKED_ELSEWHERE = {
    "registries.caBundle": "the install of test_install_on_node.py and `make demo` (the PEM text inline)",
    "certManager": "needs cert-manager, whose images cannot be pulled here; its objects are rendered and applied in "
    "test_install_manifests.py",
    "serviceMonitor": "needs the Prometheus Operator's CRDs; rendered and checked in test_monitoring_artifacts.py",
    "prometheusRule": "needs the Prometheus Operator's CRDs; its rules are checked by promtool in "
    "test_monitoring_artifacts.py and tests/alerts",
    "grafanaDashboard.grafanaOperator": "needs grafana-operator's CRDs; rendered in test_monitoring_artifacts.py",
    "registries.credentialProviders": "mounts the node's own kubelet credential provider configuration and binaries, "
    "which this node's kubelet has none of; rendered, compared with the kustomize component and applied (server "
    "dry-run) in test_install_manifests.py, and its flags run with a real exec provider by the controller, the "
    "webhook and the CLI in test_credential_providers.py",
}


def _related(key: str, path: str) -> bool:
    return key == path or path.startswith(f"{key}.") or key.startswith(f"{path}.")


def _default(path: str) -> Any:
    value: Any = yaml.safe_load((CHART / "values.yaml").read_text())
    for part in path.split("."):
        value = value[part]
    return value


def test_every_documented_value_is_changed_by_an_install_here_or_says_where_it_is_checked() -> None:
    first = first_values(registry="10.244.0.1:5000", webhook_ca=b"ca")
    paths = [*first, *SECOND_VALUES, *SET_BY_EVERY_INSTALL, *CHECKED_ELSEWHERE]
    assert [key for key in documented_values() if not any(_related(key, path) for path in paths)] == []
    # A value set to its default proves nothing.
    for values in (first, SECOND_VALUES):
        assert [path for path, value in values.items() if value == _default(path)] == []


# -- on the node ---------------------------------------------------------------------------------------------------


def _set_json(values: dict[str, Any]) -> list[str]:
    return [argument for path, value in values.items() for argument in ("--set-json", f"{path}={json.dumps(value)}")]


def _pods(node: RealNode, component: str) -> list[dict[str, Any]]:
    return component_pods(node, NAMESPACE, component)


def _serves_metrics(pod: dict[str, Any], port: int) -> bool:
    """The Pod's /metrics, from the host over the node's bridge, has slimguard's series."""
    try:
        answer = httpx.get(f"http://{pod['status']['podIP']}:{port}/metrics", timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and "slimguard_" in answer.text


def _all_serve(pods: list[dict[str, Any]], replicas: int, metrics_port: int) -> bool:
    return len(pods) == replicas and all(_serves_metrics(pod, metrics_port) for pod in pods)


def _answers(node: RealNode, fat: str, slim: str, *, replicas: int, metrics_port: int) -> None:
    """Every Pod Ready and serving metrics on ``metrics_port``; slimguard's webhook denies the fat Deployment and
    admits the slim one (with failurePolicy Fail, an unanswered review would refuse it too)."""
    for component in ("controller", "webhook"):
        pods = wait_for(
            f"{replicas} {component} Pods serving metrics on port {metrics_port}",
            lambda c=component: found if _all_serve(found := _pods(node, c), replicas, metrics_port) else None,
            timeout=120,
        )  # fmt: skip
        for pod in pods:
            assert all(status["ready"] for status in pod["status"]["containerStatuses"]), diagnose(node, NAMESPACE)
    message = denied_by_slimguard(node, yaml.safe_dump(deployment("fat", WORKLOADS, fat)))
    assert "compressed" in message, message
    admitted = node.kubectl(
        "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment("slim", WORKLOADS, slim)), check=False
    )
    assert admitted.returncode == 0, admitted.stderr


@pytest.fixture
def prepared(real_node: RealNode, testbed_ca: CertificateAuthority, helm: str) -> Iterator[RealNode]:
    """What the user makes before installing: the CRDs, the namespaces, the registry CA as a ConfigMap and a Secret,
    a pull secret, the webhook's serving certificate; an Enforce policy for the workloads' namespace. All removed
    after, with the user's own ServiceAccounts and RBAC the upgrade runs with."""
    node = real_node
    apply_crds(node)
    registry_ca = Path(node.registry.ca_file).read_text()
    serving = testbed_ca.issue("guard-webhook", hosts=(f"guard-webhook.{NAMESPACE}.svc",))
    objects = [
        namespace(NAMESPACE),
        namespace(DASHBOARDS),
        namespace(WORKLOADS),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": REGISTRY_CA, "namespace": NAMESPACE},
            "data": {"registry.pem": registry_ca},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": REGISTRY_CA, "namespace": NAMESPACE},
            "stringData": {"ca.crt": registry_ca},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": PULL_SECRET, "namespace": NAMESPACE},
            "stringData": {".dockerconfigjson": json.dumps({"auths": {node.registry.host: {"auth": "dXNlcjpwYXNz"}}})},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": SERVING_SECRET, "namespace": NAMESPACE},
            "stringData": {"tls.crt": serving.cert_pem.decode(), "tls.key": serving.key_pem.decode()},
        },
        image_policy("values-enforce", {"maxCompressedSize": "100Mi"}, namespaces=[WORKLOADS], mode="Enforce"),
    ]
    node.apply(yaml.safe_dump_all(objects))
    try:
        yield node
    finally:
        helm_run(helm, node, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
        node.kubectl("delete", "imagepolicy", "values-enforce", "--ignore-not-found")
        node.kubectl(
            "delete", "clusterrole,clusterrolebinding", "-l", "slimguard.dev/values-test", "--ignore-not-found"
        )
        for name in (NAMESPACE, DASHBOARDS, WORKLOADS):
            node.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def test_an_install_with_every_value_changed_then_upgraded_to_another_set_answers_and_uninstalls_clean(
    prepared: RealNode,
    helm: str,
    self_image: str,
    docker_engine: DockerEngine,
    fixture_images: FixtureImages,
    testbed_ca: CertificateAuthority,
) -> None:
    node = prepared
    client = docker_engine.client(timeout=600)
    try:
        image = push_self_image(node, client, self_image)
    finally:
        client.close()
    fat = node.image(fixture_images.debian_fat.repository, fixture_images.debian_fat.tag)
    slim = node.image(fixture_images.busybox.repository, fixture_images.busybox.tag)

    # 1. helm install with the first set.
    first = first_values(registry=node.registry.host, webhook_ca=testbed_ca.cert_pem)
    installed = helm_run(
        helm, node, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, *image_values(image), *_set_json(first),
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr + diagnose(node, NAMESPACE)
    _answers(node, fat, slim, replicas=1, metrics_port=first["metrics.port"])
    (configuration,) = json.loads(node.kubectl("get", "validatingwebhookconfigurations", "-o", "json").stdout)["items"]
    assert configuration["metadata"]["name"] == "guard"
    assert configuration["webhooks"][0]["clientConfig"]["service"]["path"] == "/admit"
    dashboards = node.kubectl("get", "configmaps", "-n", DASHBOARDS, "-l", "dashboards=slimguard", "-o", "name")
    assert dashboards.stdout.strip(), "no dashboard ConfigMap where grafanaDashboard.namespace says"
    (webhook_pod,) = _pods(node, "webhook")
    assert "prometheus.io/scrape" not in webhook_pod["metadata"].get("annotations", {})
    assert webhook_pod["spec"]["securityContext"]["runAsUser"] == 1000700000

    # 2. The user's own ServiceAccounts and RBAC for the second set (the chart's own objects, applied by kubectl),
    #    then helm upgrade to it.
    own = helm_run(
        helm, node, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.36.3",
        *_set_json(SECOND_VALUES),
        "--set", "serviceAccount.create=true", "--set", "rbac.create=true",
        "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml",
    )  # fmt: skip
    assert own.returncode == 0, own.stderr
    byo = [doc for doc in yaml.safe_load_all(own.stdout) if doc]
    for document in byo:
        document["metadata"].setdefault("labels", {})["slimguard.dev/values-test"] = "own"
    node.apply(yaml.safe_dump_all(byo))
    upgraded = helm_run(
        helm, node, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, *image_values(image),
        *_set_json(SECOND_VALUES), "--wait", "--timeout", "5m",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr + diagnose(node, NAMESPACE)
    _answers(node, fat, slim, replicas=3, metrics_port=_default("metrics.port"))
    (configuration,) = json.loads(node.kubectl("get", "validatingwebhookconfigurations", "-o", "json").stdout)["items"]
    assert configuration["metadata"]["name"] == "slimguard-sg"  # the first set's "guard" is gone
    service_accounts = {pod["spec"]["serviceAccountName"] for pod in _pods(node, "controller")}
    assert service_accounts <= {doc["metadata"]["name"] for doc in byo if doc["kind"] == "ServiceAccount"}

    # 3. helm uninstall: nothing left to call.
    uninstalled = helm_run(helm, node, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert node.kubectl("get", "validatingwebhookconfigurations", "-o", "name").stdout.split() == []
    created = node.kubectl(
        "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment("fat", WORKLOADS, fat))
    )
    assert created.returncode == 0  # admitted: no webhook is left to fail it
