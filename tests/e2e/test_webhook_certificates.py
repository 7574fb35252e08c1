"""The webhook's serving certificate: rotated under a running replica, expired, or gone with its Secret; and a
certificate of its own, made, shared by its replicas and rotated under load without losing a review."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cluster import deployment, image_policy, namespace, wait_for
from cryptography import x509

from slimguard.admission.certificate_authority import certificates_in
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.install import NAMESPACE
from slimguard_testbed.webhook import (
    SELF_MANAGED_CONFIGURATION,
    SELF_MANAGED_SECRET,
    SelfManaged,
    WebhookReplicas,
    register,
    webhook_configuration,
)


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
    from cluster import WEBHOOK_TEMPLATE

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


# -- a certificate of its own (--certificate-secret): no secret rendered, the caBundle patched by the webhook -------
# The replicas run as the install's ServiceAccount (kustomize base RBAC: its Secret by name in its namespace, the
# caBundle of the ValidatingWebhookConfiguration "slimguard"); the apiserver calls them at 127.0.0.1 by url.

OWN_NS = "cert-self-managed"
DENIED = 'admission webhook "images.slimguard.dev" denied the request'
LOST = "failed calling webhook"


def _clean_slate(plane: ControlPlane) -> None:
    plane.kubectl("delete", "validatingwebhookconfiguration", SELF_MANAGED_CONFIGURATION, "--ignore-not-found")
    plane.kubectl("delete", "secret", SELF_MANAGED_SECRET, "-n", NAMESPACE, "--ignore-not-found")


def _register_untrusted(plane: ControlPlane, url: str) -> None:
    """The configuration as the chart renders it in self-managed mode: no caBundle; failurePolicy Fail, so that a
    review the apiserver cannot make is an error, never a silent admission. Only the test's namespace."""
    from cluster import WEBHOOK_TEMPLATE

    configuration = webhook_configuration(
        WEBHOOK_TEMPLATE, url=url, ca_pem=None, name=SELF_MANAGED_CONFIGURATION, failure_policy="Fail"
    )
    for hook in configuration["webhooks"]:
        hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": OWN_NS}}
    register(plane, configuration)


def _secret(plane: ControlPlane) -> dict[str, Any] | None:
    found = plane.kubectl("get", "secret", SELF_MANAGED_SECRET, "-n", NAMESPACE, "-o", "json", "--ignore-not-found")
    return json.loads(found.stdout) if found.stdout.strip() else None


def _field(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def _ca_bundle(plane: ControlPlane) -> bytes:
    body = json.loads(
        plane.kubectl("get", "validatingwebhookconfiguration", SELF_MANAGED_CONFIGURATION, "-o=json").stdout
    )
    (hook,) = body["webhooks"]
    return base64.b64decode(hook["clientConfig"].get("caBundle") or "")


def _served(port: int, connections: int = 1) -> set[str]:
    """The certificates the shared port presents over several connections (the kernel spreads them over replicas)."""
    return {normalised(served_certificate(port)) for _ in range(connections)}


def _self_managed(
    webhook_kubeconfig: str, registry: Registry, testbed_ca: CertificateAuthority, tmp_path: Path, **extra: Any
) -> WebhookReplicas:
    return WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=0,
        cert_reload_interval=0.5,
        self_managed=SelfManaged(namespace=NAMESPACE),
        **extra,
    )


def _create(plane: ControlPlane, name: str, image: str) -> subprocess.CompletedProcess[str]:
    return plane.kubectl(
        "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(deployment(name, OWN_NS, image)), check=False
    )


@pytest.fixture
def enforced_namespace(control_plane: ControlPlane, crds_installed: None) -> Iterator[str]:
    policy = image_policy("cert-self-managed", {"maxCompressedSize": "200Mi"}, namespaces=[OWN_NS], mode="Enforce")
    assert _apply(control_plane, namespace(OWN_NS), policy).returncode == 0
    _clean_slate(control_plane)
    yield OWN_NS
    _clean_slate(control_plane)
    control_plane.kubectl("delete", "imagepolicy", "cert-self-managed", "--ignore-not-found")


