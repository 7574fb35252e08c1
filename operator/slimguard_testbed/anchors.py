"""The anchors slimguard's layer-content numbers are checked against: dive (efficiency, wasted bytes) and syft
(the OS package catalogue), built from their Go modules once per machine and run on the same images.

dive v0.13.1 reads a `docker save` archive (`--source docker-archive`) and writes its analysis with `--json`
(the exact float and byte count; its CI mode prints the efficiency rounded to 4 decimals of a percent, so
that is only used to show a `.dive-ci` file gives the same verdict). syft v1.57.1 reads the archive
(`docker-archive:`) or the test-bed registry itself (`registry:`, trusting the registry's CA), and its JSON
output lists every package with its type (`deb`, `apk`, `rpm`, ...).

Both run with a throw-away HOME and no config files of the machine, and syft never checks for updates: the
only network traffic is to the loopback registry, when one is named.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from slimguard_testbed.cache import REPO_ROOT
from slimguard_testbed.process import TestbedError

DIVE_VERSION = "v0.13.1"
DIVE_PACKAGE = "github.com/wagoodman/dive"
SYFT_VERSION = "v1.57.1"
SYFT_PACKAGE = "github.com/anchore/syft/cmd/syft"
BUILD_GO_TOOL = REPO_ROOT / "scripts" / "build-go-tool.sh"
# What syft calls the package types of the OS package managers slimguard counts.
OS_PACKAGE_TYPES = ("deb", "apk", "rpm")


# -- the binaries ----------------------------------------------------------------------------------------


def go_tool(name: str, package: str, version: str) -> Path:
    """Build (once; the script returns at once when cached) and return one Go tool from the cache."""
    # The script takes its own lock, so concurrent sessions wait for one build.
    result = subprocess.run(
        ["bash", str(BUILD_GO_TOOL), name, package, version], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-30:])
        raise TestbedError(f"building {name} {version} failed ({result.returncode}):\n{tail}")
    binary = Path(result.stdout.strip().splitlines()[-1])
    if not os.access(binary, os.X_OK):
        raise TestbedError(f"{binary} is not an executable after building {name} {version}")
    return binary


@functools.cache
def dive_binary() -> Path:
    return go_tool("dive", DIVE_PACKAGE, DIVE_VERSION)


@functools.cache
def syft_binary() -> Path:
    return go_tool("syft", SYFT_PACKAGE, SYFT_VERSION)


def _isolated_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH and a throw-away HOME: no ~/.dive.yaml, ~/.syft.yaml or docker config of the machine is read."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": str(home),
    }
    return {**env, **(extra or {})}


def _run(argv: list[str], *, env: Mapping[str, str], timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(env), timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise TestbedError(f"{what} did not finish within {timeout:.0f}s") from error


# -- dive ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiveFile:
    """One of dive's "inefficient files": a path seen in two or more layers, its cumulative size."""

    path: str
    count: int
    size_bytes: int


@dataclass(frozen=True)
class DiveLayer:
    index: int
    digest: str  # dive's "digestId": the layer's diff_id
    size_bytes: int
    command: str


@dataclass(frozen=True)
class DiveAnalysis:
    """`dive --json` for one image: dive's own numbers, as it computes them."""

    efficiency: float
    wasted_bytes: int
    size_bytes: int
    inefficient_files: tuple[DiveFile, ...]
    layers: tuple[DiveLayer, ...]

    @property
    def user_size_bytes(self) -> int:
        """Every layer but the first, as dive's userWastedPercent divides by."""
        return sum(layer.size_bytes for layer in self.layers[1:])


def dive_analyse(archive: Path, *, timeout: float = 600) -> DiveAnalysis:
    """Run `dive --source docker-archive ARCHIVE --json OUT` and read OUT."""
    with tempfile.TemporaryDirectory(prefix="slimguard-dive-") as work:
        home = Path(work)
        out = home / "analysis.json"
        result = _run(
            [str(dive_binary()), "--source", "docker-archive", str(archive), "--json", str(out)],
            env=_isolated_env(home),
            timeout=timeout,
            what="dive",
        )
        if result.returncode != 0 or not out.exists():
            output = result.stdout[-2000:] + result.stderr
            raise TestbedError(f"dive failed on {archive} ({result.returncode}):\n{output}")
        exported = json.loads(out.read_text())
    image = exported["image"]
    return DiveAnalysis(
        efficiency=float(image["efficiencyScore"]),
        wasted_bytes=int(image["inefficientBytes"]),
        size_bytes=int(image["sizeBytes"]),
        inefficient_files=tuple(
            DiveFile(item["file"], int(item["count"]), int(item["sizeBytes"])) for item in image["fileReference"] or ()
        ),
        layers=tuple(
            DiveLayer(int(item["index"]), item["digestId"], int(item["sizeBytes"]), item["command"])
            for item in exported["layer"]
        ),
    )


@dataclass(frozen=True)
class DiveCiResult:
    """`CI=true dive ... --ci-config FILE`: the verdict and the figures dive printed (rounded as printed)."""

    passed: bool
    efficiency_percent: float  # printed with 4 decimals: "efficiency: 98.4421 %"
    wasted_bytes: int
    user_wasted_percent: float
    output: str


