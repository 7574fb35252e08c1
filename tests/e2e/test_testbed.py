"""The test bed itself: each real part does what the other end-to-end tests rely on."""

from __future__ import annotations

import hashlib
import io
import json
import re
import ssl
import tarfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import pytest

from slimguard_testbed import ControlPlane, DockerEngine, Registry
from slimguard_testbed.images.self_image import remove_earlier_builds

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def eventually(check: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.2) -> Any:
    """Retry `check` until it stops raising AssertionError; returns its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


# -- Kubernetes ---------------------------------------------------------------------------------------


def test_apiserver_enforces_rbac(control_plane: ControlPlane) -> None:
    control_plane.apply(
        """
apiVersion: v1
kind: Namespace
metadata: {name: rbac-check}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: rbac-check}
"""
    )
    kubeconfig = control_plane.service_account_kubeconfig("rbac-check", "reader")

    denied = control_plane.kubectl("get", "pods", "-n", "rbac-check", kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr
    assert "system:serviceaccount:rbac-check:reader" in denied.stderr

    control_plane.apply(
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: rbac-check}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-pods, namespace: rbac-check}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {kind: ServiceAccount, name: reader, namespace: rbac-check}
"""
    )

    def allowed() -> None:
        result = control_plane.kubectl("get", "pods", "-n", "rbac-check", kubeconfig=kubeconfig, check=False)
        assert result.returncode == 0, result.stderr

    eventually(allowed)
    # The binding is namespaced: elsewhere the ServiceAccount is still refused.
    other = control_plane.kubectl("get", "pods", "-n", "default", kubeconfig=kubeconfig, check=False)
    assert other.returncode != 0
    assert "forbidden" in other.stderr


