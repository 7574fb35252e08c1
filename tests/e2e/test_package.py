"""slimguard as `pip install` gives it: the sdist and the wheel `python -m build` makes from this checkout, their
metadata as PyPI shows it, and the wheel installed into fresh venvs.

`pip install slimguard` is the CLI alone, what a CI job installs: it lints a Dockerfile, checks and inspects
images in the test registry, and has none of the operator's dependencies (kopf, kubernetes, prometheus-client,
aiohttp, cryptography); the commands that need them say which extra to install. `pip install
'slimguard[operator]'` brings the controller and the webhook. Every command runs the venv's own `slimguard`,
with nothing pointing it back at this checkout's sources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from slimguard import __version__
from slimguard_testbed import Registry
from slimguard_testbed.images import push_image
from slimguard_testbed.package import Distributions, InstalledPackage, requirements_of, wheel_metadata

REPO = Path(__file__).resolve().parents[2]
FAT_DOCKERFILE = REPO / "operator" / "slimguard_testbed" / "fixtures" / "fat-app" / "Dockerfile"
OPERATOR_MODULES = ("kopf", "kubernetes", "prometheus_client", "aiohttp", "cryptography")
OPERATOR_DISTRIBUTIONS = {"kopf", "kubernetes", "prometheus-client", "aiohttp", "cryptography"}
MiB = 1 << 20

pytestmark = pytest.mark.timeout(300)  # the builds and installs are warmed before the clock; this is a hang guard


# --- the distributions --------------------------------------------------------------------------------------


def test_twine_accepts_the_sdist_and_the_wheel(distributions: Distributions) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(distributions.sdist), str(distributions.wheel)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_holds_slimguard_and_nothing_of_its_test_bed(distributions: Distributions) -> None:
    with zipfile.ZipFile(distributions.wheel) as wheel:
        names = wheel.namelist()
    assert {name.split("/")[0] for name in names} == {"slimguard", f"slimguard-{__version__}.dist-info"}
    assert "slimguard/py.typed" in names
    assert f"slimguard-{__version__}.dist-info/licenses/LICENSE" in names


def test_the_sdist_holds_the_sources_and_the_project_files_and_no_test_bed(distributions: Distributions) -> None:
    prefix = f"slimguard-{__version__}/"
    with tarfile.open(distributions.sdist) as sdist:
        names = {member.name.removeprefix(prefix) for member in sdist.getmembers() if member.isfile()}
    top_level = {name for name in names if "/" not in name}
    assert top_level == {
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "MANIFEST.in",
        "pyproject.toml",
        "setup.cfg",
        "PKG-INFO",
    }
    assert not [name for name in names if name.startswith("operator/slimguard_testbed")]
    sources = {
        str(path.relative_to(REPO)) for path in (REPO / "operator" / "slimguard").rglob("*") if path.suffix == ".py"
    }
    packaged = {name for name in names if name.startswith("operator/slimguard/")}
    assert sources <= packaged, sorted(sources - packaged)
    others = {name for name in names - top_level - packaged if not name.startswith("operator/slimguard.egg-info/")}
    assert others == set()


def test_the_metadata_says_what_pypi_shows(distributions: Distributions) -> None:
    metadata = wheel_metadata(distributions.wheel)
    assert metadata["Name"] == "slimguard"
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["License-File"] == "LICENSE"
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["Description-Content-Type"] == "text/markdown"
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Source", "Issues", "Changelog"}
    classifiers = metadata.get_all("Classifier") or []
    assert {"Programming Language :: Python :: 3.11", "Typing :: Typed"} <= set(classifiers)
    assert "operator" in (metadata.get_all("Provides-Extra") or [])
    installed_without_extras = {Requirement(line).name.lower() for line in requirements_of(distributions.wheel)}
    assert installed_without_extras.isdisjoint(OPERATOR_DISTRIBUTIONS)


# --- pip install slimguard: the CLI alone -------------------------------------------------------------------


def test_the_cli_alone_has_none_of_the_operators_dependencies(cli_install: InstalledPackage) -> None:
    assert cli_install.can_import("slimguard.cli.main")  # the probe finds what is there
    assert [module for module in OPERATOR_MODULES if cli_install.can_import(module)] == []


def test_slimguard_version_is_the_installed_wheels(cli_install: InstalledPackage) -> None:
    result = cli_install.slimguard("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"slimguard {__version__}\n"


def test_lint_from_the_cli_alone(cli_install: InstalledPackage) -> None:
    result = cli_install.slimguard("lint", str(FAT_DOCKERFILE), "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    found = {finding["rule"] for finding in json.loads(result.stdout)["files"][0]["findings"]}
    assert {"SG101", "SG105"} <= found  # single stage on node:20-bookworm, and no USER

    sarif = cli_install.slimguard("lint", str(FAT_DOCKERFILE), "--format", "sarif")
    assert sarif.returncode == 1, sarif.stderr
    assert json.loads(sarif.stdout)["version"] == "2.1.0"


@dataclass(frozen=True)
class PushedImages:
    bloated: str  # 2 MiB of incompressible bytes, runs as root
    slim: str  # a few bytes over two layers (one file written twice), runs as 10001


@pytest.fixture(scope="module")
def pushed(registry: Registry) -> PushedImages:
    bloated = push_image(registry.endpoint, "shop/package-bloated", "1.0", [{"/app/blob.bin": os.urandom(2 * MiB)}])
    slim = push_image(
        registry.endpoint,
        "shop/package-slim",
        "1.0",
        [{"/app/hello.txt": b"hello"}, {"/app/hello.txt": b"hello again"}],
        user="10001",
    )
    return PushedImages(bloated=bloated.ref, slim=slim.ref)


def against_the_registry(
    cli_install: InstalledPackage, registry: Registry, *args: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The installed CLI told to trust the test registry's CA and its loopback address, as test_cli does."""
    docker_config = tmp_path / "docker-config"  # no credentials of this machine's user
    docker_config.mkdir(exist_ok=True)
    (docker_config / "config.json").write_text("{}")
    return cli_install.slimguard(
        *args,
        "--allow-loopback-registries",
        "--ca-file",
        str(registry.ca_file),
        env={"DOCKER_CONFIG": str(docker_config)},
    )


