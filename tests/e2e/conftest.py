"""Session fixtures for the end-to-end tests: the real test bed, started once, torn down at the end.

Everything is lazy: a part starts only when a test asks for it, so `pytest tests/unit` starts nothing.
A missing binary makes the fixture (and so the test) fail; nothing here skips.
"""

from __future__ import annotations

import functools
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Autouse: a test that uses a shared part which has died fails at once, naming it (no cascade of timeouts).
from shared_parts import fail_fast_when_a_shared_part_died  # noqa: F401

from slimguard.controller.settings import ControllerSettings
from slimguard.registry.guard import AddressPolicy
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import (
    CertificateAuthority,
    ControlPlane,
    DockerEngine,
    Registry,
    anchors,
    free_port,
    k8s_binaries,
    node_binaries,
)
from slimguard_testbed.images import warm_fixture_cache
from slimguard_testbed.images.engine_warm import EngineNeeds, warm_docker_engine
from slimguard_testbed.images.self_image import build_self_image
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.prometheus import prometheus_with_kubernetes_sd
from slimguard_testbed.registry import Auth
from slimguard_testbed.warmup import Warmup, run_build_script

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item, not only those under tests/e2e: filter by path.
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Prepare, before any test's clock starts, everything slow only the first time on a machine that the
    collected tests use: seconds when warm, up to ~40 minutes on a fresh machine, one progress line per part.
    A part that fails here is reported again, in full, by the fixture that needs it."""
    if session.config.option.collectonly:
        return
    names = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    warmup = Warmup(reporter.write_line if reporter is not None else lambda line: print(line, file=sys.stderr))
    if names & {"control_plane", "real_node"}:
        warmup.step("Kubernetes binaries", "~10 min", k8s_binaries)
    if "real_node" in names:
        warmup.step("Kubernetes node binaries (kubelet, kube-scheduler, kube-proxy, pause)", "~1 min", node_binaries)
        warmup.step("Prometheus with Kubernetes service discovery", "~17 min", prometheus_with_kubernetes_sd)
    for fixture, what, cold, script, args in GO_TOOLS:
        if fixture in names:
            warmup.step(what, cold, functools.partial(run_build_script, script, *args))
    if "dive" in names:
        warmup.step("dive", "~3 min", anchors.dive_binary)
    if "syft" in names:
        warmup.step("syft", "~6 min", anchors.syft_binary)
    if names & {"distributions", "cli_install", "operator_install"}:
        warmup.step("slimguard's sdist and wheel (python -m build)", "~30 s", _distributions)
    if "cli_install" in names:  # the dependencies come from PyPI the first time
        warmup.step("pip install slimguard (the CLI alone)", "~1 min", functools.partial(_installed, ()))
    if "operator_install" in names:
        warmup.step("pip install 'slimguard[operator]'", "~2 min", functools.partial(_installed, OPERATOR_EXTRA))
    if not names & {"fixture_images", "released"}:
        return
    artifacts = warmup.step("fixture images", "~3 min", warm_fixture_cache)
    engine_needs = EngineNeeds(
        fat_bases="built" in names,
        busybox="built" in names,
        content_shapes="content_shapes" in names,
        # test_release's `make release` builds the same Dockerfile: its pip steps come from this build's cache.
        self_image="self_image" in names or "released" in names,
        cli_fat_build="built" in names,
    )
    if artifacts is not None and engine_needs.any():
        warmup.step(
            "Docker engine images",
            "~8 min",
            lambda: warm_docker_engine(artifacts, engine_needs, say=lambda line: warmup.write(f"  {line}")),
        )


# The Go programs some tests run, built from their modules into the cache by scripts/ (bootstrap builds them
# too): (fixture that runs it, what, time when cold, script, its arguments).
ACTIONLINT = ("github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12")  # scripts/bootstrap.sh builds the same
GO_TOOLS = (
    ("helm", "helm", "~4 min", "build-helm.sh", ()),
    ("dashboard_validator", "Grafana dashboard validator", "~2 min", "build-dashboard-validator.sh", ()),
    ("paging_registry", "distribution v3 registry", "~3 min", "build-registry-v3.sh", ()),
    ("actionlint", "actionlint", "~1 min", "build-go-tool.sh", ("actionlint", *ACTIONLINT)),
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@pytest.fixture(scope="session")
def testbed_ca() -> CertificateAuthority:
    """One CA for the session: the apiserver, the registries and the token issuer all chain to it."""
    return CertificateAuthority("slimguard e2e CA")


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[ControlPlane]:
    # Writes audited: tests count who wrote what to a workload (slimguard's PATCHes, the ReplicaSets' copies).
    with ControlPlane(workdir=tmp_path_factory.mktemp("control-plane"), ca=testbed_ca, audit_writes=True) as plane:
        yield plane


@pytest.fixture(scope="session")
def registry_credentials() -> Credentials:
    """The push credentials, the same for every registry of the session."""
    return Credentials("slimguard", secrets.token_urlsafe(12))


@pytest.fixture(scope="session")
def registry_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage directory shared by `registry` and `basic_registry`: push once, read through both."""
    return tmp_path_factory.mktemp("registry-storage")


