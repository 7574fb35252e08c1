"""Registries reached only through an egress proxy (issue 24): a real tinyproxy on 127.0.0.1 in front of the test
registry (TLS, bearer tokens from a token service named in its challenge).

The registry is named ``localhost`` here, and loopback registries are *not* allowed: a direct connection to it would
be refused by the guard (``localhost`` resolves to 127.0.0.1), so an image read at all was read through the proxy,
every request of it, the token fetch included. The proxy resolves the name itself, which is exactly what the guard
cannot see (README: "Registries behind a proxy"). The proxy's own log says what it was asked; the registry's says
what arrived.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import WEBHOOK_TEMPLATE, apply, deployment, image_policy, namespace, wait_for, wait_for_status

from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.controller_process import ControllerProcess
from slimguard_testbed.faults import HostileRegistry
from slimguard_testbed.forward_proxy import ForwardProxy
from slimguard_testbed.images import FixtureImage, FixtureImages
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

REPO = Path(__file__).resolve().parents[2]
DENIED = 'admission webhook "images.slimguard.dev" denied the request'
SIZE_POLICY = {"maxCompressedSize": "200Mi"}


@pytest.fixture(scope="module")
def named_registry(
    tmp_path_factory: pytest.TempPathFactory,
    testbed_ca: CertificateAuthority,
    registry_storage: Path,
    registry_credentials: Any,
    fixture_images: FixtureImages,
) -> Iterator[Registry]:
    """The session's images (same storage), served by a registry whose token realm is ``https://localhost:PORT``."""
    with Registry(
        storage_dir=registry_storage,
        ca=testbed_ca,
        auth="token",
        workdir=tmp_path_factory.mktemp("proxied-registry"),
        username=registry_credentials.username,
        password=registry_credentials.password,
        token_realm_host="localhost",
    ) as started:
        yield started


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with ForwardProxy(workdir=tmp_path_factory.mktemp("tinyproxy")) as started:
        yield started


def by_name(registry: Registry, image: FixtureImage) -> str:
    """``image`` on ``registry``, addressed as ``localhost:PORT/...``."""
    return f"localhost:{registry.port}/{image.repository}:{image.tag}"


def token_host(registry: Registry) -> str:
    assert registry.token_issuer is not None
    return registry.token_issuer.url.split("/")[2]


def policy_file(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "slimguard.dev/v1alpha1",
                "kind": "ImagePolicy",
                "metadata": {"name": "slim-behind-proxy"},
                "spec": {"mode": "Enforce", "rules": SIZE_POLICY},
            }
        )
    )
    return path


def docker_config(path: Path, auths: dict[str, tuple[str, str]]) -> dict[str, str]:
    """``DOCKER_CONFIG`` holding these registries' credentials (none: an empty config)."""
    path.mkdir(exist_ok=True)
    entries = {host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for host, (u, p) in auths.items()}
    (path / "config.json").write_text(json.dumps({"auths": entries}))
    return {"DOCKER_CONFIG": str(path)}


def check(
    *images: str,
    registry_ca: Path | None,
    tmp_path: Path,
    flags: tuple[str, ...],
    env: dict[str, str],
) -> subprocess.CompletedProcess[str]:
    """``slimguard check`` of ``images`` with the size policy, JSON out, as a user runs it, with no proxy variable
    in its environment but those in ``env``. Loopback registries are not allowed unless ``flags`` say so."""
    policy = policy_file(tmp_path / "policy.yaml")
    ambient = {name: value for name, value in os.environ.items() if not name.lower().endswith("_proxy")}
    trust = ["--ca-file", str(registry_ca)] if registry_ca is not None else []
    return subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", "check", *images, "--policy", str(policy), "--format", "json",
         *trust, *flags],
        capture_output=True, text=True, timeout=300, check=False,
        env={**ambient, "PYTHONPATH": str(REPO / "operator"), **env},
    )  # fmt: skip