def test_check_against_the_registry_from_the_cli_alone(
    cli_install: InstalledPackage, registry: Registry, pushed: PushedImages, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "slimguard.dev/v1alpha1",
                "kind": "ImagePolicy",
                "metadata": {"name": "ci-slim"},
                "spec": {"mode": "Enforce", "rules": {"maxCompressedSize": "1Mi", "requireNonRootUser": True}},
            }
        )
    )
    bloated = against_the_registry(
        cli_install, registry, "check", pushed.bloated, "--policy", str(policy), "--format", "json", tmp_path=tmp_path
    )
    assert bloated.returncode == 1, bloated.stdout + bloated.stderr
    (image,) = json.loads(bloated.stdout)["images"]
    assert {finding["rule"] for finding in image["findings"]} == {"maxCompressedSize", "requireNonRootUser"}

    slim = against_the_registry(cli_install, registry, "check", pushed.slim, "--policy", str(policy), tmp_path=tmp_path)
    assert slim.returncode == 0, slim.stdout + slim.stderr
    assert f"{pushed.slim}: compliant" in slim.stdout


def test_inspect_reads_the_layers_from_the_cli_alone(
    cli_install: InstalledPackage, registry: Registry, pushed: PushedImages, tmp_path: Path
) -> None:
    result = against_the_registry(
        cli_install, registry, "inspect", pushed.slim, "--content", "--format", "json", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (platform,) = json.loads(result.stdout)["platforms"]
    assert platform["user"] == "10001"
    assert len(platform["layers"]) == 2
    assert platform["content"]["wastedBytes"] == len(b"hello") + len(b"hello again")  # both copies, as dive counts


@pytest.mark.parametrize(
    ("named", "command", "missing"),
    [
        ("slimguard controller", ["controller"], "kopf"),
        (
            "slimguard webhook",
            ["webhook", "--tls-cert-file", "tls.crt", "--tls-key-file", "tls.key"],
            "prometheus_client",
        ),
        ("slimguard check --cluster", ["check", "--cluster", "registry.example.com/shop/api:1.0"], "kubernetes"),
    ],
)
def test_what_needs_the_operator_extra_says_so_in_one_line(
    cli_install: InstalledPackage, named: str, command: list[str], missing: str
) -> None:
    result = cli_install.slimguard(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        f"slimguard: error: {named} needs {missing}, which `pip install slimguard` leaves out: "
        "pip install 'slimguard[operator]'\n"
    )


# --- pip install 'slimguard[operator]' ----------------------------------------------------------------------


def test_the_operator_extra_brings_what_the_controller_and_the_webhook_import(
    operator_install: InstalledPackage,
) -> None:
    modules = "slimguard.controller.handlers, slimguard.admission.handlers, slimguard.admission.server"
    result = operator_install.python("-c", f"import {modules}")
    assert result.returncode == 0, result.stderr
    for command in ("controller", "webhook"):
        helped = operator_install.slimguard(command, "--help")
        assert helped.returncode == 0, helped.stderr


def test_the_cli_alone_is_less_than_half_the_full_install(
    cli_install: InstalledPackage, operator_install: InstalledPackage
) -> None:
    cli, full = cli_install.installed_bytes(), operator_install.installed_bytes()
    sizes = (
        f"installed: the CLI alone {cli / MiB:.1f} MiB ({len(cli_install.distributions())} distributions), "
        f"with [operator] {full / MiB:.1f} MiB ({len(operator_install.distributions())})"
    )
    print(sizes)
    assert cli < full / 2, sizes