def _shared_storage_registry(
    auth: Auth, tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority, storage: Path, user: Credentials
) -> Registry:
    return Registry(
        storage_dir=storage,
        ca=ca,
        auth=auth,
        workdir=tmp_path_factory.mktemp(f"registry-{auth}"),
        username=user.username,
        password=user.password,
    )


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory,
    testbed_ca: CertificateAuthority,
    registry_storage: Path,
    registry_credentials: Credentials,
) -> Iterator[Registry]:
    """TLS + bearer tokens: anonymous pulls under public/, base/ and shop/; pushes need credentials."""
    with _shared_storage_registry(
        "token", tmp_path_factory, testbed_ca, registry_storage, registry_credentials
    ) as started:
        yield started


@pytest.fixture(scope="session")
def basic_registry(
    tmp_path_factory: pytest.TempPathFactory,
    testbed_ca: CertificateAuthority,
    registry_storage: Path,
    registry_credentials: Credentials,
) -> Iterator[Registry]:
    """TLS + htpasswd (Basic) over the same storage as `registry`."""
    with _shared_storage_registry(
        "htpasswd", tmp_path_factory, testbed_ca, registry_storage, registry_credentials
    ) as started:
        yield started


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """dockerd with its data root in ~/.cache/slimguard/docker: images built once survive between runs."""
    with DockerEngine() as engine:
        yield engine


# --- the operator under test ------------------------------------------------------------------------------
# It runs with a ServiceAccount token bound to the ClusterRole the install ships (deploy/), never as admin.

REPO = E2E_DIR.parents[1]


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> None:
    install_crds(control_plane)


@pytest.fixture(scope="session")
def policy_report_crds(control_plane: ControlPlane) -> None:
    """Kyverno's PolicyReport CRDs (tests/e2e/crds), so the controller under test writes its reports."""
    for crd in POLICY_REPORT_CRDS:
        control_plane.kubectl("apply", "--server-side", "-f", str(crd))
    control_plane.wait_established("policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io")


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane, crds_installed: None) -> str:
    from slimguard_testbed.install import install_controller_rbac

    return str(install_controller_rbac(control_plane, REPO / "deploy" / "kustomize" / "base"))


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, operator_kubeconfig: str, registry: Registry, policy_report_crds: None
) -> Iterator[InProcessOperator]:
    settings = ControllerSettings(
        kubeconfig=operator_kubeconfig,
        registry=RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), ca_files=(str(registry.ca_file),)),
        audit_interval_seconds=600,
        # /metrics on loopback, with the opt-in per-image series: test_observability scrapes it with Prometheus.
        metrics_port=free_port(),
        metrics_address="127.0.0.1",
        image_metrics=20,
    )
    with InProcessOperator(settings) as running:
        yield running


# --- fixture images (slimguard_testbed/images/) --------------------------------------------------------------
# Built once per machine into ~/.cache/slimguard/images (~2 min cold); a session only pushes them (~6 s into
# an empty registry, ~1 s when its storage already has them).