def test_a_webhook_without_its_secret_makes_it_patches_the_ca_bundle_and_the_apiserver_reaches_it(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
    fixture_images: Any,
    enforced_namespace: str,
) -> None:
    replicas = _self_managed(webhook_kubeconfig, registry, testbed_ca, tmp_path)
    _register_untrusted(control_plane, replicas.url)
    # Rendered without a caBundle and nothing listening yet: the apiserver cannot call it, failurePolicy decides.
    before = wait_for("the configuration to take effect", lambda: _create(control_plane, "early", "x/y:1").stderr)
    assert LOST in before
    assert _secret(control_plane) is None
    with replicas:
        replicas.start_replica()
        secret = _secret(control_plane)
        assert secret is not None
        assert secret["type"] == "kubernetes.io/tls"
        assert {"tls.crt", "tls.key", "ca.crt", "ca.key", "ca-bundle.crt"} <= secret["data"].keys()
        (owner,) = secret["metadata"]["ownerReferences"]  # uninstalling the configuration takes the CA with it
        assert (owner["kind"], owner["name"]) == ("ValidatingWebhookConfiguration", SELF_MANAGED_CONFIGURATION)
        ca = x509.load_pem_x509_certificate(_field(secret, "ca.crt"))
        assert _ca_bundle(control_plane) == _field(secret, "ca-bundle.crt") == _field(secret, "ca.crt")
        (served,) = _served(replicas.port)
        assert served == normalised(_field(secret, "tls.crt"))
        x509.load_pem_x509_certificate(served.encode()).verify_directly_issued_by(ca)
        assert _unverified_get(f"https://127.0.0.1:{replicas.port}/readyz").status_code == 200

        def denied() -> str | None:
            result = _create(control_plane, "fat", fixture_images.fat_app.ref)
            return result.stderr if result.returncode != 0 and DENIED in result.stderr else None

        assert "MiB compressed" in wait_for("slimguard to deny the fat Deployment through the apiserver", denied)
        slim = _create(control_plane, "slim", fixture_images.slim_app.ref)
        assert slim.returncode == 0, slim.stderr
        assert replicas.processes[0].tail(200).count(f"webhook certificate: created Secret {NAMESPACE}/") == 1


def test_two_replicas_started_at_once_serve_one_certificate_from_one_secret(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
    fixture_images: Any,
    enforced_namespace: str,
) -> None:
    replicas = _self_managed(webhook_kubeconfig, registry, testbed_ca, tmp_path)
    _register_untrusted(control_plane, replicas.url)
    with replicas:
        replicas.start_together(2)
        secret = _secret(control_plane)
        assert secret is not None
        logs = [process.tail(300) for process in replicas.processes]
        created = sum(log.count(f"webhook certificate: created Secret {NAMESPACE}/") for log in logs)
        assert created == 1, logs  # the other replica lost the create (409) or found it made: it serves that one
        leaf = x509.load_pem_x509_certificate(_field(secret, "tls.crt"))
        assert _served(replicas.port, connections=30) == {normalised(_field(secret, "tls.crt"))}
        for index in range(2):
            expiry = _metric(replicas.metrics(index), "slimguard_webhook_certificate_expiry_timestamp_seconds")
            assert expiry == leaf.not_valid_after_utc.timestamp()
        assert _ca_bundle(control_plane) == _field(secret, "ca.crt")


