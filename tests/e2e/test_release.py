"""The release as a user meets it (issue 23): `make release` against the test bed's registry, then `helm install` of
the chart it pushed, from that registry, into the real control plane; and the workflow that runs the same target
on a tag, checked by actionlint.

`make release REGISTRY=127.0.0.1:PORT/slimguard` runs scripts/release.py: the sdist and wheel, the image built by
the suite's Docker engine (the Dockerfile's bases are the test bed's stand-ins, its pip installs from a wheel index
on 127.0.0.1, as in test_self_image.py) with its OCI labels, pushed after a `docker login` to the token-auth
registry; its SBOM by syft; the chart pushed with `helm push` (TLS checked against the registry's CA). The runtime
base is pushed to the registry first, so the release pulls it and names it by digest, as it does
gcr.io/distroless/python3-debian12 for real. `pip install` of the wheel is test_package.py's; the image against
slimguard's own policy is test_self_image.py's.

The control plane has no kubelet: the installed Deployments make ReplicaSets and Pods that stay Pending, which is
as far as this tier goes; `helm test` runs the hook's script against a real webhook in test_chart.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from slimguard import __version__
from slimguard_testbed import ControlPlane, DockerEngine, Registry
from slimguard_testbed.images.self_image import (
    BUILDER_TAG,
    RUNTIME_TAG,
    import_python_bases,
    package_index,
    wheelhouse,
)

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
RELEASE_NAMESPACE = "slimguard-published"
RELEASE_NAME = "published"  # not "slimguard": the session's other tests own ClusterRoles of that name

# Building the image (its pip steps come from the engine's cache, warmed at collection), pushing it, syft and helm:
# minutes on a busy 2-core machine. A deadline against hangs, not a speed claim.
pytestmark = pytest.mark.timeout(1800)


def _release_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("slimguard_release", REPO / "scripts" / "release.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


release = _release_module()


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


# -- the workflow ------------------------------------------------------------------------------------------


def _actionlint(actionlint: Path, workflow: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(actionlint), "-verbose", "-no-color", str(workflow)], capture_output=True, text=True, check=False
    )


def test_the_release_workflow_passes_actionlint_with_shellcheck(actionlint: Path) -> None:
    result = _actionlint(actionlint, WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "release.yml" in result.stderr
    assert 'Rule "shellcheck" was disabled' not in result.stderr  # the run: scripts are checked too


def test_actionlint_finds_what_is_wrong_in_a_broken_copy(actionlint: Path, tmp_path: Path) -> None:
    broken = WORKFLOW.read_text()
    broken = broken.replace("${{ secrets.GITHUB_TOKEN }}", "${{ secret.GITHUB_TOKEN }}")  # no such context
    broken = broken.replace('if [[ "$GITHUB_REF_NAME" == *-* ]]', "if [ $GITHUB_REF_NAME == *-* ]")  # unquoted
    copy = tmp_path / ".github" / "workflows" / "release.yml"
    copy.parent.mkdir(parents=True)
    copy.write_text(broken)
    result = _actionlint(actionlint, copy)
    assert result.returncode == 1
    assert 'undefined variable "secret"' in result.stdout, result.stdout
    assert "shellcheck reported issue" in result.stdout, result.stdout


def test_the_workflow_releases_with_make_release_and_publishes_by_trusted_publishing() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+*"]  # YAML 1.1 reads `on` as True
    jobs = workflow["jobs"]
    assert [step.get("run") for step in jobs["test"]["steps"]][-1] == ".ci/run"
    assert jobs["release"]["needs"] == "test"
    (make,) = [step["run"] for step in jobs["release"]["steps"] if "make release" in step.get("run", "")]
    assert 'REGISTRY="ghcr.io/${owner}"' in make
    assert "RELEASE_FLAGS=--tagged" in make
    assert jobs["release"]["permissions"] == {"contents": "read", "packages": "write"}
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}  # trusted publishing: no token stored
    assert jobs["pypi"]["environment"]["name"] == "pypi"
    assert [s["uses"] for s in jobs["pypi"]["steps"] if "uses" in s][-1] == "pypa/gh-action-pypi-publish@release/v1"
    (create,) = [step["run"] for step in jobs["github-release"]["steps"] if "run" in step]
    assert "--notes-file dist/release/RELEASE_NOTES.md" in create
    assert workflow["permissions"] == {"contents": "read"}


# -- scripts/release.py on its own ------------------------------------------------------------------------


def test_the_release_notes_are_the_changelog_section_of_the_version() -> None:
    notes = release.release_notes(__version__, (REPO / "CHANGELOG.md").read_text())
    assert notes.heading.startswith(f"## [{__version__}]")
    assert notes.body.startswith("### Added")
    assert "## " not in notes.body.replace("### ", "")  # one section, not the next one
    changes = notes.changes()
    assert changes
    assert {change["kind"] for change in changes} <= set(release.CHANGE_KINDS.values())
    assert all("\n" not in change["description"] for change in changes)
    undated = release.release_notes("9.9.9", "## [9.9.9] - not yet released\n### Fixed\n- a thing\n  more\n")
    assert not undated.dated
    assert undated.changes() == [{"kind": "fixed", "description": "a thing more"}]
    assert release.release_notes("9.9.9", "## [9.9.9] - 2027-01-15\n### Added\n- x\n").dated
    with pytest.raises(release.ReleaseError, match=r"no section '## \[9.9.8\]'"):
        release.release_notes("9.9.8", "## [9.9.9] - 2027-01-15\n")


def test_a_version_that_disagrees_stops_the_release_before_anything_is_built(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "release.py"), "--version", "9.9.9", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"release: error: VERSION=9.9.9, but slimguard.__version__ is {__version__}: one version, one place\n"
    )
    assert list(tmp_path.iterdir()) == []
    chart = tmp_path / "chart"
    shutil.copytree(REPO / "deploy" / "helm" / "slimguard", chart)
    chart_yaml = chart / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace(f'appVersion: "{__version__}"', 'appVersion: "0.0.9"'))
    with pytest.raises(release.ReleaseError, match=r"Chart\.yaml appVersion is '0\.0\.9'"):
        release.check_versions(__version__, chart=chart)
    release.check_versions(__version__)  # the repository's own agree

    # --tagged (the workflow's): this checkout is not a tagged, clean commit with a dated section, so it stops.
    tagged = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "release.py"), "--tagged", "--no-push", "--out", str(tmp_path / "t")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tagged.returncode == 2, tagged.stderr
    assert tagged.stderr.startswith("release: error: "), tagged.stderr
    assert any(why in tagged.stderr for why in ("differs from HEAD", "is not tagged", "has no date")), tagged.stderr
    assert not (tmp_path / "t").exists()


def test_the_sdist_and_the_wheel_are_reproducible(tmp_path: Path) -> None:
    """Two builds of the same tree, a few seconds apart, are the same bytes (SOURCE_DATE_EPOCH: the commit's)."""
    sums = []
    for out in ("first", "second"):
        result = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "release.py"), "dist", "--no-build-isolation",
             "--out", str(tmp_path / out)],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        sums.append([line.split()[0] for line in result.stdout.splitlines()])
        time.sleep(1.1)  # a second later: any time written from the clock would differ
    assert len(sums[0]) == 2
    assert sums[0] == sums[1]
    print(f"sdist sha256 {sums[0][0]}, wheel sha256 {sums[0][1]}")


