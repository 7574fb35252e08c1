"""The webhook's serving certificate: rotated under a running replica, expired, or gone with its Secret."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from cluster import deployment, image_policy, namespace, wait_for

from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration


def served_certificate(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port))


def normalised(pem: bytes | str) -> str:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(pem if isinstance(pem, str) else pem.decode()))


def test_a_rotated_serving_certificate_is_served_without_a_restart(
    webhook_kubeconfig: str, registry: Registry, testbed_ca: CertificateAuthority, tmp_path: Path, fixture_images: Any
) -> None:
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=1,
        cert_reload_interval=0.5,
    )
    with replicas:
        first = served_certificate(replicas.port)
        assert normalised(first) == normalised(replicas.cert_file.read_bytes())
        rotated = testbed_ca.issue("slimguard-webhook-rotated", hosts=("127.0.0.1",))
        staging = tmp_path / "staging"
        cert, key = rotated.write(staging, "webhook")
        # As the kubelet updates a Secret volume: new files swapped in, key first.
        os.replace(key, replicas.key_file)
        os.replace(cert, replicas.cert_file)
        wait_for(
            "the rotated certificate to be served",
            lambda: normalised(served_certificate(replicas.port)) == normalised(rotated.cert_pem),
            timeout=20,
        )
        assert replicas.processes[0].alive()


def _unverified_get(url: str) -> httpx.Response:
    """What a probe sees, whatever the certificate: the kubelet's HTTPS probes do not verify it either."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with httpx.Client(verify=context, timeout=5) as client:
        return client.get(url)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in the scrape")


def _apply(plane: ControlPlane, *documents: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents), check=False)


def test_an_expired_serving_certificate_is_visible_and_the_failure_policy_decides(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
    fixture_images: Any,
) -> None:
    from conftest import WEBHOOK_TEMPLATE

    now = datetime.now(UTC)
    expired = testbed_ca.issue(
        "slimguard-webhook-expired", hosts=("127.0.0.1",), valid_for=(now - timedelta(days=2), now - timedelta(days=1))
    )
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=0,
        serving=expired,
    )
    ns = "cert-expired"
    with replicas:
        replica = replicas.start_replica(wait_ready=False)
        wait_for(
            "the view to sync, so only the certificate keeps the replica unready",
            lambda: 'slimguard_build_info{component="webhook"' in replicas.metrics(0),
            timeout=20,
        )
        ready = _unverified_get(f"https://127.0.0.1:{replicas.port}/readyz")
        assert ready.status_code == 503
        assert "expired at" in ready.text
        assert _metric(replicas.metrics(0), "slimguard_webhook_certificate_expiry_timestamp_seconds") < time.time()
        assert "expired at" in replica.tail()
        assert "failurePolicy decides" in replica.tail()

        assert (
            _apply(
                control_plane,
                namespace(ns),
                image_policy("cert-expired", {"maxCompressedSize": "200Mi"}, namespaces=[ns], mode="Enforce"),
            ).returncode
            == 0
        )
        outcomes = {}
        for failure_policy in ("Fail", "Ignore"):
            register(
                control_plane,
                webhook_configuration(
                    WEBHOOK_TEMPLATE,
                    url=replicas.url,
                    ca_pem=testbed_ca.cert_pem,
                    name="slimguard-expired",
                    failure_policy=failure_policy,
                ),
            )
            time.sleep(1)
            outcomes[failure_policy] = _apply(
                control_plane, deployment(f"fat-{failure_policy.lower()}", ns, fixture_images.fat_app.ref)
            )
        control_plane.kubectl("delete", "validatingwebhookconfiguration", "slimguard-expired")
        control_plane.kubectl("delete", "imagepolicy", "cert-expired")
    # Fail: nothing is admitted, and the apiserver names the certificate; Ignore: admitted unchecked.
    assert outcomes["Fail"].returncode != 0
    assert 'failed calling webhook "images.slimguard.dev"' in outcomes["Fail"].stderr
    assert "certificate has expired" in outcomes["Fail"].stderr
    assert outcomes["Ignore"].returncode == 0, outcomes["Ignore"].stderr


def test_a_deleted_certificate_secret_keeps_the_last_pair_served_and_is_counted_and_logged(
    webhook_kubeconfig: str, registry: Registry, testbed_ca: CertificateAuthority, tmp_path: Path, fixture_images: Any
) -> None:
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=1,
        cert_reload_interval=0.3,
    )
    with replicas:
        served = normalised(served_certificate(replicas.port))
        # What a projected Secret volume shows once the Secret is gone and the files are swapped out.
        replicas.cert_file.unlink()
        replicas.key_file.unlink()
        wait_for(
            "the failed reload to be counted",
            lambda: _metric(replicas.metrics(0), "slimguard_webhook_certificate_reload_failures_total") >= 2,
            timeout=20,
        )
        assert normalised(served_certificate(replicas.port)) == served
        assert _unverified_get(f"https://127.0.0.1:{replicas.port}/readyz").status_code == 200
        log = replicas.processes[0].tail(200)
        assert log.count("still serving the last good pair") == 1, log  # once per failure, not every interval
        assert replicas.processes[0].alive()


def test_a_webhook_started_without_its_certificate_exits_with_one_clear_line(
    webhook_kubeconfig: str, tmp_path: Path
) -> None:
    missing = tmp_path / "absent"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "slimguard.cli.main",
            "webhook",
            "--kubeconfig",
            webhook_kubeconfig,
            "--tls-cert-file",
            str(missing / "tls.crt"),
            "--tls-key-file",
            str(missing / "tls.key"),
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot load the serving certificate" in lines[0]
    assert "tls.crt" in lines[0]
