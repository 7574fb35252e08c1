"""The kubelet's credential providers, end to end (issue 24): an image only an exec credential provider can read
is judged by the controller, denied at admission when over the limit and checked by `slimguard check`, each given
the kubelet's `--image-credential-provider-config` and `--image-credential-provider-bin-dir`.

The provider is the test bed's real one (slimguard_testbed/credential_provider.py: a process speaking
credentialprovider.kubelet.k8s.io/v1 on stdin and stdout), handing out the session registry's token-service
credentials, as ecr-credential-provider hands out ECR's; its repositories under private/ refuse anonymous pulls.
Each configuration names its own calls file (the `env` of the configuration), so its runs are counted. The
controller and the webhook run against a control plane of this module's own, so the session's controller (which
has no provider) never judges these workloads.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import (
    WEBHOOK_TEMPLATE,
    apply,
    deployment,
    image_policy,
    install_crds,
    namespace,
    pod,
    violations,
    wait_for,
    wait_for_status,
)

from slimguard.controller.settings import ControllerSettings
from slimguard.registry.guard import AddressPolicy
from slimguard.registry.provider_config import load_credential_providers
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.credential_provider import ProviderEntry, install, write_config, write_credentials
from slimguard_testbed.images import FixtureImage, push_image
from slimguard_testbed.install import install_controller_rbac, install_rbac
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kustomize" / "base"
DENIED = 'admission webhook "images.slimguard.dev" denied the request'
LIMIT = {"maxCompressedSize": "1Mi"}
PROVIDER = "testbed-registry"
BROKEN = "broken-provider"


@dataclass(frozen=True)
class PrivateImages:
    """Under private/ (no anonymous pulls): a 3 MiB image, a few-byte one, and the fat one by another host name."""

    fat: FixtureImage
    slim: FixtureImage
    registry: Registry

    @property
    def fat_via_localhost(self) -> str:
        """The fat image named by `localhost:PORT`, which only the broken provider's matchImages match."""
        return self.fat.ref.replace("127.0.0.1:", "localhost:", 1)


@pytest.fixture(scope="module")
def images(registry: Registry) -> PrivateImages:
    fat = push_image(
        registry.endpoint, "private/credprov/fat", "1.0", [{"/app/data.bin": secrets.token_bytes(3 << 20)}]
    )
    slim = push_image(registry.endpoint, "private/credprov/slim", "1.0", [{"/app/hello.txt": b"hello"}])
    return PrivateImages(fat, slim, registry)


@dataclass(frozen=True)
class Providers:
    """The providers' bin directory (the test bed's provider under two names) and the credentials it hands out."""

    bin_dir: Path
    credentials: Path
    workdir: Path
    registry: Registry

    def entry(self, calls: str, **changes: Any) -> ProviderEntry:
        """The working provider for the session registry (127.0.0.1:PORT), its runs counted in ``calls``."""
        made = ProviderEntry(PROVIDER, (self.registry.host,), self.credentials, self.workdir / calls)
        return replace(made, **changes)

    def broken(self, calls: str) -> ProviderEntry:
        """A provider that exits 3 with a message, for the registry named `localhost:PORT`."""
        localhost = self.registry.host.replace("127.0.0.1:", "localhost:", 1)
        return ProviderEntry(BROKEN, (localhost,), self.credentials, self.workdir / calls, behave="exit")

    def config(self, name: str, *entries: ProviderEntry) -> Path:
        return write_config(self.workdir / f"{name}.json", entries)

    def flags(self, config: Path) -> list[str]:
        return [
            "--image-credential-provider-config",
            str(config),
            "--image-credential-provider-bin-dir",
            str(self.bin_dir),
        ]


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Providers:
    workdir = tmp_path_factory.mktemp("credential-providers")
    for name in (PROVIDER, BROKEN):
        install(workdir / "bin", name)
    credentials = write_credentials(workdir / "registry-credentials.json", registry.username, registry.password)
    return Providers(workdir / "bin", credentials, workdir, registry)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[ControlPlane]:
    with ControlPlane(workdir=tmp_path_factory.mktemp("credprov-plane"), ca=testbed_ca) as own:
        install_crds(own, policy_reports=True)
        yield own


# -- the controller --------------------------------------------------------------------------------------------------


