"""One identity for kopf and for the ``kubernetes`` client: a kubeconfig file or the in-cluster ServiceAccount."""

from __future__ import annotations

import os
from pathlib import Path

import kopf
from kubernetes import config

from slimguard.kube.gateway import load_api_client

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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


def own_namespace(kubeconfig: str | None) -> str:
    """The namespace this process belongs to, as it connects: ``$POD_NAMESPACE`` (the chart sets it), in a Pod
    its ServiceAccount's, else the kubeconfig's current context's, else ``default``."""
    if namespace := os.environ.get("POD_NAMESPACE"):
        return namespace
    if kubeconfig is None and SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    try:
        _, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError, TypeError, KeyError):
        return "default"
    return str((current or {}).get("context", {}).get("namespace") or "default")
