"""`slimguard check --input` in a pipeline without a registry: a `docker save` tarball and an OCI layout give the
findings `check` gives for the same image pushed, finding by finding, and the same exit status.

The archives are made by the real tools from images pushed to the test bed's registry: the real Docker engine
pulls and `docker save`s them (the docker SDK), skopeo copies them into an OCI layout and its tar (`oci:`,
`oci-archive:`; every platform of an index with `--all`). The images: shop/wasted:1.0 (busybox, six layers, 50.5
MiB wasted), base/distroless:12 (dpkg status.d, user 65532) and shop/multi:1.0 (an index of linux/amd64 and
linux/arm64). The CLI runs as a user runs it, in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from slimguard_testbed import DockerEngine, Registry
from slimguard_testbed.image_archives import docker_save, skopeo_copy
from slimguard_testbed.images import FixtureImage, FixtureImages
from slimguard_testbed.oci import MEDIA_OCI_MANIFEST

pytestmark = pytest.mark.timeout(600)  # a cold engine pulls ~55 MB and saves it once per module
REPO = Path(__file__).resolve().parents[2]


def slimguard(*args: str, docker_config: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, output piped, with an empty Docker config (no credentials)."""
    return subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator"), "DOCKER_CONFIG": str(docker_config)},
        check=False,
    )


def write_policy(path: Path, name: str, rules: dict[str, Any]) -> str:
    document = {"apiVersion": "slimguard.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": name}}
    path.write_text(yaml.safe_dump({**document, "spec": {"mode": "Enforce", "rules": rules}}))
    return str(path)


@dataclass(frozen=True)
class Archives:
    wasted: FixtureImage
    distroless: FixtureImage
    multi: FixtureImage
    saved: dict[str, Path]
    """docker save tarball of each single-platform image, by its pushed reference."""
    layouts: dict[str, Path]
    """skopeo's OCI layout directory of each single-platform image, by its pushed reference."""
    multi_layout: Path
    multi_tar: Path
    docker_config: Path
    registry_flags: tuple[str, ...]

    def check(self, *args: str) -> dict[str, Any]:
        """``slimguard check ... --format json``: the report, its exit status checked against the process's."""
        result = slimguard("check", *args, "--format", "json", *self.registry_flags, docker_config=self.docker_config)
        assert "Traceback" not in result.stderr, result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        assert report["exitCode"] == result.returncode
        return report

    def inspect(self, *args: str) -> dict[str, Any]:
        result = slimguard("inspect", *args, "--format", "json", *self.registry_flags, docker_config=self.docker_config)
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document


@pytest.fixture(scope="module")
def archives(
    docker_engine: DockerEngine,
    registry: Registry,
    fixture_images: FixtureImages,
    wasted_image: FixtureImage,
    tmp_path_factory: pytest.TempPathFactory,
) -> Archives:
    work = tmp_path_factory.mktemp("archives")
    single = {"wasted": wasted_image, "distroless": fixture_images.distroless}
    client = docker_engine.client()
    try:
        saved = {image.ref: docker_save(client, image.ref, work / f"{name}.tar") for name, image in single.items()}
    finally:
        client.close()
    layouts = {}
    for name, image in single.items():
        skopeo_copy(image.ref, f"oci:{work / name}:{image.tag}", ca_file=registry.ca_file)
        layouts[image.ref] = work / name
    multi = fixture_images.multiarch
    copy = {"ca_file": registry.ca_file, "all_platforms": True}
    skopeo_copy(multi.ref, f"oci:{work / 'multi'}:{multi.tag}", **copy)  # type: ignore[arg-type]
    skopeo_copy(multi.ref, f"oci-archive:{work / 'multi.tar'}:{multi.tag}", **copy)  # type: ignore[arg-type]
    config = work / "docker-config"
    config.mkdir()
    (config / "config.json").write_text("{}")
    return Archives(
        wasted_image,
        fixture_images.distroless,
        multi,
        saved,
        layouts,
        work / "multi",
        work / "multi.tar",
        config,
        ("--allow-loopback-registries", "--ca-file", str(registry.ca_file)),
    )