def test_the_chart_archive_is_reproducible_and_names_the_image_by_digest(
    helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELM", helm)
    source = release.Source(revision="0" * 40, epoch=1767225600)  # 2026-01-01
    notes = release.release_notes(__version__, (REPO / "CHANGELOG.md").read_text())
    image = release.PushedImage(
        reference=f"registry.example/ns/slimguard:{__version__}", digest="sha256:" + "ab" * 32, labels={}, base=""
    )
    archives = []
    for out in ("first", "second"):
        options = release.Options(registry="registry.example/ns", version=__version__, out=tmp_path / out, push=False)
        options.out.mkdir()
        archives.append(release.package_and_push_chart(options, source, notes, image).archive)
        time.sleep(1.1)
    first, second = (archive.read_bytes() for archive in archives)
    assert first == second
    assert archives[0].stat().st_mtime == source.epoch  # what helm push takes for the created annotation
    with tarfile.open(archives[0]) as chart:
        assert {member.mtime for member in chart.getmembers()} == {source.epoch}
        values = yaml.safe_load(chart.extractfile("slimguard/values.yaml").read())  # type: ignore[union-attr]
        meta = yaml.safe_load(chart.extractfile("slimguard/Chart.yaml").read())  # type: ignore[union-attr]
        names = chart.getnames()
    assert values["image"] == {
        "repository": "registry.example/ns/slimguard", "tag": "", "digest": image.digest, "pullPolicy": "IfNotPresent"
    }  # fmt: skip
    assert yaml.safe_load(meta["annotations"]["artifacthub.io/images"]) == [
        {"name": "slimguard", "image": f"registry.example/ns/slimguard:{__version__}"}
    ]
    assert yaml.safe_load(meta["annotations"]["artifacthub.io/changes"]) == notes.changes()
    shipped = {"slimguard/values.schema.json", "slimguard/README.md", "slimguard/templates/tests/webhook-test.yaml"}
    assert shipped <= set(names)
    print(f"chart archive sha256 {hashlib.sha256(first).hexdigest()} ({len(first)} bytes)")


# -- make release against the test bed's registry, then helm install from it --------------------------------


@dataclass(frozen=True)
class Released:
    registry: str  # REGISTRY: 127.0.0.1:PORT/slimguard
    summary: dict[str, Any]  # release.json
    out: Path
    runtime: str  # the runtime base, as pushed and pulled
    runtime_digest: str
    env: dict[str, str]  # DOCKER_CONFIG (the login), DOCKER_HOST, helm's homes
    ca_file: Path
    seconds: float


def _run(argv: list[str], env: dict[str, str], *, stdin: str | None = None, timeout: float = 300) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(argv[:3])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def released(
    docker_engine: DockerEngine,
    registry: Registry,
    helm: str,
    syft: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Released]:
    work = tmp_path_factory.mktemp("release")
    home = work / "home"
    (home / "docker").mkdir(parents=True)
    env = {
        **os.environ,
        "DOCKER_HOST": docker_engine.base_url,
        "DOCKER_CONFIG": str(home / "docker"),  # the login below, and nothing of this machine's user
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_DATA_HOME": str(home / "helm-data"),
        "HELM": helm,
        "SYFT": str(syft),
    }
    env.pop("SOURCE_DATE_EPOCH", None)
    # As the workflow's docker/login-action does; helm push and pull read the same credentials.
    _run(["docker", "login", registry.host, "--username", registry.username, "--password-stdin"], env,
         stdin=registry.password)  # fmt: skip
    client = docker_engine.client(timeout=1200)
    try:
        import_python_bases(client)
        runtime = f"{registry.host}/base/distroless-python3:nonroot"
        client.images.get(RUNTIME_TAG).tag(runtime)
    finally:
        client.close()
    pushed = _run(["docker", "push", runtime], env)
    runtime_digest = pushed.split("digest: ", 1)[1].split()[0]
    _run(["docker", "rmi", runtime], env)  # the release pulls it, as it pulls distroless from gcr.io
    out = work / "dist"
    with package_index(wheelhouse(REPO / "pyproject.toml")) as index:
        flags = [
            "--out", str(out), "--no-build-isolation", "--runtime", runtime, "--network", "host",
            "--build-arg", f"BUILDER={BUILDER_TAG}", "--build-arg", f"PIP_INDEX_URL={index}",
            "--build-arg", "PIP_TRUSTED_HOST=127.0.0.1", "--ca-file", str(registry.ca_file),
        ]  # fmt: skip
        started = time.monotonic()
        # `make release`, with the session's venv and tools (release-tools, the bootstrap, is taken as done).
        result = subprocess.run(
            ["make", "-C", str(REPO), "-o", "release-tools", "release", f"BIN={Path(sys.executable).parent}",
             f"REGISTRY={registry.host}/slimguard", f"RELEASE_FLAGS={' '.join(flags)}"],
            capture_output=True, text=True, env=env, timeout=1500, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
    assert result.returncode == 0, f"make release failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    print(f"make release took {seconds:.0f} s")
    summary = json.loads((out / "release.json").read_text())
    yield Released(
        registry=f"{registry.host}/slimguard",
        summary=summary,
        out=out,
        runtime=runtime,
        runtime_digest=runtime_digest,
        env=env,
        ca_file=registry.ca_file,
        seconds=seconds,
    )
    # The engine is shared between sessions: leave no tag naming this session's registry (the layers stay cached).
    subprocess.run(["docker", "rmi", summary["image"]["reference"], runtime], capture_output=True, env=env, check=False)


def test_make_release_pushes_the_image_and_the_chart_and_says_where(released: Released) -> None:
    summary = released.summary
    assert summary["version"] == __version__
    assert summary["image"]["reference"] == f"{released.registry}/slimguard:{__version__}"
    assert summary["image"]["digest"].startswith("sha256:")
    assert summary["image"]["base"] == f"{released.runtime}@{released.runtime_digest}"
    assert summary["chart"]["reference"] == f"oci://{released.registry}/charts/slimguard:{__version__}"
    assert summary["chart"]["digest"].startswith("sha256:")
    files = {path.name for path in released.out.iterdir()}
    assert files == {
        f"slimguard-{__version__}.tar.gz", f"slimguard-{__version__}-py3-none-any.whl",
        f"slimguard-{__version__}.spdx.json", f"slimguard-{__version__}.tgz",
        "RELEASE_NOTES.md", "release.json", "SHA256SUMS",
    }  # fmt: skip
    for line in (released.out / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((released.out / name).read_bytes()).hexdigest() == digest, name
    notes = release.release_notes(__version__, (REPO / "CHANGELOG.md").read_text())
    assert (released.out / "RELEASE_NOTES.md").read_text() == notes.body + "\n"
    sizes = {name: (released.out / name).stat().st_size for name in sorted(files)}
    print(f"release {__version__} in {released.seconds:.0f} s: image {summary['image']['digest']}, "
          f"chart {summary['chart']['digest']}; files {sizes}")  # fmt: skip


def _inspect(released: Released, image: str, *args: str) -> dict[str, Any]:
    """`slimguard inspect` of what the registry serves, with the release's docker login."""
    output = _run(
        [sys.executable, "-m", "slimguard.cli.main", "inspect", image, "--format", "json",
         "--allow-loopback-registries", "--ca-file", str(released.ca_file), *args],
        {**released.env, "PYTHONPATH": str(REPO / "operator")},
    )  # fmt: skip
    document: dict[str, Any] = json.loads(output)
    return document


def test_the_pushed_image_carries_its_labels_and_names_the_base_it_was_built_on(released: Released) -> None:
    image = f"{released.registry}/slimguard:{__version__}"
    inspected = _inspect(released, image, "--known-base", released.runtime)
    assert inspected["digest"] == released.summary["image"]["digest"]
    (platform,) = inspected["platforms"]
    labels = {k.removeprefix("org.opencontainers.image."): v for k, v in platform["labels"].items()}
    commit = _git("rev-parse", "HEAD")
    assert labels["version"] == __version__
    assert labels["revision"] in (commit, f"{commit}-dirty")
    assert labels["created"] == release.Source(revision=commit, epoch=int(_git("log", "-1", "--format=%ct"))).created
    assert labels["licenses"] == "Apache-2.0"
    assert labels["source"] == "https://github.com/slimguard/slimguard"
    assert (labels["base.name"], labels["base.digest"]) == (released.runtime, released.runtime_digest)
    # slimguard reads the base from the labels and confirms it by the layers the image shares with it.
    (base,) = platform["bases"]
    assert (base["reference"], base["digest"], base["method"]) == (
        released.runtime, released.runtime_digest, "annotation+layers"
    )  # fmt: skip
    assert platform["user"] == "65532:65532"
    print(f"pushed image: {platform['compressedSize']} bytes compressed, {platform['uncompressedSize']} uncompressed")


def test_the_sbom_lists_slimguard_and_its_dependencies_beside_what_slimguard_counts(released: Released) -> None:
    sbom = json.loads((released.out / f"slimguard-{__version__}.spdx.json").read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3"
    assert sbom["creationInfo"]["created"] == released.summary["created"]
    assert "Tool: syft-v1.57.1" in sbom["creationInfo"]["creators"]
    assert sbom["documentNamespace"].endswith(released.summary["image"]["digest"])
    purls = [
        ref["referenceLocator"]
        for package in sbom["packages"]
        for ref in package.get("externalRefs", [])
        if ref["referenceType"] == "purl"
    ]
    assert f"pkg:pypi/slimguard@{__version__}" in purls
    for dependency in ("kopf", "kubernetes", "httpx", "pydantic", "aiohttp"):
        assert any(purl.startswith(f"pkg:pypi/{dependency}@") for purl in purls), dependency
    counts = released.summary["sbom"]["packages"]
    assert counts["pypi"] == sum(purl.startswith("pkg:pypi/") for purl in purls)
    # OS packages as slimguard counts them: entries of a package database. syft also reads Debian's ELF package
    # notes (libsystemd carries one), which its SPDX shows as a deb whose paths are the binaries, not a database.
    databases = ("/var/lib/dpkg/", "/lib/apk/db/", "/var/lib/rpm/", "/usr/lib/sysimage/rpm/")
    os_packages = [
        package
        for package in sbom["packages"]
        if any(
            ref["referenceType"] == "purl" and ref["referenceLocator"].startswith(("pkg:deb/", "pkg:apk/", "pkg:rpm/"))
            for ref in package.get("externalRefs", [])
        )
    ]
    in_databases = [p for p in os_packages if any(db in p.get("sourceInfo", "") for db in databases)]
    inspected = _inspect(released, f"{released.registry}/slimguard:{__version__}", "--content")
    (platform,) = inspected["platforms"]
    # The stand-in runtime has no package database (distroless's real one has /var/lib/dpkg/status.d): both say 0.
    assert platform["content"]["packageCount"] == len(in_databases)
    print(
        f"SBOM: {len(sbom['packages'])} SPDX packages, by purl type {counts}, of which OS packages "
        f"{len(os_packages)} ({len(in_databases)} from a package database, the rest from binaries' package notes); "
        f"slimguard inspect --content: {platform['content']['packageCount']} OS packages"
    )


def _helm(released: Released, *args: str, timeout: float = 300) -> str:
    return _run([released.env["HELM"], *args, "--ca-file", str(released.ca_file)], released.env, timeout=timeout)


def test_the_published_chart_names_this_release(released: Released) -> None:
    chart = f"oci://{released.registry}/charts/slimguard"
    meta = yaml.safe_load(_helm(released, "show", "chart", chart, "--version", __version__))
    assert (meta["version"], meta["appVersion"]) == (__version__, __version__)
    annotations = meta["annotations"]
    assert yaml.safe_load(annotations["artifacthub.io/images"]) == [
        {"name": "slimguard", "image": f"{released.registry}/slimguard:{__version__}"}
    ]
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    assert yaml.safe_load(annotations["artifacthub.io/changes"])
    values = yaml.safe_load(_helm(released, "show", "values", chart, "--version", __version__))
    assert values["image"]["repository"] == f"{released.registry}/slimguard"
    assert values["image"]["digest"] == released.summary["image"]["digest"]


def test_the_chart_rebuilt_from_the_same_commit_pushes_to_the_published_digest(
    released: Released, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproducible in the registry too: the chart packaged again, later, and pushed to another repository has
    the manifest digest the release pushed (helm push dates the manifest by the archive's time)."""
    monkeypatch.setenv("HELM", released.env["HELM"])
    source = release.Source(revision="unused", epoch=int(_git("log", "-1", "--format=%ct")))
    notes = release.release_notes(__version__, (REPO / "CHANGELOG.md").read_text())
    image = release.PushedImage(
        reference=released.summary["image"]["reference"], digest=released.summary["image"]["digest"], labels={}, base=""
    )
    options = release.Options(registry=released.registry, version=__version__, out=tmp_path, push=False)
    archive = release.package_and_push_chart(options, source, notes, image).archive
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == released.summary["files"][archive.name]
    again = f"oci://{released.registry}/again"
    pushed = subprocess.run(
        [released.env["HELM"], "push", str(archive), again, "--ca-file", str(released.ca_file)],
        capture_output=True, text=True, env=released.env, timeout=120, check=False,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert f"Digest: {released.summary['chart']['digest']}" in pushed.stdout + pushed.stderr, pushed.stderr


@pytest.fixture(scope="module")
def installed(
    released: Released, control_plane: ControlPlane, crds_installed: None
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """`helm install` from the registry into the control plane; uninstalled at the end (its webhook configuration
    would otherwise be called, and fail, for every Pod the session's other tests create)."""
    kubeconfig = str(control_plane.admin_kubeconfig)
    chart = f"oci://{released.registry}/charts/slimguard"
    started = time.monotonic()
    _helm(released, "install", RELEASE_NAME, chart, "--version", __version__, "--namespace", RELEASE_NAMESPACE,
          "--create-namespace", "--kubeconfig", kubeconfig)  # fmt: skip
    print(f"helm install from {chart}: {time.monotonic() - started:.1f} s")
    try:
        deadline = time.monotonic() + 60
        while True:  # the controller-manager makes the ReplicaSets, then the Pods (Pending: no kubelet here)
            pods = json.loads(control_plane.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "json").stdout)
            if len(pods["items"]) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(1)
        objects = {
            kind: json.loads(control_plane.kubectl("get", kind, "-n", RELEASE_NAMESPACE, "-o", "json").stdout)["items"]
            for kind in ("deployments", "pods", "services", "serviceaccounts")
        }
        yield objects
    finally:
        _run([released.env["HELM"], "uninstall", RELEASE_NAME, "--namespace", RELEASE_NAMESPACE, "--kubeconfig",
              kubeconfig, "--wait", "--timeout", "120s"], released.env)  # fmt: skip
        control_plane.kubectl("delete", "namespace", RELEASE_NAMESPACE, "--wait=false")


def test_helm_installs_the_published_chart_from_the_registry_with_the_published_image(
    released: Released, installed: dict[str, list[dict[str, Any]]], control_plane: ControlPlane
) -> None:
    published = f"{released.registry}/slimguard@{released.summary['image']['digest']}"
    deployments = {d["metadata"]["name"]: d for d in installed["deployments"]}
    assert set(deployments) == {f"{RELEASE_NAME}-slimguard-controller", f"{RELEASE_NAME}-slimguard-webhook"}
    for deployment in deployments.values():
        containers = deployment["spec"]["template"]["spec"]["containers"]
        assert [container["image"] for container in containers] == [published]
        assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == __version__
    pods = installed["pods"]
    assert len(pods) == 4  # two controller replicas (one leads), two webhook replicas
    assert {container["image"] for pod in pods for container in pod["spec"]["containers"]} == {published}
    assert {pod["status"]["phase"] for pod in pods} == {"Pending"}  # no kubelet in this tier
    assert f"{RELEASE_NAME}-slimguard-webhook" in {s["metadata"]["name"] for s in installed["services"]}
    accounts = {a["metadata"]["name"] for a in installed["serviceaccounts"]}
    assert {f"{RELEASE_NAME}-slimguard-controller", f"{RELEASE_NAME}-slimguard-webhook"} <= accounts
    configuration = json.loads(
        control_plane.kubectl("get", "validatingwebhookconfiguration", f"{RELEASE_NAME}-slimguard", "-o", "json").stdout
    )
    (webhook,) = configuration["webhooks"]
    assert webhook["clientConfig"]["service"]["namespace"] == RELEASE_NAMESPACE
    assert webhook["failurePolicy"] == "Ignore"
    hooks = list(yaml.safe_load_all(_run(
        [released.env["HELM"], "get", "hooks", RELEASE_NAME, "--namespace", RELEASE_NAMESPACE,
         "--kubeconfig", str(control_plane.admin_kubeconfig)], released.env,
    )))  # fmt: skip
    (test_pod,) = [hook for hook in hooks if hook]
    assert [container["image"] for container in test_pod["spec"]["containers"]] == [published]
