"""The Kubernetes objects the end-to-end tests and the benchmarks create: one body of each kind, so that what a
benchmark measures is what the tests check (tests/e2e/cluster.py re-exports these).

Plain dicts, as the apiserver takes them as JSON and `kubectl apply` as YAML.
"""

from __future__ import annotations

from typing import Any


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def pod_spec(
    image: str, *, container: str = "api", init_image: str | None = None, pull_secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One container on ``image``; an init container on ``init_image``; the named imagePullSecrets."""
    spec: dict[str, Any] = {"containers": [{"name": container, "image": image}]}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in pull_secrets]
    if init_image:
        spec["initContainers"] = [{"name": "init", "image": init_image}]
    return spec


def pod(
    name: str,
    namespace: str,
    image: str,
    *,
    container: str = "api",
    init_image: str | None = None,
    pull_secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    spec = pod_spec(image, container=container, init_image=init_image, pull_secrets=pull_secrets)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def deployment(
    name: str,
    namespace: str,
    image: str,
    *,
    replicas: int = 1,
    container: str = "api",
    init_image: str | None = None,
    pull_secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A Deployment labelled ``app: name``; ``replicas: 0`` still makes its ReplicaSet, and no Pods."""
    spec = pod_spec(image, container=container, init_image=init_image, pull_secrets=pull_secrets)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def image_policy(
    name: str, rules: dict[str, Any], *, namespaces: list[str], mode: str = "Audit", **extra: Any
) -> dict[str, Any]:
    """An ImagePolicy matching ``namespaces`` (globs); ``extra`` goes into its spec (knownBaseImages, ...)."""
    return {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": name},
        "spec": {"mode": mode, "match": {"namespaces": namespaces}, "rules": rules, **extra},
    }
