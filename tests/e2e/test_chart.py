"""The chart as it is published (issue 23): its values schema refuses what the chart cannot use, its README's values
table is what scripts/chart_readme.py writes, its ArtifactHub annotations say what a catalogue needs (the CRDs'
example applies to the real apiserver), and its `helm test` Pod, run against a real `slimguard webhook` as a Pod
would reach it through the Service, passes, and fails when the certificate is not the one the CA vouches for.

The install objects themselves are tested in test_install_manifests.py; the release path in test_release.py.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import chart_readme

from slimguard import __version__
from slimguard_testbed import CertificateAuthority, ControlPlane
from slimguard_testbed.webhook import WebhookReplicas

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "slimguard"
NAMESPACE = "slimguard"
SERVICE_NAME = "slimguard-webhook.slimguard.svc"


def helm_template(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [helm, "template", "slimguard", str(CHART), "--namespace", NAMESPACE, "--kube-version", "1.36.3", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def objects_of(rendered: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


# -- values.schema.json ------------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _node(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return {**schema["definitions"][node["$ref"].removeprefix("#/definitions/")], **node}
    return node


def _undeclared(values: dict[str, Any], node: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys of values.yaml the schema does not declare, down through the mappings it declares key by key."""
    missing = []
    for key, value in values.items():
        child = node.get("properties", {}).get(key)
        if child is None:
            missing.append(prefix + key)
            continue
        child = _node(schema, child)
        if "properties" in child and isinstance(value, dict):
            missing += _undeclared(value, child, schema, f"{prefix}{key}.")
    return missing


def test_the_schema_declares_every_value_and_allows_no_other() -> None:
    schema = _schema()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _undeclared(values, schema, schema) == []

    def strict(node: dict[str, Any], path: str) -> list[str]:
        loose = [path] if "properties" in node and node.get("additionalProperties") is not False else []
        for key, child in node.get("properties", {}).items():
            loose += strict(_node(schema, child), f"{path}.{key}")
        return loose

    assert strict(schema, "values") == []


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["--set", "controller.replicas=-1"], "at '/controller/replicas': minimum: got -1, want 0"),
        (["--set", "webhook.timeoutSecond=5"], "at '/webhook': additional properties 'timeoutSecond' not allowed"),
        (["--set", "logLevl=DEBUG"], "additional properties 'logLevl' not allowed"),
        (["--set-string", "webhook.replicas=2"], "at '/webhook/replicas': got string, want integer"),
        (["--set", "webhook.failurePolicy=Never"], "at '/webhook/failurePolicy': value must be one of"),
        (["--set", "webhook.timeoutSeconds=31"], "at '/webhook/timeoutSeconds': maximum: got 31, want 30"),
        (["--set", "image.digest=latest"], "at '/image/digest'"),
        (["--set", "registries.tagTtlSeconds=0"], "at '/registries/tagTtlSeconds': minimum: got 0, want 1"),
        (["--set", "reportPageSize=20000"], "at '/reportPageSize': maximum: got 20,000, want 10,000"),
        (["--set", "policyReports.api=kyverno.io"], "at '/policyReports/api': value must be one of"),
        (["--set", "controller.resources.request.cpu=1"], "additional properties 'request' not allowed"),
    ],
    ids=lambda value: value if isinstance(value, str) and "=" not in value else None,
)
def test_helm_refuses_a_wrong_type_or_an_unknown_key_naming_it(helm: str, args: list[str], refusal: str) -> None:
    rendered = helm_template(helm, *args)
    assert rendered.returncode != 0, f"helm rendered {args}"
    assert "values don't meet the specifications of the schema" in rendered.stderr, rendered.stderr
    assert refusal in rendered.stderr, rendered.stderr


