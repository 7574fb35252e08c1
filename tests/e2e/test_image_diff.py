"""``slimguard diff`` and the regression gate (``check --baseline``) on images pushed to the test bed's registry.

Two builds of one app on a small base, made with the test bed's OCI helpers, as a pipeline makes them: the second
adds a ``RUN apt-get install``-style layer (a binary and the dpkg status naming its package). Every command runs as
a user runs it, in a subprocess with its output piped; what it says is checked against the registry's own manifests
and access log.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from slimguard.core.facts.image_facts import ImageFacts, Layer, PlatformImage
from slimguard.core.facts.image_report import report_body, report_name
from slimguard.core.model.platform import Platform
from slimguard_testbed import ControlPlane, Registry, workloads
from slimguard_testbed.faults import DelayProxy
from slimguard_testbed.oci import Image, build_image, push
from slimguard_testbed.oci.blobs import layer_from_files
from slimguard_testbed.oci.push_client import IndependentRegistryClient

REPO = Path(__file__).resolve().parents[2]
REPOSITORY = "shop/growing"
INSTALL = "RUN /bin/sh -c apt-get install -y curl # buildkit"
KIB = 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def slimguard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, output piped."""
    return subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator"), **env},
        check=False,
    )


def registry_flags(registry: Registry) -> list[str]:
    return ["--allow-loopback-registries", "--ca-file", str(registry.ca_file)]


@pytest.fixture
def no_docker_config(tmp_path: Path) -> Path:
    """No credentials of the user's: the test bed's registry serves pulls anonymously."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


def noise(seed: str, size: int) -> bytes:
    """Incompressible bytes, the same for the same seed: sizes survive gzip."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def dpkg_status(*packages: str) -> bytes:
    return b"".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n".encode()
        for name in packages
    )


def app_build(base: Image, *, with_curl: bool) -> Image:
    deps = layer_from_files(
        {"/var/lib/dpkg/status": dpkg_status("libc6", "ca-certificates")},
        created_by="RUN /bin/sh -c apt-get install -y ca-certificates # buildkit",
    )
    curl = layer_from_files(
        {
            "/usr/bin/curl": (noise("curl", 512 * KIB), 0o755),
            "/var/lib/dpkg/status": dpkg_status("libc6", "ca-certificates", "curl"),
        },
        created_by=INSTALL,
    )
    app = layer_from_files({"/app/server": (noise("server", 96 * KIB), 0o755)}, created_by="COPY . /app # buildkit")
    return build_image([deps, *([curl] if with_curl else []), app], base=base, user="10001")


@dataclass(frozen=True)
class Builds:
    old: str
    new: str
    rebuild: str
    base: str


BASE_REPOSITORY = "base/growing-base"


def base_image() -> Image:
    """A busybox-sized base: one layer with a shell."""
    return build_image(
        [layer_from_files({"/bin/busybox": (noise("busybox", 256 * KIB), 0o755)}, created_by="ADD rootfs.tar /")]
    )


@pytest.fixture(scope="module")
def builds(registry: Registry, basic_registry: Registry) -> Builds:
    base = base_image()
    push(basic_registry.endpoint, BASE_REPOSITORY, "1", base)
    for tag, artifact in (
        ("1.0", app_build(base, with_curl=False)),
        ("1.1", app_build(base, with_curl=True)),
        ("1.0-rebuild", app_build(base, with_curl=False)),  # the same steps again: the same layers
    ):
        push(basic_registry.endpoint, REPOSITORY, tag, artifact, mount_from=[BASE_REPOSITORY])
    name = f"{registry.host}/{REPOSITORY}"  # the same storage, read through the token registry
    return Builds(f"{name}:1.0", f"{name}:1.1", f"{name}:1.0-rebuild", f"{registry.host}/{BASE_REPOSITORY}:1")


def manifest(basic_registry: Registry, tag: str) -> dict[str, Any]:
    with IndependentRegistryClient(basic_registry.endpoint) as client:
        body, _, _ = client.manifest(REPOSITORY, tag)
    return json.loads(body)  # type: ignore[no-any-return]


def pulled_size(document: dict[str, Any]) -> int:
    return int(document["config"]["size"]) + sum(int(layer["size"]) for layer in document["layers"])