def test_the_controller_judges_an_image_only_the_provider_can_read_and_names_a_provider_that_fails(
    plane: ControlPlane, images: PrivateImages, providers: Providers, registry: Registry
) -> None:
    ns = "credprov-audit"
    working, broken = (
        providers.entry("controller.calls", cache_duration="1m"),
        providers.broken("controller-broken.calls"),
    )
    config = providers.config("controller", working, broken)
    settings = ControllerSettings(
        kubeconfig=str(install_controller_rbac(plane, BASE)),
        registry=RegistrySettings(
            address_policy=AddressPolicy(allow_loopback=True),
            ca_files=(str(registry.ca_file),),
            credential_providers=load_credential_providers(str(config), str(providers.bin_dir)),
        ),
        audit_interval_seconds=600,
    )
    with InProcessOperator(settings):
        apply(
            plane,
            namespace(ns),
            deployment("fat", ns, images.fat.ref),
            deployment("slim", ns, images.slim.ref),
            deployment("broken", ns, images.fat_via_localhost),
            image_policy("credprov-audit", LIMIT, namespaces=[ns]),
        )
        fat = wait_for_status(plane, "deployment", "fat", ns, "noncompliant")
        (finding,) = violations(fat)
        assert finding["rule"] == "maxCompressedSize", finding
        assert f"image {images.fat.ref} is " in finding["message"]
        wait_for_status(plane, "deployment", "slim", ns, "compliant")

        failed = wait_for_status(plane, "deployment", "broken", ns, "error")
        (finding,) = violations(failed)
        assert finding["rule"] == "inspection", finding
        assert (
            f"credential provider {BROKEN} exited with status 3 for localhost:{registry.port}/private/credprov/fat: "
            "the registry's token service refused the provider: AccessDenied" in finding["message"]
        ), finding
    # Asked for the images of its registry (registry/repository, as the kubelet asks), never for the other host's.
    assert set(working.runs()) <= {f"{registry.host}/private/credprov/fat", f"{registry.host}/private/credprov/slim"}
    assert working.runs()
    assert set(broken.runs()) == {f"localhost:{registry.port}/private/credprov/fat"}


# -- the webhook -----------------------------------------------------------------------------------------------------


def _dry_run(plane: ControlPlane, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(document), check=False)