def test_helm_install_refuses_them_and_creates_nothing(helm: str, control_plane: ControlPlane) -> None:
    namespace = "slimguard-schema-refused"
    result = subprocess.run(
        [helm, "install", "refused", str(CHART), "--namespace", namespace, "--create-namespace",
         "--kubeconfig", str(control_plane.admin_kubeconfig), "--set", "webhook.failurePolicy=Never"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "at '/webhook/failurePolicy': value must be one of" in result.stderr, result.stderr
    listed = control_plane.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").stdout
    assert listed == ""  # refused before the namespace, let alone a release, was made


# -- the README's values table -----------------------------------------------------------------------------


def test_the_chart_readme_values_table_is_what_the_script_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "chart_readme.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_value_in_the_table_is_described() -> None:
    module = chart_readme()
    values_text = (CHART / "values.yaml").read_text()
    schema = _schema()
    rows = list(module.rows(yaml.safe_load(values_text), schema, schema, module.value_comments(values_text)))
    assert len(rows) > 60
    assert [key for key, _, _, description in rows if not description.strip()] == []
    by_key = {key: (kind, default) for key, kind, default, _ in rows}
    assert by_key["webhook.failurePolicy"] == ("one of `Ignore`, `Fail`", '`"Ignore"`')
    assert by_key["controller.resources"][0] == "ResourceRequirements"  # a shared definition stays one row


# -- Chart.yaml: ArtifactHub ---------------------------------------------------------------------------------


def _annotations() -> dict[str, Any]:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return {
        key.removeprefix("artifacthub.io/"): yaml.safe_load(value) if value.startswith(("-", "[")) else value
        for key, value in meta["annotations"].items()
    }


def test_the_artifacthub_annotations_name_the_license_links_image_and_both_crds() -> None:
    annotations = _annotations()
    assert annotations["license"] == "Apache-2.0"
    assert {link["name"] for link in annotations["links"]} >= {"source", "documentation", "changelog"}
    assert annotations["images"] == [{"name": "slimguard", "image": f"ghcr.io/slimguard/slimguard:{__version__}"}]
    crds = {
        crd["metadata"]["name"]: crd
        for crd in map(yaml.safe_load, map(Path.read_text, (CHART / "crds").glob("*.yaml")))
    }
    declared = {crd["name"]: crd for crd in annotations["crds"]}
    assert declared.keys() == crds.keys() == {"imagepolicies.slimguard.dev", "imagereports.slimguard.dev"}
    for name, crd in crds.items():
        assert declared[name]["kind"] == crd["spec"]["names"]["kind"]
        assert declared[name]["version"] in [version["name"] for version in crd["spec"]["versions"]]
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["version"] == meta["appVersion"] == __version__


def test_the_artifacthub_crd_example_is_a_valid_image_policy(control_plane: ControlPlane, crds_installed: None) -> None:
    for example in _annotations()["crdsExamples"]:
        result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(example))
        assert "created (server dry run)" in result.stdout, result.stdout + result.stderr


# -- helm test ----------------------------------------------------------------------------------------------


def _test_pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]


def test_the_test_hook_is_one_pod_of_the_slimguard_image_alone(helm: str) -> None:
    digest = "sha256:" + "ab" * 32
    for args, image in (
        ((), f"ghcr.io/slimguard/slimguard:{__version__}"),
        (
            ("--set", f"image.digest={digest}", "--set", "image.repository=registry.example/sg"),
            f"registry.example/sg@{digest}",
        ),
    ):
        objects = objects_of(helm_template(helm, *args))
        (pod,) = _test_pods(objects)
        spec = pod["spec"]
        assert [container["image"] for container in spec["containers"]] == [image]
        assert "initContainers" not in spec
        assert spec["restartPolicy"] == "Never"
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["command"] == ["/venv/bin/python", "-c"]
        deployments = [o for o in objects if o["kind"] == "Deployment"]
        assert {c["image"] for d in deployments for c in d["spec"]["template"]["spec"]["containers"]} == {image}
    assert _test_pods(objects_of(helm_template(helm, "--skip-tests"))) == []


def _hook_run(pod: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The hook's container as the kubelet would start it, here: its script, its env with `env` over it."""
    (container,) = pod["spec"]["containers"]
    (script,) = container["args"]
    given = {item["name"]: item["value"] for item in container["env"]}
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin"), **given, **env},
    )


