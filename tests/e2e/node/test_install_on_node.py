"""slimguard as its users run it: its own image, built from the repository's Dockerfile and pushed to the node's
registry, installed either by `helm install` with only the values a user with a private registry sets or by
`kubectl apply -k` of the overlay such a user writes over the kustomize base; its Pods run on the real node, the
webhook makes its own certificate and publishes its CA, the apiserver reaches it through its Service, and the
controller in the cluster writes its verdicts with the ServiceAccount token of its Pod."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml
from cluster import deployment, image_policy, namespace, status_of, wait_for
from pods import component_pods, denied_by_slimguard

from slimguard_testbed import DockerEngine
from slimguard_testbed.images import FixtureImages
from slimguard_testbed.node import RealNode
from slimguard_testbed.node.install import (
    CHART,
    KUSTOMIZE_NAMESPACE,
    RELEASE_NAMESPACE,
    diagnose,
    install_slimguard,
    install_slimguard_kustomize,
    push_self_image,
    uninstall_slimguard_kustomize,
    write_kustomize_overlay,
)
from slimguard_testbed.node.install import helm as helm_run
from slimguard_testbed.prometheus import Prometheus, kubernetes_pods_job, prometheus_with_kubernetes_sd

# Pushing the image, the install and the Pods' start: minutes on a loaded machine. A deadline, never a speed claim.
pytestmark = pytest.mark.timeout(900)

OWN_SECRET = "slimguard-webhook-tls"
"""The Secret the webhook keeps its own CA and certificate in (the chart's default, webhook.certificates.mode
self-managed, and the kustomize base's): no render holds it."""


@dataclass(frozen=True)
class Install:
    node: RealNode
    image: str
    """What the install runs: slimguard's image by the digest just pushed."""
    how: str
    """helm or kustomize."""
    namespace: str
    install_seconds: float
    workloads: str = field(init=False)
    """The namespace of this install's workloads, and its Enforce policy: nothing the other install left counts."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "workloads", f"shop-{self.how}")

    def enforce_slim(self) -> dict[str, Any]:
        return image_policy(
            f"enforce-{self.how}", {"maxCompressedSize": "100Mi"}, namespaces=[self.workloads], mode="Enforce"
        )

    def pods(self, component: str) -> list[dict[str, Any]]:
        """The component's Pods that are not being deleted."""
        return component_pods(self.node, self.namespace, component)

    def ready_pods(self, component: str) -> list[dict[str, Any]]:
        return [
            pod
            for pod in self.pods(component)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", ()))
        ]


@pytest.fixture(scope="module", params=["helm", "kustomize"])
def installed(
    request: pytest.FixtureRequest,
    real_node: RealNode,
    self_image: str,
    docker_engine: DockerEngine,
    helm: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Install]:
    client = docker_engine.client(timeout=600)
    try:
        image = push_self_image(real_node, client, self_image)
    finally:
        client.close()
    if request.param == "helm":
        install = Install(real_node, image, "helm", RELEASE_NAMESPACE, install_slimguard(real_node, helm, image))
    else:
        overlay = write_kustomize_overlay(tmp_path_factory.mktemp("kustomize-overlay"), real_node, image)
        seconds = install_slimguard_kustomize(real_node, overlay)
        install = Install(real_node, image, "kustomize", KUSTOMIZE_NAMESPACE, seconds)
    print(f"{install.how} install to all Pods Ready: {install.install_seconds:.1f} s")
    yield install
    if install.how == "helm":
        uninstalled = helm_run(helm, real_node, "uninstall", "slimguard", "--namespace", RELEASE_NAMESPACE, "--wait")
        assert uninstalled.returncode == 0, uninstalled.stderr
    else:
        uninstall_slimguard_kustomize(real_node, overlay)
    # Nothing left to brick the cluster: no webhook configuration survives the uninstall, and the CA the webhook
    # made goes with it (its Secret is owned by the configuration: Kubernetes' garbage collector deletes it).
    left = real_node.kubectl("get", "validatingwebhookconfigurations", "-o", "name").stdout.split()
    assert left == []
    wait_for(
        "the webhook's own Secret to be garbage-collected",
        lambda: (
            not real_node.kubectl(
                "get", "secret", OWN_SECRET, "-n", install.namespace, "--ignore-not-found", "-o", "name"
            ).stdout.strip()
        ),
        timeout=60,
    )


@pytest.fixture
def charted(installed: Install) -> Install:
    """The install, when it is the chart's: `helm upgrade` and `helm test` have no kustomize counterpart."""
    if installed.how != "helm":
        pytest.skip("helm upgrade and helm test belong to the chart")
    return installed


def test_every_slimguard_pod_runs_from_its_own_image_and_is_ready(installed: Install) -> None:
    for component, replicas in (("controller", 2), ("webhook", 2)):
        pods = installed.pods(component)
        assert len(pods) == replicas, component
        for pod in pods:
            (container,) = pod["status"]["containerStatuses"]
            assert container["ready"], (component, container)
            assert installed.image in (container["image"], container["imageID"]), container
            assert container["restartCount"] == 0, diagnose(installed.node)


def test_an_enforce_policy_rejects_a_fat_deployment_through_the_webhooks_service(
    installed: Install, fixture_images: FixtureImages
) -> None:
    node = installed.node
    (configuration,) = json.loads(node.kubectl("get", "validatingwebhookconfigurations", "-o", "json").stdout)["items"]
    assert all("service" in hook["clientConfig"] for hook in configuration["webhooks"])  # no url: the Service
    # Nothing rendered a caBundle: the webhook Pods made their CA and patched it in, with the install's RBAC.
    secret = json.loads(node.kubectl("get", "secret", OWN_SECRET, "-n", installed.namespace, "-o", "json").stdout)
    (hook,) = configuration["webhooks"]
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == configuration["metadata"]["uid"]
    node.apply(yaml.safe_dump_all([namespace(installed.workloads), installed.enforce_slim()]))
    fat = node.image(fixture_images.debian_fat.repository, fixture_images.debian_fat.tag)
    manifest = yaml.safe_dump(deployment("fat", installed.workloads, fat))

    message = denied_by_slimguard(node, manifest)
    assert 'admission webhook "' in message
    assert "denied the request" in message
    assert "maxCompressedSize" in message or "compressed" in message
    created = node.kubectl("create", "-f", "-", input=manifest, check=False)
    assert created.returncode != 0
    assert node.kubectl("get", "deployment", "fat", "-n", installed.workloads, "--ignore-not-found").stdout == ""


def test_a_slim_deployment_runs_and_the_controller_in_the_cluster_marks_it_compliant(
    installed: Install, fixture_images: FixtureImages
) -> None:
    node = installed.node
    node.apply(yaml.safe_dump_all([namespace(installed.workloads), installed.enforce_slim()]))
    slim = node.image(fixture_images.busybox.repository, fixture_images.busybox.tag)
    body = deployment("slim", installed.workloads, slim)
    body["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "3600"]
    node.apply(yaml.safe_dump(body))

    def running() -> bool:
        pods = json.loads(node.kubectl("get", "pods", "-n", installed.workloads, "-l", "app=slim", "-o", "json").stdout)
        return any(pod["status"].get("phase") == "Running" for pod in pods["items"])

    wait_for("the slim Deployment's Pod to run (pulled by containerd)", running, timeout=120)

    def compliant() -> dict[str, Any] | None:
        found = json.loads(node.kubectl("get", "deployment", "slim", "-n", installed.workloads, "-o", "json").stdout)
        return found if status_of(found) == "compliant" else None

    try:
        wait_for("the in-cluster controller to label the Deployment compliant", compliant, timeout=120)
    except AssertionError as missing:
        raise AssertionError(f"{missing}{diagnose(node, installed.namespace)}") from None

    def policy_status() -> dict[str, Any] | None:
        found = json.loads(node.kubectl("get", "imagepolicy", f"enforce-{installed.how}", "-o", "json").stdout)
        return found.get("status") or None

    # Written apart from the label, a debounce later (at least 1 s): waited for, not read at once.
    try:
        wait_for("the controller's ImagePolicy status", policy_status, timeout=60)
    except AssertionError as missing:
        raise AssertionError(f"{missing}{diagnose(node, installed.namespace)}") from None
    reports = json.loads(node.kubectl("get", "imagereports", "-A", "-o", "json").stdout)["items"]
    assert reports, "the controller wrote no ImageReport"


def test_prometheus_scrapes_every_slimguard_pod_by_its_scrape_annotations(
    installed: Install, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Prometheus' usual `kubernetes-pods` job discovers the Pods through the apiserver and scrapes them on their
    Pod IPs, on the node's bridge: the Pods' prometheus.io annotations are all it needs."""
    node = installed.node
    pki = node.plane.workdir / "pki"
    job = kubernetes_pods_job(
        api_server=node.server, ca_file=pki / "ca.crt", cert_file=pki / "admin.crt", key_file=pki / "admin.key"
    )
    with Prometheus(
        tmp_path_factory.mktemp("node-prometheus"), scrape_configs=[job], binary=prometheus_with_kubernetes_sd()
    ) as prometheus:
        # Both controller Pods (the leader and the standby) and both webhook Pods.
        pods = {pod["metadata"]["name"] for component in ("controller", "webhook") for pod in installed.pods(component)}

        def every_pod_scraped() -> list[dict[str, Any]] | None:
            up = prometheus.query(f'up{{job="kubernetes-pods", namespace="{installed.namespace}"}}')
            return up if len(up) == len(pods) == 4 and all(sample["value"][1] == "1" for sample in up) else None

        up = wait_for("both controller and both webhook Pods to be scraped", every_pod_scraped, timeout=60)
        assert {sample["metric"]["pod"] for sample in up} == pods
        # slimguard's own series, from each Pod.
        series = prometheus.query(f'count by (pod) ({{__name__=~"slimguard_.+", namespace="{installed.namespace}"}})')
        assert {sample["metric"]["pod"] for sample in series} == pods


def test_a_webhook_replica_killed_under_a_stream_of_creates_loses_none(
    charted: Install, helm: str, fixture_images: FixtureImages
) -> None:
    """With failurePolicy Fail, every create the apiserver cannot get a review for fails: deleting one of the two
    webhook Pods (the kubelet's SIGTERM; readiness off, a drain, then exit) must not fail a single one."""
    installed = charted
    node = installed.node
    upgraded = helm_run(
        helm, node, "upgrade", "slimguard", str(CHART), "--namespace", RELEASE_NAMESPACE, "--reuse-values",
        "--set", "webhook.failurePolicy=Fail", "--wait", "--timeout", "5m",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    wait_for(
        "exactly two webhook Pods, both Ready",
        lambda: len(installed.ready_pods("webhook")) == 2 == len(installed.pods("webhook")),
        timeout=120,
    )
    node.apply(yaml.safe_dump_all([namespace(installed.workloads), installed.enforce_slim()]))
    slim = node.image(fixture_images.busybox.repository, fixture_images.busybox.tag)
    pki = node.plane.workdir / "pki"
    outcomes: list[int] = []
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with httpx.Client(base_url=node.server, verify=context, timeout=30) as client:

        def create(index: int) -> None:
            body = deployment(f"stream-{index}", installed.workloads, slim)
            answer = client.post(f"/apis/apps/v1/namespaces/{installed.workloads}/deployments?dryRun=All", json=body)
            outcomes.append(answer.status_code)
            if answer.status_code != 201:
                print(f"create {index}: {answer.status_code} {answer.text[:300]}")

        index = 0
        stream_until = time.monotonic() + 3
        while time.monotonic() < stream_until:  # the stream runs before the kill
            create(index := index + 1)
        victim = installed.ready_pods("webhook")[0]
        node.kubectl("delete", "pod", victim["metadata"]["name"], "-n", RELEASE_NAMESPACE, "--wait=false")
        stream_until = time.monotonic() + 20  # past the drain (5 s) and the replacement's start
        while time.monotonic() < stream_until:
            create(index := index + 1)
    failed = sum(1 for code in outcomes if code != 201)
    print(f"webhook replica killed under load: {len(outcomes)} creates attempted, {failed} failed")
    assert outcomes
    assert failed == 0
    wait_for("two webhook Pods Ready again", lambda: len(installed.ready_pods("webhook")) == 2, timeout=120)


def test_helm_test_passes_on_the_node(charted: Install, helm: str) -> None:
    """The chart's test hook (issue 23) as `helm test` runs it: a Pod of the slimguard image alone, on the node,
    reaches the webhook through its Service (its cluster IP from the Pod's environment: no cluster DNS here) and
    checks the certificate against the CA the webhook configuration holds. A Pod that passed is deleted (the hook's
    delete policy), so its log is read only when it failed."""
    installed = charted
    result = helm_run(helm, installed.node, "test", "slimguard", "--namespace", RELEASE_NAMESPACE, "--timeout", "3m")
    if result.returncode != 0:
        logs = installed.node.kubectl("logs", "-n", RELEASE_NAMESPACE, "slimguard-webhook-test", check=False)
        pytest.fail(result.stdout + result.stderr + logs.stdout + logs.stderr + diagnose(installed.node))
    assert "TEST SUITE:     slimguard-webhook-test" in result.stdout, result.stdout
    assert "Phase:          Succeeded" in result.stdout, result.stdout