def test_the_webhook_denies_an_image_only_the_provider_can_read_and_runs_it_once_per_cache_duration(
    plane: ControlPlane,
    images: PrivateImages,
    providers: Providers,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    ns = "credprov-admit"
    cache = 8.0
    working = providers.entry("webhook.calls", cache_key_type="Registry", cache_duration=f"{cache:g}s")
    replicas = WebhookReplicas(
        kubeconfig=str(install_rbac(plane, BASE, "webhook")),
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=1,  # one cache: every review meets the same provider answers
        timeout_seconds=10,
        extra_args=tuple(providers.flags(providers.config("webhook", working))),
    )
    with replicas:
        register(
            plane,
            webhook_configuration(WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name="credprov"),
        )
        try:
            apply(plane, namespace(ns), image_policy("credprov-enforce", LIMIT, namespaces=[ns], mode="Enforce"))
            # The policy is seen once a probe on an image no provider matches is admitted with slimguard's warning.
            probe = pod("probe", ns, "127.0.0.1:1/never/pushed:1")
            wait_for("the webhook to see the policy", lambda: "slimguard" in _dry_run(plane, probe).stderr, timeout=60)
            assert working.runs() == []

            started = time.monotonic()
            denied = _dry_run(plane, deployment("fat", ns, images.fat.ref))
            assert denied.returncode != 0, denied.stderr
            assert DENIED in denied.stderr
            assert f'container "api": image {images.fat.ref} is ' in denied.stderr
            assert 'ImagePolicy "credprov-enforce" allows 1 MiB' in denied.stderr
            assert working.runs() == [f"{registry.host}/private/credprov/fat"]

            # Within the cache duration, the registry's answer serves another image of it: no new run.
            admitted = _dry_run(plane, deployment("slim", ns, images.slim.ref))
            assert admitted.returncode == 0, admitted.stderr
            assert time.monotonic() - started < cache, "too slow to show the cache: raise the cache duration"
            assert len(working.runs()) == 1

            # Past it, the next review runs the provider again.
            time.sleep(max(0.0, started + cache + 1 - time.monotonic()))
            again = _dry_run(plane, deployment("slim-again", ns, images.slim.ref))
            assert again.returncode == 0, again.stderr
            assert working.runs() == [f"{registry.host}/private/credprov/fat", f"{registry.host}/private/credprov/slim"]
        finally:
            plane.kubectl("delete", "validatingwebhookconfiguration", "credprov", "--ignore-not-found")


# -- slimguard check -------------------------------------------------------------------------------------------------


def slimguard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, output piped."""
    return subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator"), **env},
        check=False,
    )


@pytest.fixture
def check_flags(tmp_path: Path, registry: Registry) -> list[str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "slimguard.dev/v1alpha1",
                "kind": "ImagePolicy",
                "metadata": {"name": "ci-credprov"},
                "spec": {"mode": "Enforce", "rules": LIMIT},
            }
        )
    )
    return ["--policy", str(policy), "--allow-loopback-registries", "--ca-file", str(registry.ca_file), "-f", "json"]


@pytest.fixture
def no_docker_credentials(tmp_path: Path) -> dict[str, str]:
    """An empty Docker config: the CLI's other source of credentials has none for the registry."""
    (tmp_path / "docker").mkdir()
    return {"DOCKER_CONFIG": str(tmp_path / "docker")}


def findings_of(result: subprocess.CompletedProcess[str]) -> dict[str, list[dict[str, Any]]]:
    document = json.loads(result.stdout)
    return {image["image"]: image["findings"] for image in document["images"]}


def test_check_reads_images_only_the_provider_can_read_with_one_run_for_the_registry(
    images: PrivateImages, providers: Providers, check_flags: list[str], no_docker_credentials: dict[str, str]
) -> None:
    working = providers.entry("cli.calls", cache_key_type="Registry", cache_duration="1m")
    flags = [*check_flags, *providers.flags(providers.config("cli", working))]
    result = slimguard("check", *flags, images.fat.ref, images.slim.ref, env=no_docker_credentials)
    assert result.returncode == 1, result.stdout + result.stderr
    found = findings_of(result)
    assert [finding["rule"] for finding in found[images.fat.ref]] == ["maxCompressedSize"]
    assert found[images.slim.ref] == []
    assert working.runs() == [f"{images.fat.host}/private/credprov/fat"]  # the slim one: the registry's answer

    # `inspect` reads it the same way.
    inspected = slimguard(
        "inspect", "--allow-loopback-registries", "--ca-file", str(images.registry.ca_file), "-f", "json",
        *providers.flags(providers.config("cli", working)), images.fat.ref, env=no_docker_credentials,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert json.loads(inspected.stdout)["digest"] == images.fat.digest

    # Without the provider the same image cannot be read: an error, exit 2.
    without = slimguard("check", *check_flags, images.fat.ref, env=no_docker_credentials)
    assert without.returncode == 2, without.stdout + without.stderr
    (finding,) = findings_of(without)[images.fat.ref]
    assert finding["reason"] == "RegistryUnauthorized"


def test_check_names_a_failing_provider_and_never_sends_a_credential_to_a_host_its_key_does_not_name(
    images: PrivateImages,
    providers: Providers,
    registry: Registry,
    check_flags: list[str],
    no_docker_credentials: dict[str, str],
) -> None:
    broken = providers.broken("cli-broken.calls")
    result = slimguard(
        "check", *check_flags, *providers.flags(providers.config("cli-broken", broken)), images.fat_via_localhost,
        env=no_docker_credentials,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    (finding,) = findings_of(result)[images.fat_via_localhost]
    assert finding["reason"] == "CredentialProviderFailed"
    assert (
        f"could not be inspected: credential provider {BROKEN} exited with status 3 for localhost:{registry.port}/"
        "private/credprov/fat: the registry's token service refused the provider: AccessDenied; registry localhost:"
    ) in finding["message"], finding["message"]

    # A provider handing out credentials the registry refuses: the finding names the provider, not a pull secret.
    wrong = providers.entry(
        "cli-wrong.calls",
        credentials=write_credentials(providers.workdir / "wrong.json", registry.username, "not-the-password"),
    )
    result = slimguard(
        "check", *check_flags, *providers.flags(providers.config("cli-wrong", wrong)), images.fat.ref,
        env=no_docker_credentials,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    (finding,) = findings_of(result)[images.fat.ref]
    assert finding["reason"] == "RegistryUnauthorized"
    assert (
        f"with the credentials for {registry.host}/private/credprov/fat from credential provider {PROVIDER}"
        in (finding["message"])
    )
    assert (
        f"check that the identity slimguard's Pods run credential provider {PROVIDER} with may read it"
        in (finding["message"])
    )

    # A provider answering for another host: the registry of the image gets no credential, not even at its token
    # service, and refuses the read.
    elsewhere = providers.entry("cli-elsewhere.calls", auth_key=f"127.0.0.2:{registry.port}")
    issuer = registry.token_issuer
    assert issuer is not None
    before = len(issuer.requests)
    result = slimguard(
        "check", *check_flags, *providers.flags(providers.config("cli-elsewhere", elsewhere)), images.fat.ref,
        env=no_docker_credentials,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    (finding,) = findings_of(result)[images.fat.ref]
    assert finding["reason"] == "RegistryUnauthorized"
    assert "without credentials" in finding["message"]
    assert elsewhere.runs() == [f"{registry.host}/private/credprov/fat"]
    assert [request.user for request in issuer.requests[before:]] == [None] * (len(issuer.requests) - before)


def test_a_malformed_configuration_stops_check_at_once_naming_the_item(
    providers: Providers, check_flags: list[str], no_docker_credentials: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n"
        f"  - {{name: {PROVIDER}, matchImages: ['127.0.0.1:*'], defaultCacheDuration: 1m,"
        " apiVersion: credentialprovider.kubelet.k8s.io/v1}\n"
    )
    result = slimguard("check", *check_flags, *providers.flags(config), "127.0.0.1:1/x:1", env=no_docker_credentials)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"slimguard: error: {config}: providers[0] ({PROVIDER}).matchImages: '127.0.0.1:*': the port '*' is not a "
        "number (globs are for host labels only)"
    )