_CI_EFFICIENCY = re.compile(r"efficiency: (?P<value>[\d.]+) %")
_CI_WASTED = re.compile(r"wastedBytes: (?P<value>\d+) bytes")
_CI_USER_WASTED = re.compile(r"userWastedPercent: (?P<value>[\d.]+|NaN|\+Inf) %")


def dive_ci(
    archive: Path,
    *,
    lowest_efficiency: float | None = None,
    highest_wasted_bytes: int | str | None = None,
    highest_user_wasted_percent: float | None = None,
    timeout: float = 600,
) -> DiveCiResult:
    """dive's CI mode with a `.dive-ci` file holding the given rules ("disabled" for those not given).

    Exit code 0 is a pass, 1 a failed rule; the figures are parsed from what dive prints.
    """

    def rule(value: object) -> str:
        return "disabled" if value is None else str(value)

    with tempfile.TemporaryDirectory(prefix="slimguard-dive-ci-") as work:
        home = Path(work)
        config = home / ".dive-ci"
        config.write_text(
            yaml.safe_dump(
                {
                    "rules": {
                        "lowestEfficiency": rule(lowest_efficiency),
                        "highestWastedBytes": rule(highest_wasted_bytes),
                        "highestUserWastedPercent": rule(highest_user_wasted_percent),
                    }
                }
            )
        )
        result = _run(
            [str(dive_binary()), "--source", "docker-archive", str(archive), "--ci-config", str(config)],
            env=_isolated_env(home, {"CI": "true"}),
            timeout=timeout,
            what="dive (CI mode)",
        )
    output = result.stdout + result.stderr
    efficiency = _CI_EFFICIENCY.search(output)
    wasted = _CI_WASTED.search(output)
    user_wasted = _CI_USER_WASTED.search(output)
    if result.returncode not in (0, 1) or efficiency is None or wasted is None or user_wasted is None:
        raise TestbedError(f"dive's CI mode failed on {archive} ({result.returncode}):\n{output[-3000:]}")
    return DiveCiResult(
        passed=result.returncode == 0,
        efficiency_percent=float(efficiency["value"]),
        wasted_bytes=int(wasted["value"]),
        user_wasted_percent=float(user_wasted["value"]),
        output=output,
    )


# -- syft ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyftPackage:
    name: str
    version: str
    type: str  # "deb", "apk", "rpm", "python", "binary", ...


@dataclass(frozen=True)
class SyftCatalogue:
    """`syft SOURCE -o json`: every package syft found in the image's final (squashed) file system."""

    packages: tuple[SyftPackage, ...]
    distro: str | None  # the release's "prettyName", e.g. "Debian GNU/Linux 12 (bookworm)"

    def by_type(self) -> Counter[str]:
        return Counter(package.type for package in self.packages)

    @property
    def os_package_count(self) -> int:
        """Packages of the OS package managers (deb, apk, rpm): what slimguard's maxPackages counts."""
        return sum(1 for package in self.packages if package.type in OS_PACKAGE_TYPES)

    def names(self, package_type: str) -> set[str]:
        return {package.name for package in self.packages if package.type == package_type}


def syft_catalogue(source: str, *, ca_file: Path | None = None, timeout: float = 900) -> SyftCatalogue:
    """Run `syft SOURCE -o json`: `docker-archive:/path.tar`, `oci-dir:/layout` or `registry:host/repo:tag`.

    For `registry:` sources, `ca_file` is the registry's CA (`SYFT_REGISTRY_CA_CERT`); pulls are anonymous,
    so the repository must allow them (the test bed's base/, shop/ and public/ do).
    """
    extra = {"SYFT_CHECK_FOR_APP_UPDATE": "false"}
    if ca_file is not None:
        extra["SYFT_REGISTRY_CA_CERT"] = str(ca_file)
    with tempfile.TemporaryDirectory(prefix="slimguard-syft-") as work:
        home = Path(work)
        result = _run(
            [str(syft_binary()), "scan", source, "-o", "json", "-q"],
            env=_isolated_env(home, extra),
            timeout=timeout,
            what="syft",
        )
    if result.returncode != 0:
        raise TestbedError(f"syft failed on {source} ({result.returncode}):\n{result.stderr[-3000:]}")
    document = json.loads(result.stdout)
    packages = tuple(
        SyftPackage(str(item.get("name", "")), str(item.get("version", "")), str(item.get("type", "")))
        for item in document.get("artifacts") or ()
    )
    distro = (document.get("distro") or {}).get("prettyName") or None
    return SyftCatalogue(packages=packages, distro=distro)


__all__ = [
    "DIVE_VERSION",
    "OS_PACKAGE_TYPES",
    "SYFT_VERSION",
    "DiveAnalysis",
    "DiveCiResult",
    "DiveFile",
    "DiveLayer",
    "SyftCatalogue",
    "SyftPackage",
    "dive_analyse",
    "dive_binary",
    "dive_ci",
    "syft_binary",
    "syft_catalogue",
]