EXPECTED_WASTED = {
    "maxUncompressedSize",
    "forbiddenTools",
    "requireNonRootUser",
    "maxWastedBytes",
    "minEfficiency",
    "deniedBaseImages",
}
EXPECTED_DISTROLESS = {"maxPackages"}


def content_and_size_rules(fixture_images: FixtureImages, **more: Any) -> dict[str, Any]:
    """A rule of every family: sizes, user, base (found by shared layers, read from the registry), and the content
    rules that walk the layers (packages, tools, dive's waste)."""
    return {
        "maxUncompressedSize": "1Mi",
        "maxPackages": 2,
        "forbiddenTools": ["shells"],
        "requireNonRootUser": True,
        "maxWastedBytes": "10Mi",
        "minEfficiency": 0.9,
        "deniedBaseImages": [fixture_images.busybox.ref],
        **more,
    }


def findings(report: dict[str, Any], image: str) -> list[tuple[Any, ...]]:
    (checked,) = (entry for entry in report["images"] if entry["image"] == image)
    return sorted(
        (
            f["policy"],
            f["rule"],
            f["kind"],
            f["decision"],
            f.get("reason"),
            f.get("limit"),
            f.get("actual"),
            f["message"],
        )
        for f in checked["findings"]
    )


def verdict(report: dict[str, Any], image: str) -> tuple[str, str, int]:
    (checked,) = (entry for entry in report["images"] if entry["image"] == image)
    return checked["status"], checked["decision"], checked["exitCode"]


def test_check_input_of_an_oci_layout_gives_the_pushed_images_findings_exactly(
    archives: Archives, fixture_images: FixtureImages, tmp_path: Path
) -> None:
    """skopeo keeps the registry's blobs: the compressed sizes as stored, every message alike, and the same digest
    for an OCI manifest (a Docker schema2 one, shop/wasted's, skopeo rewrites as OCI: a new manifest digest over
    the same config and layer blobs)."""
    rules = content_and_size_rules(fixture_images, maxCompressedSize="1Mi", maxLayers=3)
    policy = write_policy(tmp_path / "policy.yaml", "archive-compare", rules)
    fired = {}
    for image in (archives.wasted, archives.distroless):
        layout = str(archives.layouts[image.ref])
        pushed = archives.check(image.ref, "-p", policy)
        archived = archives.check("--input", layout, image.ref, "-p", policy)  # skopeo's ref.name is the tag alone
        assert (archived["source"], archived["input"]) == ("archive", layout)
        assert pushed["images"][0]["digest"] == image.digest
        converted = image.media_type != MEDIA_OCI_MANIFEST
        assert (archived["images"][0]["digest"] != image.digest) == converted
        assert findings(archived, image.ref) == findings(pushed, image.ref)
        assert verdict(archived, image.ref) == verdict(pushed, image.ref)
        assert archived["exitCode"] == pushed["exitCode"]
        fired[image.repository] = {row[1] for row in findings(pushed, image.ref)}
    assert fired == {
        "shop/wasted": EXPECTED_WASTED | {"maxCompressedSize", "maxLayers"},
        "base/distroless": EXPECTED_DISTROLESS,
    }


def test_check_input_of_a_docker_save_tarball_gives_the_pushed_images_findings(
    archives: Archives, fixture_images: FixtureImages, tmp_path: Path
) -> None:
    """docker save holds the layers uncompressed, under their diff IDs: every finding is the pushed image's, with
    one word of difference where the registry can only estimate (an uncompressed size read from a gzip trailer,
    exact modulo 4 GiB) and the tarball knows (its tar's size). maxCompressedSize passes on both: within the
    limit uncompressed, the tarball is within it compressed too."""
    rules = content_and_size_rules(fixture_images, maxCompressedSize="500Mi")
    policy = write_policy(tmp_path / "policy.yaml", "archive-compare", rules)
    fired = {}
    for image in (archives.wasted, archives.distroless):
        pushed = archives.check(image.ref, "-p", policy)
        archived = archives.check("--input", str(archives.saved[image.ref]), "-p", policy)  # named by its RepoTags
        rows = findings(pushed, image.ref)
        estimated = [row[1] for row in rows if "uncompressed (estimated)" in row[-1]]
        assert estimated == [row[1] for row in rows if row[1] == "maxUncompressedSize"]  # that word, and no other
        exact = [(*row[:-1], row[-1].replace("uncompressed (estimated)", "uncompressed")) for row in rows]
        assert findings(archived, image.ref) == sorted(exact)
        assert verdict(archived, image.ref) == verdict(pushed, image.ref)
        assert archived["exitCode"] == pushed["exitCode"]
        # No manifest in a docker save: the image is known by its config's digest, as the Docker engine knows it.
        assert archived["images"][0]["digest"] == json.loads(image.artifact.manifest.read())["config"]["digest"]
        fired[image.repository] = {row[1] for row in rows}
    assert fired == {"shop/wasted": EXPECTED_WASTED, "base/distroless": EXPECTED_DISTROLESS}