def test_controller_manager_turns_a_deployment_into_replicaset_and_pods(control_plane: ControlPlane) -> None:
    control_plane.apply(
        """
apiVersion: v1
kind: Namespace
metadata: {name: workloads-check}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: workloads-check}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "127.0.0.1:5000/shop/web:1.0"}
"""
    )

    def pods() -> list[dict[str, Any]]:
        listed = json.loads(control_plane.kubectl("get", "pods", "-n", "workloads-check", "-o", "json").stdout)
        assert len(listed["items"]) == 2
        return list(listed["items"])

    created = eventually(pods)
    replicasets = json.loads(control_plane.kubectl("get", "rs", "-n", "workloads-check", "-o", "json").stdout)
    (replicaset,) = replicasets["items"]
    assert replicaset["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert replicaset["metadata"]["ownerReferences"][0]["name"] == "web"
    for pod in created:
        assert pod["metadata"]["ownerReferences"][0]["name"] == replicaset["metadata"]["name"]
        assert pod["spec"]["containers"][0]["image"] == "127.0.0.1:5000/shop/web:1.0"
        # No scheduler and no kubelet: Pods stay Pending, which is all the operator needs.
        assert pod["status"]["phase"] == "Pending"


# -- Registry -----------------------------------------------------------------------------------------


class TokenAuth(httpx.Auth):
    """The registry token flow: on a Bearer challenge, fetch a token for its scope and retry."""

    def __init__(self, context: ssl.SSLContext, credentials: tuple[str, str] | None = None) -> None:
        self.context = context
        self.credentials = credentials
        self.tokens_fetched = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not challenge.startswith("Bearer "):
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm")
        answer = httpx.get(realm, params=params, auth=self.credentials, verify=self.context)
        answer.raise_for_status()
        self.tokens_fetched += 1
        request.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        yield request


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(client: httpx.Client, repository: str, tag: str) -> tuple[str, bytes, bytes]:
    """Push a one-layer OCI image; returns (manifest digest, manifest bytes, layer bytes)."""
    layer = f"layer of {repository}:{tag}".encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    for blob in (config, layer):
        started = client.post(f"/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        # Keep the upload's own query (its `_state`): httpx's params= would replace it.
        location = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": _digest(blob)})
        finished = client.put(location, content=blob)
        assert finished.status_code == 201, finished.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    put = client.put(f"/v2/{repository}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == _digest(manifest)
    return _digest(manifest), manifest, layer


def _client(registry: Registry, auth: httpx.Auth | tuple[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=registry.url, verify=registry.ssl_context(), auth=auth, timeout=10)


def test_token_registry_pushes_with_credentials_and_serves_by_digest(registry: Registry) -> None:
    assert registry.token_issuer is not None
    endpoint = registry.endpoint
    assert endpoint.host == registry.host
    assert endpoint.ca_file.exists()
    assert endpoint.username is not None
    assert endpoint.password is not None
    tokens_before = registry.token_issuer.token_requests
    auth = TokenAuth(registry.ssl_context(), (endpoint.username, endpoint.password))

    with _client(registry, auth) as client:
        digest, manifest, layer = push_image(client, "private/testbed/app", "1.0")
        got = client.get(f"/v2/private/testbed/app/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200
        assert got.content == manifest
        assert got.headers["Docker-Content-Digest"] == digest
        blob = client.get(f"/v2/private/testbed/app/blobs/{_digest(layer)}", follow_redirects=True)
        assert blob.status_code == 200
        assert blob.content == layer
        public_digest, public_manifest, _ = push_image(client, "public/testbed/app", "1.0")
    assert auth.tokens_fetched > 0
    assert registry.token_issuer.token_requests - tokens_before == auth.tokens_fetched

    anonymous = TokenAuth(registry.ssl_context())
    with _client(registry, anonymous) as client:
        public = client.get(f"/v2/public/testbed/app/manifests/{public_digest}", headers={"Accept": OCI_MANIFEST})
        assert public.status_code == 200
        assert public.content == public_manifest
        # An anonymous token for private/ grants nothing: the registry still answers 401.
        private = client.get(f"/v2/private/testbed/app/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        assert private.status_code == 401
        assert anonymous.tokens_fetched == 2
        refused = registry.token_issuer.requests[-1]
        assert refused.user is None
        assert refused.granted == ()
        push = client.post("/v2/public/testbed/app/blobs/uploads/")
        assert push.status_code == 401  # anonymous users may pull public/ but never push

    wrong = httpx.get(
        registry.token_issuer.url,
        params={"service": registry.service, "scope": "repository:private/testbed/app:pull"},
        auth=(endpoint.username, "wrong password"),
        verify=registry.ssl_context(),
    )
    assert wrong.status_code == 401


def test_token_issuer_answers_on_connections_with_nagle_off(registry: Registry) -> None:
    # The issuer writes headers and body separately; with Nagle's algorithm on, every token waited ~40 ms
    # for the client's delayed ACK. The record says what the serving socket had set, successes and refusals.
    assert registry.token_issuer is not None
    before = registry.token_issuer.token_requests
    scope = {"service": registry.service, "scope": "repository:public/testbed/app:pull"}
    granted = httpx.get(registry.token_issuer.url, params=scope, verify=registry.ssl_context())
    refused = httpx.get(
        registry.token_issuer.url, params=scope, auth=("nobody", "wrong"), verify=registry.ssl_context()
    )
    assert (granted.status_code, refused.status_code) == (200, 401)
    answered = registry.token_issuer.requests[before:]
    assert [(r.status, r.nodelay) for r in answered] == [(200, True), (401, True)]


def test_htpasswd_registry_needs_credentials(registry: Registry, basic_registry: Registry) -> None:
    assert basic_registry.endpoint.username == registry.endpoint.username
    with _client(registry, TokenAuth(registry.ssl_context(), (registry.username, registry.password))) as client:
        digest, manifest, _ = push_image(client, "private/testbed/basic", "2.0")

    path = f"/v2/private/testbed/basic/manifests/{digest}"
    with _client(basic_registry) as client:
        refused = client.get(path, headers={"Accept": OCI_MANIFEST})
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    with _client(basic_registry, (basic_registry.username, basic_registry.password)) as client:
        # Same storage directory: what was pushed through the token registry is served here too.
        served = client.get(path, headers={"Accept": OCI_MANIFEST})
        assert served.status_code == 200
        assert served.content == manifest
    with _client(basic_registry, (basic_registry.username, "wrong password")) as client:
        assert client.get(path).status_code == 401


def test_request_log_records_every_request(registry: Registry, basic_registry: Registry) -> None:
    with _client(registry, TokenAuth(registry.ssl_context(), (registry.username, registry.password))) as client:
        digest, _, _ = push_image(client, "shop/testbed/logged", "1")

    mark = registry.mark()
    basic_mark = basic_registry.mark()
    # distribution answers 404 for an OCI manifest unless the client accepts its media type.
    accept = {"Accept": OCI_MANIFEST}
    with _client(registry, TokenAuth(registry.ssl_context())) as client:
        assert client.get(f"/v2/shop/testbed/logged/manifests/{digest}", headers=accept).status_code == 200
        assert client.head("/v2/shop/testbed/logged/manifests/1", headers=accept).status_code == 200
    with _client(basic_registry, (basic_registry.username, basic_registry.password)) as client:
        assert client.get("/v2/shop/testbed/logged/tags/list").status_code == 200

    seen = [(r.method, r.path, r.status) for r in registry.requests(since=mark)]
    manifest_by_digest = f"/v2/shop/testbed/logged/manifests/{digest}"
    # Each request is made once without a token (401), then again with one.
    assert seen == [
        ("GET", manifest_by_digest, 401),
        ("GET", manifest_by_digest, 200),
        ("HEAD", "/v2/shop/testbed/logged/manifests/1", 401),
        ("HEAD", "/v2/shop/testbed/logged/manifests/1", 200),
    ]
    manifests = [r for r in registry.requests(since=mark) if r.kind == "manifests" and r.status == 200]
    assert {r.repository for r in manifests} == {"shop/testbed/logged"}
    assert all(r.user_agent.startswith("python-httpx/") for r in manifests)
    # Basic auth sends credentials up front: one request, no challenge; the other registry's log is its own.
    basic_seen = [(r.method, r.path, r.status) for r in basic_registry.requests(since=basic_mark)]
    assert basic_seen == [("GET", "/v2/shop/testbed/logged/tags/list", 200)]
    assert registry.mark() == mark + 4


# -- Docker Engine --------------------------------------------------------------------------------------


def test_docker_builds_an_image_without_network(docker_engine: DockerEngine, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from slimguard\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    tag = "slimguard-testbed/hello:e2e"
    client = docker_engine.client()
    try:
        image, _ = client.images.build(path=str(tmp_path), tag=tag, network_mode="none", rm=True)
        try:
            listed = {t for i in client.images.list(name="slimguard-testbed/hello") for t in i.tags}
            assert tag in listed
            assert image.attrs["Size"] == len("hello from slimguard\n")
            assert len(image.attrs["RootFS"]["Layers"]) == 1
        finally:
            client.images.remove(tag, force=True)
    finally:
        client.close()


@pytest.mark.timeout(600)  # the first prune on a machine may remove many gigabytes of earlier builds
def test_a_self_image_build_removes_the_untagged_images_earlier_builds_left(docker_engine: DockerEngine) -> None:
    """Earlier builds' leftovers go; what is tagged, and what the last build made, stay (the disk filled once)."""
    client = docker_engine.client()
    try:
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            info = tarfile.TarInfo("leftover")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"left"))

        def imported(label: str) -> str:
            # A different file each time: docker import of identical bytes would give the same image.
            reply = client.api.import_image_from_data(layer.getvalue() + label.encode().ljust(512, b"\0"))
            return str(json.loads(reply.splitlines()[-1] if isinstance(reply, str) else reply)["status"])

        earlier, kept_by_tag = imported("earlier"), imported("tagged")
        client.images.get(kept_by_tag).tag("slimguard-testbed/kept-by-tag", tag="1")
        time.sleep(1.1)  # `until` compares whole seconds
        boundary = int(time.time())
        time.sleep(1.1)
        made_by_this_build = imported("this build")

        remove_earlier_builds(client, "slimguard-testbed/no-such-build", made_before=boundary)

        remaining = {image.id for image in client.images.list(all=True)}
        assert earlier not in remaining
        assert kept_by_tag in remaining
        assert made_by_this_build in remaining
        client.images.remove("slimguard-testbed/kept-by-tag:1")
        client.images.remove(made_by_this_build)
    finally:
        client.close()
