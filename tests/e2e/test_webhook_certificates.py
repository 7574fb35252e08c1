"""cert-manager rotates serving certificates under running pods: the webhook picks up the new pair by itself."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from cluster import wait_for

from slimguard_testbed import CertificateAuthority, Registry
from slimguard_testbed.webhook import WebhookReplicas


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