from slimguard_testbed.images import (  # noqa: E402
    FixtureImage,
    FixtureImages,
    publish_fixture_images,
    push_image,
)
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration  # noqa: E402


@pytest.fixture(scope="session")
def fixture_images(registry: Registry, request: pytest.FixtureRequest) -> FixtureImages:
    """Every fixture image pushed to `registry`; dockerd is started only if the slim app is not cached."""
    return publish_fixture_images(registry.endpoint, lambda: request.getfixturevalue("docker_engine"))


@pytest.fixture(scope="session")
def scale_images(registry: Registry) -> list[FixtureImage]:
    """Five small images no other test uses, so their registry requests can be counted alone."""
    return [
        push_image(registry.endpoint, f"shop/scale-{n}", "1.0", [{f"/app/{n}.txt": f"image {n}".encode() * 100}])
        for n in range(5)
    ]


# --- the webhook under test ----------------------------------------------------------------------------------

from cluster import POLICY_REPORT_CRDS, WEBHOOK_TEMPLATE, install_crds  # noqa: E402


@pytest.fixture(scope="session")
def webhook_kubeconfig(control_plane: ControlPlane, crds_installed: None) -> str:
    from slimguard_testbed.install import install_rbac

    return str(install_rbac(control_plane, REPO / "deploy" / "kustomize" / "base", "webhook"))


@pytest.fixture(scope="module")
def webhook(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebhookReplicas]:
    """Two `slimguard webhook` processes on one port, registered as the install registers them (failurePolicy
    Ignore); tests that need Fail re-register."""
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path_factory.mktemp("webhook"),
    )
    with replicas:
        register(
            control_plane,
            webhook_configuration(WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name="slimguard-e2e"),
        )
        yield replicas
        control_plane.kubectl("delete", "validatingwebhookconfiguration", "slimguard-e2e", "--ignore-not-found")


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """actionlint (its Go module, built once into the cache by scripts/build-go-tool.sh): it checks
    .github/workflows/, running shellcheck (a Debian package bootstrap installs) over their run: scripts."""
    return Path(run_build_script("build-go-tool.sh", "actionlint", *ACTIONLINT))


