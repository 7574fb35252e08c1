"""slimguard's own image passes slimguard: the repository's Dockerfile built by the suite's Docker engine, then
`slimguard check --docker` against policies/slimguard-self.yaml, `slimguard lint` and hadolint.

The bases cannot be pulled here: BUILDER and RUNTIME are the test bed's stand-ins (slimguard_testbed/images/
self_image.py), and the Dockerfile's pip installs from a wheel index on 127.0.0.1 (PIP_INDEX_URL). The
fat-base names the self policy knows (debian:12-slim, debian:bookworm, node:20-bookworm, python:3.11-bookworm)
are tagged in the engine on stand-ins too, so base detection compares layers without leaving the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slimguard_testbed import DockerEngine
from slimguard_testbed.images.self_image import import_python_bases, package_index, wheelhouse

# The module's fixture builds slimguard's own image with the Docker engine (a pip install from a local index):
# minutes, not the 60 s a test gets by default. A deadline against hangs, never a speed claim.
pytestmark = pytest.mark.timeout(1800)

REPO = Path(__file__).resolve().parents[2]
SELF_POLICY = REPO / "policies" / "slimguard-self.yaml"
SELF_TAG = "ghcr.io/slimguard/slimguard:e2e"


def slimguard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator"), **env},
        check=False,
    )


@pytest.fixture(scope="module")
def self_image(docker_engine: DockerEngine, fixture_images: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    client = docker_engine.client(timeout=1200)
    builder, runtime = import_python_bases(client)
    # The fat bases the self policy names, as stand-ins: what base detection compares the image with.
    client.images.get(builder).tag("debian", tag="12-slim")
    client.images.get(builder).tag("python", tag="3.11-bookworm")
    client.images.pull(fixture_images.node_base.ref).tag("node", tag="20-bookworm")
    client.images.pull(fixture_images.debian_fat.ref).tag("debian", tag="bookworm")
    context = tmp_path_factory.mktemp("self-context")
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, context / name)
    shutil.copytree(REPO / "operator", context / "operator", ignore=shutil.ignore_patterns("__pycache__"))
    with package_index(wheelhouse(REPO / "pyproject.toml")) as index:
        try:
            client.images.build(
                path=str(context),
                tag=SELF_TAG,
                network_mode="host",  # for the loopback index only: dockerd here has no bridge to the outside
                pull=False,
                rm=True,
                forcerm=True,
                buildargs={
                    "BUILDER": builder,
                    "RUNTIME": runtime,
                    "PIP_INDEX_URL": index,
                    "PIP_TRUSTED_HOST": "127.0.0.1",
                },
            )
        except Exception as error:  # the build log is the only useful thing to show
            log = getattr(error, "build_log", None) or []
            tail = "".join(str(entry.get("stream") or entry.get("error") or "") for entry in log)[-4000:]
            raise AssertionError(f"docker build of the Dockerfile failed: {error}\n{tail}") from None
    client.close()
    return SELF_TAG


def test_the_built_image_runs_slimguard(docker_engine: DockerEngine, self_image: str) -> None:
    client = docker_engine.client()
    output = client.containers.run(self_image, ["version"], network_mode="none", remove=True)
    client.close()
    assert output.decode().strip()


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