def test_diff_names_the_layer_added_its_instruction_and_size_as_the_registry_has_them(
    builds: Builds, registry: Registry, basic_registry: Registry, no_docker_config: Path
) -> None:
    mark = registry.mark()
    result = slimguard(
        "diff", builds.old, builds.new, "--known-base", builds.base, "-f", "json", *registry_flags(registry),
        env={"DOCKER_CONFIG": str(no_docker_config)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (platform,) = json.loads(result.stdout)["platforms"]
    old, new = manifest(basic_registry, "1.0"), manifest(basic_registry, "1.1")

    assert platform["old"]["compressedSize"] == pulled_size(old)
    assert platform["new"]["compressedSize"] == pulled_size(new)
    assert platform["compressedDelta"] == pulled_size(new) - pulled_size(old)
    changed = [layer for layer in platform["layers"] if layer["status"] != "same"]
    (added,) = changed
    assert (added["status"], added["instruction"]) == ("added", "RUN apt-get install -y curl")
    assert added["newDigest"] == new["layers"][added["newIndex"]]["digest"]
    assert added["sizeDelta"] == new["layers"][added["newIndex"]]["size"]
    assert len(platform["layers"]) == len(new["layers"])
    assert [base["reference"] for base in platform["bases"]["new"]] == [builds.base]
    assert not platform["bases"]["changed"]

    # Manifests and configs only: no layer blob was asked for.
    layer_digests = {layer["digest"] for document in (old, new) for layer in document["layers"]}
    blob_reads = [r.path.rsplit("/", 1)[-1] for r in registry.requests(mark) if r.kind == "blobs"]
    assert blob_reads, "the configs are read"
    assert not layer_digests & set(blob_reads)


def test_diff_with_content_names_the_package_added_and_the_tool_that_appeared(
    builds: Builds, registry: Registry, no_docker_config: Path
) -> None:
    result = slimguard(
        "diff", builds.old, builds.new, "--content", "-f", "json", *registry_flags(registry),
        env={"DOCKER_CONFIG": str(no_docker_config)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (platform,) = json.loads(result.stdout)["platforms"]
    assert platform["content"]["packagesAdded"] == ["curl"]
    assert platform["content"]["packagesRemoved"] == []
    assert any("curl" in tool for tool in platform["content"]["toolsAppeared"])


def gate(tmp_path: Path, allowance: str) -> Path:
    """An Enforce policy allowing ``allowance`` of growth over the baseline."""
    path = tmp_path / f"gate-{allowance}.yaml"
    policy = {"apiVersion": "slimguard.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": "no-bloat"}}
    path.write_text(yaml.safe_dump({**policy, "spec": {"mode": "Enforce", "rules": {"maxGrowthBytes": allowance}}}))
    return path


def test_the_gate_fails_on_growth_naming_the_layer_and_passes_within_the_allowance(
    builds: Builds, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    grown = slimguard("check", builds.new, "-p", str(gate(tmp_path, "100Ki")), "--baseline", builds.old,
                      *registry_flags(registry), env=env)  # fmt: skip
    assert grown.returncode == 1, grown.stdout + grown.stderr
    assert "maxGrowthBytes" in grown.stdout
    assert "Layer responsible: layer" in grown.stdout
    assert "RUN apt-get install -y curl" in grown.stdout

    allowed = slimguard("check", builds.new, "-p", str(gate(tmp_path, "1Mi")), "--baseline", builds.old,
                        *registry_flags(registry), env=env)  # fmt: skip
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr

    rebuilt = slimguard("check", builds.rebuild, "-p", str(gate(tmp_path, "0")), "--baseline", builds.old,
                        *registry_flags(registry), env=env)  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr


def test_the_gate_reads_its_baseline_from_the_report_of_an_earlier_check(
    builds: Builds, registry: Registry, tmp_path: Path, no_docker_config: Path
) -> None:
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    report = tmp_path / "main.json"
    earlier = slimguard("check", builds.old, "-p", str(gate(tmp_path, "1Mi")), "-f", "json", "-o", str(report),
                        *registry_flags(registry), env=env)  # fmt: skip
    assert earlier.returncode == 0, earlier.stdout + earlier.stderr
    grown = slimguard("check", builds.new, "-p", str(gate(tmp_path, "100Ki")), "--baseline", str(report),
                      *registry_flags(registry), env=env)  # fmt: skip
    assert grown.returncode == 1, grown.stdout + grown.stderr
    assert "RUN apt-get install -y curl" in grown.stdout


# --- check --baseline-from-cluster: the test bed's apiserver says what runs -----------------------------------


def old_digest(basic_registry: Registry) -> str:
    with IndependentRegistryClient(basic_registry.endpoint) as client:
        return client.manifest(REPOSITORY, "1.0")[2]


@pytest.fixture(scope="module")
def shop(control_plane: ControlPlane, crds_installed: None) -> str:
    """A namespace of its own; the ImageReport CRD is installed (none names this test's tags)."""
    name = "baseline-from-cluster"
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(workloads.namespace(name)))
    return name


def cluster_flags(control_plane: ControlPlane, namespace: str) -> list[str]:
    return ["--kubeconfig", str(control_plane.admin_kubeconfig), "-n", namespace]


def apply(control_plane: ControlPlane, *documents: dict[str, Any]) -> None:
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def test_the_gate_compares_with_the_digest_a_deployment_pins(
    builds: Builds, registry: Registry, basic_registry: Registry, control_plane: ControlPlane, shop: str,
    tmp_path: Path, no_docker_config: Path,
) -> None:  # fmt: skip
    digest = old_digest(basic_registry)
    pinned = f"{builds.old.rsplit(':', 1)[0]}@{digest}"
    apply(control_plane, workloads.deployment("pinned", shop, pinned, replicas=0, container="web"))
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    flags = [*cluster_flags(control_plane, shop), *registry_flags(registry)]

    grown = slimguard("check", builds.new, "-p", str(gate(tmp_path, "100Ki")),
                      "--baseline-from-cluster", "deployment/pinned", *flags, env=env)  # fmt: skip
    assert grown.returncode == 1, grown.stdout + grown.stderr
    assert "RUN apt-get install -y curl" in grown.stdout
    assert f"container web, runs {pinned} (pinned by digest in its spec)" in grown.stderr

    rebuilt = slimguard("check", builds.rebuild, "-p", str(gate(tmp_path, "0")),
                        "--baseline-from-cluster", "deploy/pinned", *flags, env=env)  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr


def test_the_gate_compares_with_the_digest_the_pods_of_a_tagged_deployment_report(
    builds: Builds, registry: Registry, basic_registry: Registry, control_plane: ControlPlane, shop: str,
    tmp_path: Path, no_docker_config: Path,
) -> None:  # fmt: skip
    """The tag has moved on in the registry since (1.0 → what a pipeline pushed); the Pod's imageID, which the
    kubelet reports (written here as a kubelet writes it, through the status subresource), says what runs."""
    digest = old_digest(basic_registry)
    deployment = workloads.deployment("tagged", shop, builds.old, replicas=0, container="web")
    pod = workloads.pod("tagged-7d4b9-x2x1z", shop, builds.old, container="web")
    pod["metadata"]["labels"] = {"app": "tagged"}
    apply(control_plane, deployment, pod)
    status = {"containerStatuses": [{
        "name": "web", "image": builds.old, "imageID": f"{builds.old.rsplit(':', 1)[0]}@{digest}", "ready": True,
        "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
    }]}  # fmt: skip
    control_plane.kubectl("patch", "pod", pod["metadata"]["name"], "-n", shop, "--subresource=status",
                          "--type=merge", "-p", json.dumps({"status": status}))  # fmt: skip
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    flags = [*cluster_flags(control_plane, shop), *registry_flags(registry)]
    grown = slimguard("check", builds.new, "-p", str(gate(tmp_path, "100Ki")),
                      "--baseline-from-cluster", "deployment/tagged", *flags, env=env)  # fmt: skip
    assert grown.returncode == 1, grown.stdout + grown.stderr
    assert "RUN apt-get install -y curl" in grown.stdout
    assert f"@{digest} (its Pods' imageID)" in grown.stderr


def image_report(digest: str, reference: str) -> dict[str, Any]:
    """The ImageReport the controller writes of a digest it read under ``reference`` (its facts cut to one layer)."""
    platform = PlatformImage(
        platform=Platform("linux", "amd64"),
        manifest_digest=digest,
        config_digest="sha256:" + hashlib.sha256(b"config").hexdigest(),
        config_size=512,
        layers=(Layer(digest="sha256:" + hashlib.sha256(b"layer").hexdigest(), size=KIB, media_type=OCI_LAYER),),
    )
    return report_body(ImageFacts(digest=digest, media_type=OCI_MANIFEST, platforms=(platform,)), [reference])


def test_the_gate_compares_with_the_digest_the_clusters_image_report_names_for_a_tag_no_pod_runs(
    builds: Builds, registry: Registry, basic_registry: Registry, control_plane: ControlPlane, shop: str,
    tmp_path: Path, no_docker_config: Path,
) -> None:  # fmt: skip
    """No Pod of the workload reports a digest (scaled to zero); the controller's ImageReport of the tag does.
    The reports are read in pages, only their digests and references kept."""
    digest = old_digest(basic_registry)
    other = "sha256:" + hashlib.sha256(b"another image").hexdigest()
    apply(control_plane, image_report(digest, builds.old), image_report(other, f"{builds.old}-other"))
    apply(control_plane, workloads.deployment("reported", shop, builds.old, replicas=0, container="web"))
    env = {"DOCKER_CONFIG": str(no_docker_config)}
    flags = [*cluster_flags(control_plane, shop), *registry_flags(registry)]
    try:
        grown = slimguard("check", builds.new, "-p", str(gate(tmp_path, "100Ki")),
                          "--baseline-from-cluster", "deployment/reported", *flags, env=env)  # fmt: skip
    finally:
        for name in (report_name(digest), report_name(other)):
            control_plane.kubectl("delete", "imagereport", name, "--ignore-not-found")
    assert grown.returncode == 1, grown.stdout + grown.stderr
    assert "RUN apt-get install -y curl" in grown.stdout
    assert f"@{digest} (the cluster's ImageReport of its tag)" in grown.stderr


@pytest.mark.parametrize(
    ("workload", "extra", "said"),
    [
        ("deployment/absent", [], "deployment/absent not found in namespace baseline-from-cluster"),
        ("deployment/unpinned", ["--container", "sidecar"], "has no container 'sidecar' (its containers: web)"),
        ("deployment/never-pushed", [], "no digest known for"),
        ("service/web", [], "is not KIND/NAME"),
    ],
)
def test_baseline_from_cluster_says_what_it_could_not_find(
    workload: str, extra: list[str], said: str, builds: Builds, registry: Registry, control_plane: ControlPlane,
    shop: str, tmp_path: Path, no_docker_config: Path,
) -> None:  # fmt: skip
    # A tag never pushed: no controller running in the session could have written an ImageReport naming it.
    never_pushed = builds.old.replace(":1.0", ":never-pushed")
    apply(
        control_plane,
        workloads.deployment("unpinned", shop, builds.old, replicas=0, container="web"),
        workloads.deployment("never-pushed", shop, never_pushed, replicas=0, container="web"),
    )
    result = slimguard("check", builds.new, "-p", str(gate(tmp_path, "100Ki")), "--baseline-from-cluster",
                       workload, *extra, *cluster_flags(control_plane, shop), *registry_flags(registry),
                       env={"DOCKER_CONFIG": str(no_docker_config)})  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr


# --- --timeout: the whole command, against a registry that is slow to answer --------------------------------


def test_a_timeout_stops_the_command_with_one_line_and_exit_2_leaving_nothing_running(
    builds: Builds, registry: Registry, no_docker_config: Path
) -> None:
    host, port = registry.host.rsplit(":", 1)
    with DelayProxy(upstream=(host, int(port)), delay=30) as slow:
        old, new = (image.replace(registry.host, slow.host) for image in (builds.old, builds.new))
        started = time.monotonic()
        argv = ["diff", old, new, "--timeout", "2s", *registry_flags(registry)]
        process = subprocess.Popen(
            [sys.executable, "-m", "slimguard.cli.main", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO / "operator"), "DOCKER_CONFIG": str(no_docker_config)},
        )  # fmt: skip
        out, err = process.communicate(timeout=60)
        elapsed = time.monotonic() - started
    assert process.returncode == 2, out + err
    assert err == "slimguard: error: --timeout 2s passed before the command finished: stopped, nothing decided\n"
    assert out == ""
    assert elapsed < 15, "ended at the deadline, not after the registry's 30 s"
    assert slow.connections >= 1, "the registry was being asked"