def findings(result: subprocess.CompletedProcess[str]) -> dict[str, list[dict[str, Any]]]:
    return {image["image"]: image["findings"] for image in json.loads(result.stdout)["images"]}


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_check_reads_every_registry_request_through_the_proxy_given_as_a_flag(
    named_registry: Registry, proxy: ForwardProxy, fixture_images: FixtureImages, tmp_path: Path
) -> None:
    slim, fat = by_name(named_registry, fixture_images.slim_app), by_name(named_registry, fixture_images.fat_app)
    env = docker_config(tmp_path / "docker", {})
    proxy_mark, registry_mark = proxy.mark(), named_registry.mark()
    tokens_before = named_registry.token_issuer.token_requests if named_registry.token_issuer else 0

    result = check(
        slim, fat, registry_ca=named_registry.ca_file, tmp_path=tmp_path, flags=("--https-proxy", proxy.url), env=env
    )

    assert result.returncode == 1, result.stdout + result.stderr  # the fat image breaks the policy: it was read
    found = findings(result)
    assert found[slim] == []
    assert [f["rule"] for f in found[fat]] == ["maxCompressedSize"]
    seen = proxy.log(since=proxy_mark)
    assert seen.targets == {f"localhost:{named_registry.port}", token_host(named_registry)}
    assert {method for method, _ in seen.requests} == {"CONNECT"}  # HTTPS: tunnels, the requests inside them
    assert set(seen.connections) == {"127.0.0.1"}
    arrived = named_registry.requests(since=registry_mark)
    assert {r.repository for r in arrived if r.kind == "manifests"} == {"shop/api"}
    assert named_registry.token_issuer is not None
    assert named_registry.token_issuer.token_requests > tokens_before

    # The control: the same check without the proxy is refused by the guard, so none of the above went direct.
    direct = check(slim, registry_ca=named_registry.ca_file, tmp_path=tmp_path, flags=(), env=env)
    assert direct.returncode == 2
    (refused,) = findings(direct)[slim]
    assert refused["reason"] == "RegistryRefused"
    assert "registry host localhost (127.0.0.1) is a loopback address" in refused["message"]


def test_a_literal_internal_address_is_refused_before_the_proxy_hears_of_it(
    named_registry: Registry, proxy: ForwardProxy, fixture_images: FixtureImages, tmp_path: Path
) -> None:
    port, image = named_registry.port, f"{fixture_images.slim_app.repository}:{fixture_images.slim_app.tag}"
    literals = {
        "169.254.169.254/latest/meta-data:1": "169.254.169.254 is a link-local address",
        f"127.0.0.1:{port}/{image}": "127.0.0.1 is a loopback address",
        # Spellings of 127.0.0.1 a proxy's resolver reads as that address (inet_aton's), not as names.
        f"2130706433:{port}/{image}": "2130706433 (127.0.0.1) is a loopback address",
        f"127.1:{port}/{image}": "127.1 (127.0.0.1) is a loopback address",
        f"[::1]:{port}/{image}": "::1 is a loopback address",
    }
    proxy_mark, registry_mark = proxy.mark(), named_registry.mark()

    result = check(
        *literals, registry_ca=named_registry.ca_file, tmp_path=tmp_path, flags=("--https-proxy", proxy.url),
        env=docker_config(tmp_path / "docker", {}),
    )  # fmt: skip

    assert result.returncode == 2, result.stdout + result.stderr
    for reference, (refused, *_) in findings(result).items():
        assert refused["reason"] == "RegistryRefused", reference
        assert f"registry host {literals[reference]}" in refused["message"]
    assert proxy.log(since=proxy_mark).connections == ()  # not one connection: decided before any socket opened
    assert named_registry.requests(since=registry_mark) == []


