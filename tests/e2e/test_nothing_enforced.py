"""Said loudly when nothing is enforced (issue 22): a controller and a webhook without the test registry's CA, as
a fresh install without ``registries.caBundle`` runs, decide every image there by onUnknown. The ImagePolicy's
Enforcing condition turns False naming the registry and the cause (also in ``kubectl get``), one NothingEnforced
Event is posted (not one per audit), the metrics count the images, and the controller's health probe and the
webhook's /readyz say degraded while answering 200. Restarted with ``--ca-file``, the controller turns Enforcing
True and says nothing more.

On a control plane of its own: the session's in-process operator trusts the CA and would write the same status.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cluster import apply, deployment, get, image_policy, namespace, wait_for
from prometheus_client.parser import text_string_to_metric_families

from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, free_port
from slimguard_testbed.controller_process import ControllerProcess
from slimguard_testbed.images import push_image
from slimguard_testbed.install import install_rbac
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kustomize" / "base"
NS = POLICY = "loud"
# Its own control plane, two processes started twice and a webhook on a shared 2-core machine: deadlines.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[ControlPlane]:
    with ControlPlane(workdir=tmp_path_factory.mktemp("untrusting-plane"), ca=testbed_ca) as own:
        own.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        own.wait_established("imagepolicies.slimguard.dev", "imagereports.slimguard.dev")
        yield own


def enforcing(plane: ControlPlane, status: str) -> dict[str, Any] | None:
    conditions = ((get(plane, "imagepolicy", POLICY) or {}).get("status") or {}).get("conditions") or []
    found = next((c for c in conditions if c["type"] == "Enforcing"), None)
    return found if found and found["status"] == status else None


def nothing_enforced_events(plane: ControlPlane) -> list[dict[str, Any]]:
    selector = f"reason=NothingEnforced,involvedObject.name={POLICY}"
    listed = plane.kubectl("get", "events", "-A", "--field-selector", selector, "-o", "json").stdout
    return list(json.loads(listed)["items"])


def admitted_unchecked(plane: ControlPlane, document: dict[str, Any]) -> str | None:
    result = plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(document), check=False)
    return result.stderr if result.returncode == 0 and "admitted unchecked" in result.stderr else None


def scraped(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("slimguard_images_checked", "slimguard_images_decided_by_default"))
        or sample.name == "slimguard_evaluations_total"
    }


def test_an_install_that_cannot_read_its_registry_says_so_everywhere_until_it_trusts_the_ca(
    plane: ControlPlane, registry: Registry, testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    images = [
        push_image(registry.endpoint, f"shop/loud-{n}", "1.0", [{f"/app/{n}.txt": f"loud {n}".encode()}])
        for n in range(2)
    ]
    apply(
        plane,
        namespace(NS),
        image_policy(POLICY, {"maxCompressedSize": "200Mi"}, namespaces=[NS], mode="Enforce"),
    )
    controller_kubeconfig = install_rbac(plane, BASE, "controller")
    metrics_port, liveness_port = free_port(), free_port()
    flags = (
        f"--metrics-port={metrics_port}",
        "--metrics-address=127.0.0.1",
        f"--liveness=http://127.0.0.1:{liveness_port}/healthz",
    )
    untrusting = ControllerProcess(
        kubeconfig=controller_kubeconfig, registry_ca_file=None, workdir=tmp_path / "untrusting", extra_args=flags
    )
    replicas = WebhookReplicas(
        kubeconfig=str(install_rbac(plane, BASE, "webhook")),
        ca=testbed_ca,
        registry_ca_file=None,
        workdir=tmp_path / "webhook",
        replicas=1,
    )
    host = registry.host
    with untrusting, replicas:
        register(
            plane,
            webhook_configuration(
                BASE / "validatingwebhookconfiguration.yaml",
                url=replicas.url,
                ca_pem=testbed_ca.cert_pem,
                name="slimguard-loud",
            ),
        )
        # Enforce admits both, unchecked: what the first real install met.
        applied = time.monotonic()
        for n, image in enumerate(images):
            document = deployment(f"app-{n}", NS, image.ref)
            wait_for(f"the webhook to admit app-{n} unchecked", functools.partial(admitted_unchecked, plane, document))

        # The ImagePolicy says it, with the registry, the cause and what onUnknown does with them.
        condition = wait_for("Enforcing=False", lambda: enforcing(plane, "False"), timeout=90)
        said = time.monotonic() - applied
        cause = (
            f"registry {host} presents a certificate slimguard does not trust (certificate verify failed: unable to "
            "get local issuer certificate); give slimguard the CA that signed it with --ca-file (Helm: "
            "registries.caBundle)"
        )
        assert condition["reason"] == "FactsUnavailable"
        assert condition["message"] == (
            f"nothing from registry {host} is enforced: 2 of 2 images decided by onUnknown, not by their facts: "
            f"registry {host}, 2 of 2 (RegistryUntrusted: {cause}); admitted unchecked (onUnknown: Allow)"
        )
        table = plane.kubectl("get", "imagepolicies", POLICY).stdout.splitlines()
        row = dict(zip(table[0].split(), table[1].split(), strict=True))
        assert (row["MODE"], row["ENFORCING"]) == ("Enforce", "False")

        # One Warning Event on the policy, where kubectl describe finds it.
        (event,) = wait_for("the NothingEnforced Event", lambda: nothing_enforced_events(plane))
        policy_uid = (get(plane, "imagepolicy", POLICY) or {})["metadata"]["uid"]
        assert (event["type"], event["metadata"]["namespace"]) == ("Warning", "default")
        assert {key: event["involvedObject"].get(key) for key in ("kind", "name", "uid", "apiVersion")} == {
            "kind": "ImagePolicy",
            "name": POLICY,
            "uid": policy_uid,
            "apiVersion": "slimguard.dev/v1alpha1",
        }
        assert event["message"] == condition["message"]
        assert "NothingEnforced" in plane.kubectl("describe", "imagepolicy", POLICY).stdout

        # The metrics the alert reads: every image checked there decided by default.
        labels = (("policy", POLICY), ("registry", host))
        untrusted = (("policy", POLICY), ("reason", "RegistryUntrusted"), ("registry", host))
        numbers = scraped(metrics_port)
        assert numbers[("slimguard_images_checked", labels)] == 2
        assert numbers[("slimguard_images_decided_by_default", untrusted)] == 2

        # Both health endpoints answer 200, and say it.
        health = httpx.get(f"http://127.0.0.1:{liveness_port}/healthz", timeout=5)
        assert health.status_code == 200
        assert health.json()["enforcing"] == (
            f"degraded: 2 of 2 images in use decided by onUnknown, not by their facts: registry {host}, 2 of 2 "
            f"(RegistryUntrusted: {cause})"
        )
        with replicas._client() as client:
            ready = client.get(f"https://127.0.0.1:{replicas.port}/readyz")
            verbose = client.get(f"https://127.0.0.1:{replicas.port}/readyz?verbose")
        assert ready.status_code == verbose.status_code == 200
        assert ready.text.startswith(
            f"degraded: 2 of 2 images reviewed in the last 5 min decided by onUnknown, not by their facts: registry "
            f"{host}, 2 of 2 (RegistryUntrusted: "
        )
        assert f"[!]enforcing {ready.text}" in verbose.text.splitlines()
        assert verbose.text.splitlines()[-1] == "readyz check passed"

        # Later audits (the namespace relabelled: every workload in it evaluated again) say nothing new.
        errors_before = numbers[("slimguard_evaluations_total", (("status", "error"),))]
        audited_before = (get(plane, "imagepolicy", POLICY) or {})["status"]["lastAuditTime"]
        plane.kubectl("label", "namespace", NS, "slimguard-e2e/reaudit=1")

        def audited_again() -> bool:
            again = scraped(metrics_port)[("slimguard_evaluations_total", (("status", "error"),))]
            written = (get(plane, "imagepolicy", POLICY) or {})["status"]["lastAuditTime"]
            return again >= errors_before + 2 and written != audited_before

        wait_for("a later audit to be written", audited_again, timeout=60)
        assert len(nothing_enforced_events(plane)) == 1

    # Given the CA, the controller reads the registry: the rules decide again.
    trusting = ControllerProcess(
        kubeconfig=controller_kubeconfig,
        registry_ca_file=registry.ca_file,
        workdir=tmp_path / "trusting",
        extra_args=flags,
    )
    restarted = time.monotonic()
    with trusting:
        condition = wait_for("Enforcing=True", lambda: enforcing(plane, "True"), timeout=90)
        mended = time.monotonic() - restarted
        assert (condition["reason"], condition["message"]) == (
            "FactsRead",
            "the rules decide: all 2 images decided by their facts",
        )
        numbers = scraped(metrics_port)
        assert numbers[("slimguard_images_checked", labels)] == 2
        assert not [key for key in numbers if key[0] == "slimguard_images_decided_by_default"]
        health = httpx.get(f"http://127.0.0.1:{liveness_port}/healthz", timeout=5).json()
        assert health["enforcing"] == "ok: all 2 images in use decided by their facts"
        table = plane.kubectl("get", "imagepolicies", POLICY).stdout.splitlines()
        assert dict(zip(table[0].split(), table[1].split(), strict=True))["ENFORCING"] == "True"
    assert len(nothing_enforced_events(plane)) == 1, "turning True again, or a restart, is no news"
    numbers_line = {
        "fault": "registry CA not trusted",
        "seconds_from_first_apply_to_enforcing_false": round(said, 1),
        "seconds_from_restart_with_ca_file_to_enforcing_true": round(mended, 1),
        "nothing_enforced_events": 1,
    }
    print(f"FAULT-MATRIX {json.dumps(numbers_line, sort_keys=True)}")