@pytest.fixture(scope="module")
def service_webhook(
    webhook_kubeconfig: str, testbed_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One real `slimguard webhook` on 127.0.0.1 whose certificate names the Service, as the chart's does."""
    workdir = tmp_path_factory.mktemp("hook-webhook")
    testbed_ca.write(workdir, "registry-ca")
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(workdir / "registry-ca.crt"),
        workdir=workdir,
        replicas=1,
        # The Service's name, as the chart's certificate has it (and 127.0.0.1, which the test bed waits on).
        serving=testbed_ca.issue("slimguard-webhook", hosts=(SERVICE_NAME, "slimguard-webhook", "127.0.0.1")),
    )
    with replicas:
        yield replicas


@pytest.mark.timeout(180)  # a webhook process starts first (kopf's import alone is slow on a busy machine)
def test_the_test_hook_passes_against_a_webhook_reached_as_through_its_service(
    helm: str, service_webhook: WebhookReplicas, testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    (pod,) = _test_pods(objects_of(helm_template(helm)))
    env = {item["name"]: item["value"] for item in pod["spec"]["containers"][0]["env"]}
    assert env["SERVER_NAME"] == SERVICE_NAME
    assert env["ADDRESS_ENV"] == "SLIMGUARD_WEBHOOK_SERVICE_HOST"
    # The webhook TLS Secret's published bundle, else its ca.crt: its CA certificates only, never a key.
    assert env["CA_FILES"] == "/etc/slimguard/webhook-ca/ca-bundle.crt:/etc/slimguard/webhook-ca/ca.crt"
    (volume,) = pod["spec"]["volumes"]
    assert volume["secret"]["items"] == [
        {"key": "ca-bundle.crt", "path": "ca-bundle.crt"}, {"key": "ca.crt", "path": "ca.crt"}
    ]  # fmt: skip
    ca_file = testbed_ca.write(tmp_path, "ca")
    here = {
        # What the kubelet would give the Pod: the Service's cluster IP (here, the webhook's address) and the
        # Secret's CA (here ca.crt alone, as cert-manager writes it: the bundle is missing, so the next is read).
        "SLIMGUARD_WEBHOOK_SERVICE_HOST": "127.0.0.1",
        "PORT": str(service_webhook.port),
        "CA_FILES": f"{tmp_path / 'ca-bundle.crt'}:{ca_file}",
    }
    passed = _hook_run(pod, here)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.splitlines()[0] == "ok: the webhook is ready (GET /readyz 200)"
    assert passed.stdout.splitlines()[1].endswith(": allowed=True"), passed.stdout

    # The same webhook under a CA the configuration does not hold: the hook refuses the certificate.
    stranger = CertificateAuthority("not the webhook's CA").write(tmp_path / "stranger", "ca")
    refused = _hook_run(pod, {**here, "CA_FILES": str(stranger)})
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stdout + refused.stderr

    # The Secret not written yet (or holding no CA): one line saying so.
    empty = _hook_run(pod, {**here, "CA_FILES": f"{tmp_path / 'none.crt'}"})
    assert empty.returncode != 0
    assert "the webhook's TLS Secret holds no CA yet" in empty.stderr, empty.stderr


def test_the_test_hook_trusts_the_given_ca_when_the_certificate_is_provided(helm: str) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    rendered = helm_template(
        helm, "--set", "webhook.certificates.mode=provided", "--set", "webhook.tls.secretName=own-tls",
        "--set", f"webhook.tls.caBundle={base64.b64encode(pem.encode()).decode()}",
    )  # fmt: skip
    (pod,) = _test_pods(objects_of(rendered))
    env = {item["name"]: item["value"] for item in pod["spec"]["containers"][0]["env"]}
    assert env["CA_PEM"] == pem
    assert "CA_FILES" not in env
    assert "volumes" not in pod["spec"]  # the Secret is the user's: nothing of it is mounted