@pytest.fixture(scope="session")
def self_image(
    docker_engine: DockerEngine, fixture_images: FixtureImages, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """slimguard's own image, built for real by the engine from the repository's Dockerfile; the collection-time
    warm-up built it once already, so unchanged steps come from the engine's build cache."""
    client = docker_engine.client(timeout=1200)
    try:
        # The fat bases as the session's registry serves them; their layers are in the engine since the warm-up.
        node_base = client.images.pull(fixture_images.node_base.ref).id
        debian_fat = client.images.pull(fixture_images.debian_fat.ref).id
        return build_self_image(
            client,
            repo_root=E2E_DIR.parents[1],
            node_base=node_base,
            debian_fat=debian_fat,
            workdir=tmp_path_factory.mktemp("self-image"),
        )
    finally:
        client.close()


@pytest.fixture(scope="session")
def helm() -> str:
    """helm v3.22.0 from the cache (built by scripts/build-helm.sh, which `make test` runs first) or PATH;
    missing, the tests fail: they never skip."""
    result = subprocess.run(
        ["bash", str(E2E_DIR.parents[1] / "scripts" / "build-helm.sh")], capture_output=True, text=True, check=False
    )
    path = result.stdout.strip() or shutil.which("helm")
    assert path, f"helm is not available and could not be built:\n{result.stderr[-2000:]}"
    return path


# --- layer contents (issue 11): the anchors (dive, syft) and the fixtures they are compared on -------------
# dive and syft are built from their Go modules once per machine (scripts/build-go-tool.sh, ~3 and ~6 min cold;
# `make test` builds them first); the fixtures are pushed only when a test asks for them.

from slimguard_testbed.images.content import (  # noqa: E402
    HostileImages,
    publish_fleet_base,
    publish_hostile_images,
    publish_wasted_bytes,
    push_fleet,
)


@pytest.fixture(scope="session")
def dive() -> Path:
    """dive v0.13.1 from the cache (built if missing); missing and unbuildable, the tests fail, never skip."""
    return anchors.dive_binary()


@pytest.fixture(scope="session")
def syft() -> Path:
    """syft v1.57.1 from the cache (built if missing)."""
    return anchors.syft_binary()


@pytest.fixture(scope="session")
def open_registry(
    tmp_path_factory: pytest.TempPathFactory,
    testbed_ca: CertificateAuthority,
    registry_storage: Path,
    registry_credentials: Credentials,
) -> Iterator[Registry]:
    """TLS, no auth, over the same storage as `registry`: what syft reads with `registry:`. Its registry library
    (go-containerregistry) refuses a token realm on a loopback IP ("private or link-local address")."""
    with _shared_storage_registry(
        None, tmp_path_factory, testbed_ca, registry_storage, registry_credentials
    ) as started:
        yield started


@pytest.fixture(scope="session")
def wasted_image(registry: Registry, fixture_images: FixtureImages) -> FixtureImage:
    """shop/wasted:1.0: 50 MiB added then deleted, a file changed in two layers, a directory deleted."""
    return publish_wasted_bytes(registry.endpoint, fixture_images)


@pytest.fixture(scope="session")
def hostile_images(registry: Registry, registry_storage: Path, fixture_images: FixtureImages) -> HostileImages:
    """shop/hostile-*:1.0: a gzip bomb, ../ and absolute entries, a truncated gzip, bytes swapped in storage."""
    return publish_hostile_images(registry.endpoint, registry_storage, fixture_images)


@pytest.fixture(scope="session")
def fleet_base(registry: Registry, fixture_images: FixtureImages) -> FixtureImage:
    """base/fleet-debian:bookworm: the fat Debian image under a layer blob no other test reads."""
    return publish_fleet_base(registry.endpoint, fixture_images.debian_fat)


@pytest.fixture(scope="session")
def fleet_images(registry: Registry, fleet_base: FixtureImage) -> tuple[FixtureImage, ...]:
    """shop/fleet-000..099:1.0: the fleet base (mounted, never uploaded again) plus a tiny layer each."""
    return push_fleet(registry.endpoint, fleet_base, count=100)


# --- slimguard as `pip install` gives it (issue 23) -----------------------------------------------------------
# The sdist and the wheel built once per session from this checkout, the wheel installed into fresh venvs: the
# CLI alone and with [operator]. The dependencies come from PyPI once per machine; pytest_collection_finish
# builds and installs before any test's timeout starts.

import tempfile  # noqa: E402

from slimguard_testbed.package import Distributions, InstalledPackage, build_distributions, install_wheel  # noqa: E402

OPERATOR_EXTRA = ("operator",)


@functools.cache
def _package_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="slimguard-package-"))


@functools.cache
def _distributions() -> Distributions:
    return build_distributions(REPO, _package_workdir() / "dist")


@functools.cache
def _installed(extras: tuple[str, ...]) -> InstalledPackage:
    venv = _package_workdir() / ("venv-" + ("-".join(extras) or "cli"))
    return install_wheel(_distributions().wheel, venv, extras=extras)


@pytest.fixture(scope="session")
def package_workdir() -> Iterator[Path]:
    yield _package_workdir()
    shutil.rmtree(_package_workdir(), ignore_errors=True)


@pytest.fixture(scope="session")
def distributions(package_workdir: Path) -> Distributions:
    """`python -m build` of this checkout: the sdist and the wheel built from it."""
    return _distributions()


@pytest.fixture(scope="session")
def cli_install(package_workdir: Path) -> InstalledPackage:
    """`pip install slimguard`: the wheel alone, as a CI job installs it."""
    return _installed(())


@pytest.fixture(scope="session")
def operator_install(package_workdir: Path) -> InstalledPackage:
    """`pip install 'slimguard[operator]'`: the controller and the webhook too."""
    return _installed(OPERATOR_EXTRA)