def test_the_environment_names_the_proxy_and_no_proxy_cidrs_and_hosts_go_direct_through_the_guard(
    named_registry: Registry, proxy: ForwardProxy, fixture_images: FixtureImages, tmp_path: Path
) -> None:
    slim = fixture_images.slim_app
    by_address = f"127.0.0.1:{named_registry.port}/{slim.repository}:{slim.tag}"
    env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "example.com,127.0.0.0/8", **docker_config(tmp_path / "d", {})}
    proxy_mark, registry_mark = proxy.mark(), named_registry.mark()

    # By name through the proxy from $HTTPS_PROXY; by address direct ($NO_PROXY's CIDR), allowed as loopback.
    result = check(
        by_name(named_registry, slim), by_address, registry_ca=named_registry.ca_file, tmp_path=tmp_path,
        flags=("--allow-loopback-registries",), env=env,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert all(found == [] for found in findings(result).values())
    seen = proxy.log(since=proxy_mark)
    assert f"localhost:{named_registry.port}" in seen.targets
    assert not any(target.startswith("127.0.0.1:") for target in seen.targets)
    assert {r.repository for r in named_registry.requests(since=registry_mark) if r.kind == "manifests"} == {
        slim.repository
    }

    # A host in $NO_PROXY goes direct, and direct means through the guard: localhost is refused as loopback.
    proxy_mark = proxy.mark()
    bypassed = check(
        by_name(named_registry, slim), registry_ca=named_registry.ca_file, tmp_path=tmp_path, flags=(),
        env={**env, "NO_PROXY": ".localhost"},
    )  # fmt: skip
    assert bypassed.returncode == 2
    (refused,) = findings(bypassed)[by_name(named_registry, slim)]
    assert "registry host localhost (127.0.0.1) is a loopback address" in refused["message"]
    assert proxy.log(since=proxy_mark).connections == ()


def test_registry_credentials_are_never_offered_to_the_proxy_only_the_proxy_urls_own(
    named_registry: Registry, fixture_images: FixtureImages, tmp_path: Path, registry_credentials: Any
) -> None:
    """The proxy asks for the very user and password the registry takes: sent as proxy credentials, they would
    pass. Without them in the proxy URL it answers 407; with them there, the private image is read through it."""
    user, password = registry_credentials.username, registry_credentials.password
    private = by_name(named_registry, fixture_images.private_slim)
    env = docker_config(tmp_path / "docker", {f"localhost:{named_registry.port}": (user, password)})
    with ForwardProxy(workdir=tmp_path / "guarded-proxy", basic_auth=(user, password)) as guarded:
        refused = check(
            private,
            registry_ca=named_registry.ca_file,
            tmp_path=tmp_path,
            flags=("--https-proxy", guarded.url),
            env=env,
        )
        assert refused.returncode == 2
        (finding,) = findings(refused)[private]
        assert finding["reason"] == "RegistryUnreachable"
        assert f"407 Proxy Authentication Required (through the proxy {guarded.url})" in finding["message"]
        assert "put its user and password in the proxy URL" in finding["message"]
        asked = guarded.log()
        assert asked.requests
        assert asked.established == ()

        mark, tokens = guarded.mark(), named_registry.token_issuer.requests if named_registry.token_issuer else []
        read = check(
            private, registry_ca=named_registry.ca_file, tmp_path=tmp_path,
            flags=("--https-proxy", guarded.url_with_credentials), env=env,
        )  # fmt: skip
        assert read.returncode == 0, read.stdout + read.stderr
        assert findings(read)[private] == []
        assert guarded.log(since=mark).established
        assert password not in read.stdout + read.stderr
        assert named_registry.token_issuer is not None
        new_tokens = named_registry.token_issuer.requests[len(tokens) :]
        assert {token.user for token in new_tokens} == {user}  # the registry's credential reached its token service


def test_a_plain_http_registry_is_read_through_the_http_proxy_whose_credentials_come_from_its_url(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """Plain HTTP is forwarded, not tunnelled: the proxy's log has each request's absolute URL. (The test bed's
    plain-HTTP registry is the fault server's ``sound/app``, a small sound image.)"""
    env = docker_config(tmp_path / "docker", {})
    with HostileRegistry() as plain:
        host = f"localhost:{plain.port}"
        image, flags = f"{host}/sound/app:1", ("--plain-http-registry", host)
        proxy_mark = proxy.mark()
        read = check(image, registry_ca=None, tmp_path=tmp_path, flags=(*flags, "--http-proxy", proxy.url), env=env)
        assert read.returncode == 0, read.stdout + read.stderr
        forwarded = proxy.log(since=proxy_mark).requests
        assert forwarded
        assert {target.split("/v2/")[0] for _, target in forwarded} == {f"http://{host}"}
        assert len(plain.requests_for("sound/app")) == len(forwarded)  # each one, through the proxy

        with ForwardProxy(workdir=tmp_path / "guarded-proxy", basic_auth=("proxyuser", "s3cret")) as guarded:
            refused = check(
                image, registry_ca=None, tmp_path=tmp_path, flags=(*flags, "--http-proxy", guarded.url), env=env
            )
            assert refused.returncode == 2
            (finding,) = findings(refused)[image]
            assert finding["reason"] == "RegistryUnreachable"
            assert f"the proxy to registry {host} asks for credentials (HTTP 407)" in finding["message"]
            allowed = check(
                image, registry_ca=None, tmp_path=tmp_path,
                flags=(*flags, "--http-proxy", guarded.url_with_credentials), env=env,
            )  # fmt: skip
            assert allowed.returncode == 0, allowed.stdout + allowed.stderr
            assert guarded.log().established


# --- the controller and the webhook: their flags, audit and admission through the proxy -------------------------


@pytest.fixture(scope="module")
def proxied_webhook(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    named_registry: Registry,
    proxy: ForwardProxy,
    testbed_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebhookReplicas]:
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(named_registry.ca_file),
        workdir=tmp_path_factory.mktemp("proxied-webhook"),
        replicas=1,
        # The test bed allows loopback registries; the last flag given wins, so here they are not allowed.
        extra_args=("--no-allow-loopback-registries", "--https-proxy", proxy.url),
    )
    name = "slimguard-proxy-e2e"
    with replicas:
        register(
            control_plane,
            webhook_configuration(WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name=name),
        )
        yield replicas
        control_plane.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


def test_the_webhook_denies_a_fat_image_it_read_through_the_proxy_and_the_kubernetes_api_bypasses_it(
    control_plane: ControlPlane,
    proxied_webhook: WebhookReplicas,
    named_registry: Registry,
    proxy: ForwardProxy,
    fixture_images: FixtureImages,
) -> None:
    ns = "proxied-admission"
    fat, slim = by_name(named_registry, fixture_images.fat_app), by_name(named_registry, fixture_images.slim_app)
    apply(control_plane, namespace(ns), image_policy("slim-proxied", SIZE_POLICY, namespaces=[ns], mode="Enforce"))
    proxy_mark, registry_mark = proxy.mark(), named_registry.mark()

    def create(name: str, image: str) -> Any:
        document = yaml.safe_dump(deployment(name, ns, image))
        return control_plane.kubectl("apply", "-f", "-", input=document, check=False)

    # Until the replica has seen the policy, the Deployment is admitted: delete it and ask again.
    def denied() -> str | None:
        result = create("fat", fat)
        if result.returncode == 0:
            control_plane.kubectl("delete", "deployment", "fat", "-n", ns, "--wait=false")
            return None
        return str(result.stderr)

    message = wait_for("the webhook to deny the fat image", denied, timeout=60)
    assert DENIED in message
    assert 'ImagePolicy "slim-proxied"' in message
    assert "allows 200 MiB" in message
    admitted = create("slim", slim)
    assert admitted.returncode == 0, admitted.stderr

    seen = proxy.log(since=proxy_mark)
    # Only registry traffic: no tunnel to the apiserver, whose watches and reads the webhook makes all along.
    assert seen.targets == {f"localhost:{named_registry.port}", token_host(named_registry)}
    assert {r.repository for r in named_registry.requests(since=registry_mark) if r.kind == "manifests"} == {"shop/api"}
    started = next(
        line for line in proxied_webhook.processes[0].log_file.read_text().splitlines() if "https_proxy=" in line
    )
    assert f"https_proxy={proxy.url} http_proxy=none no_proxy=none" in started


def test_the_controller_audits_through_the_proxy_given_as_a_flag_and_the_kubernetes_api_bypasses_it(
    control_plane: ControlPlane,
    operator_kubeconfig: str,
    named_registry: Registry,
    proxy: ForwardProxy,
    fixture_images: FixtureImages,
    tmp_path: Path,
) -> None:
    ns = "proxied-audit"
    fat = by_name(named_registry, fixture_images.fat_app)
    apply(control_plane, namespace(ns), image_policy("slim-audited", SIZE_POLICY, namespaces=[ns]))
    apply(control_plane, deployment("fat", ns, fat))
    expected = {f"localhost:{named_registry.port}", token_host(named_registry)}
    proxy_mark = proxy.mark()
    with ControllerProcess(
        kubeconfig=operator_kubeconfig,
        registry_ca_file=named_registry.ca_file,
        workdir=tmp_path / "controller",
        # The test bed allows loopback registries; the last flag given wins, so here they are not allowed.
        extra_args=("--no-allow-loopback-registries", "--https-proxy", proxy.url),
    ) as controller:
        wait_for("the controller's reads in the proxy's log", lambda: proxy.log(since=proxy_mark).targets >= expected)
        wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant", timeout=120)
        assert f"https_proxy={proxy.url} http_proxy=none no_proxy=none" in controller.log()
    # Its informer's LISTs and WATCHes, its Lease, its writes: none through the proxy.
    assert proxy.log(since=proxy_mark).targets == expected
