"""slimguard's own image passes slimguard: the repository's Dockerfile built by the suite's Docker engine, then
`slimguard check --docker` against policies/slimguard-self.yaml, `slimguard lint` and hadolint.

The bases cannot be pulled here: BUILDER and RUNTIME are the test bed's stand-ins (slimguard_testbed/images/
self_image.py), and the Dockerfile's pip installs from a wheel index on 127.0.0.1 (PIP_INDEX_URL). The
fat-base names the self policy knows (debian:12-slim, debian:bookworm, node:20-bookworm, python:3.11-bookworm)
are tagged in the engine on stand-ins too, so base detection compares layers without leaving the machine.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimguard import __version__
from slimguard_testbed import DockerEngine
from slimguard_testbed.images.self_image import RUNTIME_TAG

# The session's `self_image` builds slimguard's own image with the Docker engine (a pip install from a local index):
# minutes, not the 60 s a test gets by default. A deadline against hangs, never a speed claim.
pytestmark = pytest.mark.timeout(1800)

REPO = Path(__file__).resolve().parents[2]
SELF_POLICY = REPO / "policies" / "slimguard-self.yaml"


def slimguard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator"), **env},
        check=False,
    )


def test_the_built_image_runs_slimguard(docker_engine: DockerEngine, self_image: str) -> None:
    client = docker_engine.client()
    output = client.containers.run(self_image, ["version"], network_mode="none", remove=True)
    client.close()
    assert output.decode().strip()
    assert output.decode() == f"{__version__}\n"


def test_the_image_carries_slimguards_license(docker_engine: DockerEngine, self_image: str) -> None:
    read = (
        "from importlib.metadata import distribution; package = distribution('slimguard'); "
        "print(package.metadata['License-Expression']); print(package.read_text('licenses/LICENSE'))"
    )
    client = docker_engine.client()
    output = client.containers.run(
        self_image, ["-c", read], entrypoint=["/venv/bin/python"], network_mode="none", remove=True
    )
    client.close()
    assert output.decode() == "Apache-2.0\n" + (REPO / "LICENSE").read_text() + "\n"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_the_image_carries_its_oci_labels(docker_engine: DockerEngine, self_image: str) -> None:
    """The labels `make release` sets, from the one version, the commit and its time (scripts/release.py
    image-args, which the test bed's build takes too); the base as the build was given it."""
    client = docker_engine.client()
    labels = client.images.get(self_image).labels
    client.close()
    commit = _git("rev-parse", "HEAD")
    committed = int(os.environ.get("SOURCE_DATE_EPOCH") or _git("log", "-1", "--format=%ct"))
    oci = {key.removeprefix("org.opencontainers.image."): value for key, value in labels.items()}
    assert oci.pop("revision") in (commit, f"{commit}-dirty")  # -dirty: built from a working tree that differs
    assert oci == {
        "title": "slimguard",
        "description": "Keeps container images slim: a Kubernetes operator, admission webhook and CLI.",
        "source": "https://github.com/slimguard/slimguard",
        "url": "https://github.com/slimguard/slimguard",
        "documentation": "https://github.com/slimguard/slimguard#readme",
        "vendor": "The slimguard authors",
        "licenses": "Apache-2.0",
        "version": __version__,
        "created": datetime.datetime.fromtimestamp(committed, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "base.name": RUNTIME_TAG,  # as the build argument named it; `make release` names the pulled base
        "base.digest": "",  # only a pulled base has one (make release: tests/e2e/test_release.py)
    }


def test_slimguards_own_image_passes_its_own_policy(
    docker_engine: DockerEngine, self_image: str, tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text("{}")
    env = {"DOCKER_HOST": docker_engine.base_url, "DOCKER_CONFIG": str(tmp_path)}
    result = slimguard(
        "check", "--docker", "--measure-compressed", self_image, "--policy", str(SELF_POLICY), "--format", "json",
        "--registry", "127.0.0.1:*",  # nothing beyond the machine: every base the policy names is in the engine
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (image,) = json.loads(result.stdout)["images"]
    assert image["status"] == "compliant"
    assert image["policies"] == ["slimguard-self"]
    assert image["uncheckedPlatforms"] == ["linux/arm64"]  # the engine holds the amd64 build only

    inspected = slimguard(
        "inspect", "--docker", "--measure-compressed", self_image, "--format", "json", "--registry", "127.0.0.1:*",
        env=env,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    (platform,) = json.loads(inspected.stdout)["platforms"]
    assert platform["user"] == "65532:65532"
    print(f"self image: {platform['compressedSize']} bytes compressed, {platform['uncompressedSize']} uncompressed")


def test_the_dockerfile_passes_slimguard_lint_and_hadolint() -> None:
    lint = slimguard("lint", str(REPO / "Dockerfile"), "--format", "json", env={})
    assert lint.returncode == 0, lint.stdout + lint.stderr
    levels = {finding["level"] for finding in json.loads(lint.stdout)["files"][0]["findings"]}
    assert "error" not in levels
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