def test_a_docker_save_tarball_has_no_compressed_size_unless_measured(archives: Archives, tmp_path: Path) -> None:
    image = archives.wasted
    policy = write_policy(tmp_path / "policy.yaml", "pull-size", {"maxCompressedSize": "20Mi"})
    pushed = archives.check(image.ref, "-p", policy)
    saved = str(archives.saved[image.ref])
    unmeasured = archives.check("--input", saved, "-p", policy)
    ((_, rule, _, _, reason, _, _, message),) = findings(unmeasured, image.ref)
    assert (rule, reason, unmeasured["exitCode"]) == ("maxCompressedSize", "CompressedSizeUnknown", 2)
    assert f"in the archive {saved}, which holds no compressed size" in message
    measured = archives.check("--input", saved, "--measure-compressed", "-p", policy)
    ((pushed_row,), (measured_row,)) = (findings(pushed, image.ref), findings(measured, image.ref))
    assert pushed_row[:6] == measured_row[:6]  # a violation on both, of the same limit
    assert measured["exitCode"] == pushed["exitCode"] == 1

    def mib(row: tuple[Any, ...]) -> float:
        found = re.match(r"[\d.]+ MiB", row[6])
        assert found is not None, row
        return float(found.group().split()[0])

    assert abs(mib(measured_row) - mib(pushed_row)) / mib(pushed_row) < 0.05  # another gzip of the same tars


def test_a_multi_platform_oci_layout_and_its_tar_give_the_pushed_indexs_findings(
    archives: Archives, tmp_path: Path
) -> None:
    multi = archives.multi
    rules = {
        "platforms": ["linux/amd64", "linux/arm64"],
        "maxCompressedSize": "1Mi",
        "maxUncompressedSize": "1Mi",
        "maxLayers": 1,
        "requireNonRootUser": True,
        "forbiddenTools": ["shells"],
    }
    policy = write_policy(tmp_path / "policy.yaml", "both-platforms", rules)
    pushed = archives.check(multi.ref, "-p", policy)
    rows = findings(pushed, multi.ref)
    assert {platform for row in rows for platform in re.findall(r"linux/(?:amd64|arm64)", row[-1])} == {
        "linux/amd64",
        "linux/arm64",
    }
    for archive in (archives.multi_layout, archives.multi_tar):
        archived = archives.check("--input", str(archive), multi.ref, "-p", policy)
        assert archived["images"][0]["digest"] == pushed["images"][0]["digest"] == multi.digest
        assert findings(archived, multi.ref) == rows
        assert verdict(archived, multi.ref) == verdict(pushed, multi.ref)


@pytest.mark.parametrize("platform", [None, "linux/arm64"])
def test_inspect_input_of_a_multi_platform_layout_shows_what_inspect_of_the_pushed_index_shows(
    archives: Archives, platform: str | None
) -> None:
    chosen = ["--platform", platform] if platform else []
    pushed = archives.inspect(archives.multi.ref, *chosen)
    archived = archives.inspect("--input", str(archives.multi_layout), *chosen)  # no name: the one image it holds
    assert (archived["source"], archived["input"]) == ("archive", str(archives.multi_layout))
    for key in ("digest", "listedPlatforms", "platforms"):
        assert archived[key] == pushed[key], key
    assert len(archived["platforms"]) == (1 if platform else 2)
