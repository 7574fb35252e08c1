"""One identity for kopf and for the ``kubernetes`` client: a kubeconfig file or the in-cluster ServiceAccount."""

from __future__ import annotations

import kopf

from slimguard.kube.gateway import load_api_client


def connection_info(kubeconfig: str | None) -> kopf.ConnectionInfo:
    configuration = load_api_client(kubeconfig).configuration
    authorization = str(configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken") or "")
    scheme, _, token = authorization.partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme or None,
        token=token or None,
        default_namespace="default",
    )