def test_a_ca_rotation_under_a_stream_of_creates_loses_no_review(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
    fixture_images: Any,
    enforced_namespace: str,
) -> None:
    """failurePolicy Fail: a review the apiserver could not make (a certificate it does not trust) fails the create.
    The rotation is asked for on the Secret and its steps are 3 s apart (--ca-trust-delay, --ca-overlap)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    from slimguard.kube.gateway import load_api_client

    replicas = _self_managed(webhook_kubeconfig, registry, testbed_ca, tmp_path)
    _register_untrusted(control_plane, replicas.url)
    with replicas:
        replicas.start_together(2)
        first = _secret(control_plane)
        assert first is not None
        old_ca = _field(first, "ca.crt")
        wait_for(
            "the fat image to be denied",
            lambda: DENIED in _create(control_plane, "probe", fixture_images.fat_app.ref).stderr,
        )
        reviews_before = sum(
            _metric_sum(replicas.metrics(index), "slimguard_admission_reviews_total") for index in range(2)
        )

        apps = k8s.AppsV1Api(load_api_client(str(control_plane.admin_kubeconfig)))
        outcomes: dict[str, int] = {"allowed": 0, "denied": 0, "lost": 0, "other": 0}
        lost: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def stream(worker: int) -> None:
            count = 0
            while not stop.is_set():
                fat = count % 2 == 1
                image = fixture_images.fat_app.ref if fat else fixture_images.slim_app.ref
                body = deployment(f"stream-{worker}-{count}", OWN_NS, image)
                try:
                    apps.create_namespaced_deployment(OWN_NS, body, dry_run="All")
                    outcome = "allowed" if not fat else "other"
                except ApiException as error:
                    text = error.body or ""
                    outcome = "denied" if fat and "denied the request" in text else "lost" if LOST in text else "other"
                    if outcome != "denied":
                        lost.append(text[:500])
                with lock:
                    outcomes[outcome] += 1
                count += 1

        # The apiserver keeps its connections to a webhook open, so the stream above mostly rides on TLS sessions made
        # before the rotation. What a new connection meets (a replica restarted, another apiserver, the client a new
        # caBundle makes) is checked here: fresh handshakes, each verified against the caBundle as it is now.
        admission = k8s.AdmissionregistrationV1Api(load_api_client(str(control_plane.admin_kubeconfig)))
        handshakes = {"verified": 0, "failed": 0}
        bundles_seen: set[int] = set()
        current: list[bytes] = [_ca_bundle(control_plane)]

        def follow_bundle() -> None:
            while not stop.is_set():
                configuration = admission.read_validating_webhook_configuration(SELF_MANAGED_CONFIGURATION)
                current[0] = base64.b64decode(configuration.webhooks[0].client_config.ca_bundle or "")
                bundles_seen.add(len(certificates_in(current[0])))

        def connect() -> None:
            while not stop.is_set():
                context = ssl.create_default_context(cadata=current[0].decode())
                try:
                    with socket.create_connection(("127.0.0.1", replicas.port), timeout=5) as raw:
                        context.wrap_socket(raw, server_hostname="127.0.0.1").close()
                    handshakes["verified"] += 1
                except ssl.SSLError as error:
                    handshakes["failed"] += 1
                    lost.append(f"handshake: {error}")

        workers = [threading.Thread(target=stream, args=(n,), daemon=True) for n in range(2)]
        workers += [threading.Thread(target=task, daemon=True) for task in (follow_bundle, connect)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(2)  # the stream under way before the rotation
            control_plane.kubectl(
                "annotate", "secret", SELF_MANAGED_SECRET, "-n", NAMESPACE, "slimguard.dev/rotate-ca=e2e"
            )

            def rotated() -> bool:
                secret = _secret(control_plane) or {}
                data = secret.get("data") or {}
                return data.get("ca.crt") != first["data"]["ca.crt"] and "previous-ca.crt" not in data

            wait_for("the CA to be published, switched to and the old one dropped", rotated, timeout=40)
            new = _secret(control_plane)
            assert new is not None
            wait_for(
                "both replicas to serve the new certificate",
                lambda: _served(replicas.port, connections=20) == {normalised(_field(new, "tls.crt"))},
                timeout=20,
            )
            time.sleep(2)  # and the stream goes on against the new CA alone
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
        attempts = sum(outcomes.values())
        print(f"creates during the rotation: {attempts} attempted, {outcomes}; new connections: {handshakes}")
        assert handshakes["failed"] == 0, lost[:3]
        assert handshakes["verified"] >= 200
        assert outcomes["lost"] == 0, lost[:3]
        assert outcomes["other"] == 0, lost[:3]
        assert attempts >= 40
        assert _ca_bundle(control_plane) == _field(new, "ca.crt") != old_ca
        assert bundles_seen >= {2}, bundles_seen  # the old and the new CA were trusted together on the way
        reviews = sum(_metric_sum(replicas.metrics(index), "slimguard_admission_reviews_total") for index in range(2))
        assert reviews - reviews_before >= attempts  # every create was answered by slimguard itself
        steps = "".join(process.tail(400) for process in replicas.processes)
        assert steps.count("a CA rotation was asked for (slimguard.dev/rotate-ca): a new CA is published") == 1
        assert steps.count("the new CA signs the serving certificate from now on") == 1
        assert steps.count("the old CA is dropped from the caBundle") == 1


def _metric_sum(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


# -- the certificate manager in process, its clock moved by the test (months in milliseconds) ---------------------


def _manager(webhook_kubeconfig: str, clock: list[datetime], tmp_path: Path, name: str) -> Any:
    from slimguard.admission.certificate_manager import CertificateManager, SelfManagedCertificates
    from slimguard.kube.gateway import load_api_client
    from slimguard.kube.webhook_certificates import WebhookCertificateStore

    settings = SelfManagedCertificates(
        secret_name=SELF_MANAGED_SECRET,
        namespace=NAMESPACE,
        service="slimguard-webhook",
        webhook_configuration=SELF_MANAGED_CONFIGURATION,
        extra_hosts=("127.0.0.1",),
    )
    store = WebhookCertificateStore(
        load_api_client(webhook_kubeconfig),
        namespace=NAMESPACE,
        secret_name=SELF_MANAGED_SECRET,
        configuration_name=SELF_MANAGED_CONFIGURATION,
    )
    return CertificateManager(store=store, settings=settings, directory=tmp_path / name, clock=lambda: clock[0])


async def test_each_step_of_a_scheduled_rotation_reaches_the_secret_the_ca_bundle_and_every_replica(
    control_plane: ControlPlane, webhook_kubeconfig: str, tmp_path: Path, enforced_namespace: str
) -> None:
    _register_untrusted(control_plane, "https://127.0.0.1:9/validate")
    now = datetime.now(UTC)
    clock = [now]
    one, two = (_manager(webhook_kubeconfig, clock, tmp_path, name) for name in ("one", "two"))
    await asyncio.gather(one.start(), two.start())  # at once: one creates, the other reads what it made
    assert one.pem_file.read_bytes() == two.pem_file.read_bytes()

    def trusted() -> list[x509.Certificate]:
        return list(certificates_in(_ca_bundle(control_plane)))

    (first_ca,) = trusted()
    served = one.pem_file.read_bytes()

    async def at(moment: datetime) -> None:
        clock[0] = moment
        await one.sync()
        await two.sync()
        assert one.pem_file.read_bytes() == two.pem_file.read_bytes()
        assert one.untrusted is None
        assert two.untrusted is None

    await at(now + timedelta(days=61))  # the serving certificate renewed; no trust changes
    assert one.pem_file.read_bytes() != served
    assert trusted() == [first_ca]
    await at(now + timedelta(days=215))  # renewed again (its predecessor expired on day 151 and is due on 275)
    served = one.pem_file.read_bytes()
    await at(now + timedelta(days=244))  # the CA has a third of its life left: a new one published
    assert len(trusted()) == 2
    assert trusted()[0] == first_ca
    assert one.pem_file.read_bytes() == served  # nothing served changes yet
    await at(now + timedelta(days=244, minutes=5))  # signing with the new CA
    new_ca = trusted()[0]
    assert trusted() == [new_ca, first_ca]
    x509.load_pem_x509_certificate(one.pem_file.read_bytes()).verify_directly_issued_by(new_ca)
    await at(now + timedelta(days=244, hours=1, minutes=5))  # the old CA dropped
    assert trusted() == [new_ca]
    for manager in (one, two):
        await manager.aclose()
        manager.remove_files()


async def test_a_secret_it_cannot_sign_with_is_replaced_and_the_replica_is_unready_while_untrusted(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    tmp_path: Path,
    enforced_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    garbled = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": SELF_MANAGED_SECRET, "namespace": NAMESPACE, "labels": {"team": "platform"}},
        "stringData": {"tls.crt": "left by hand", "tls.key": "left by hand", "ca.crt": "not a certificate"},
    }
    assert _apply(control_plane, garbled).returncode == 0
    caplog.set_level(logging.INFO, logger="slimguard.admission")
    clock = [datetime.now(UTC)]
    manager = _manager(webhook_kubeconfig, clock, tmp_path, "one")
    await manager.start()
    # No webhook configuration of its name: nothing trusts it, and the replica says so (its /readyz answers this).
    assert manager.untrusted == (
        f"ValidatingWebhookConfiguration {SELF_MANAGED_CONFIGURATION} does not exist: no apiserver trusts this "
        "webhook's CA"
    )
    secret = _secret(control_plane)
    assert secret is not None
    assert secret["metadata"]["labels"]["team"] == "platform"  # what others put on it is kept
    x509.load_pem_x509_certificate(_field(secret, "ca.crt"))
    assert (
        f"webhook certificate: Secret {NAMESPACE}/{SELF_MANAGED_SECRET}: its CA cannot sign: no ca.key: replaced by a "
        "new CA and serving certificate" in caplog.text
    )
    _register_untrusted(control_plane, "https://127.0.0.1:9/validate")
    await manager.sync()
    assert manager.untrusted is None
    assert _ca_bundle(control_plane) == _field(secret, "ca.crt")
    assert _secret(control_plane)["metadata"]["ownerReferences"][0]["name"] == SELF_MANAGED_CONFIGURATION  # type: ignore[index]
    await manager.aclose()
    manager.remove_files()
