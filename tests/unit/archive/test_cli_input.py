"""``check --input`` and ``inspect --input`` as a pipeline calls them: which image a name means, what the reports
say of the archive, and the usage mistakes that are one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from archive.archives import NAME, app_image, docker_save, multi_platform, oci_layout, tar_of, two_image_archive
from slimguard.cli.main import app

SARIF_SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "sarif-schema-2.1.0.json").read_text())
POLICY = """\
apiVersion: slimguard.dev/v1alpha1
kind: ImagePolicy
metadata: {name: slim}
spec:
  mode: Enforce
  match: {images: ["registry.example.com/shop/*"]}
  rules:
    maxUncompressedSize: 100Ki
    requireNonRootUser: true
    maxPackages: 2
"""


def run(*argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(argv))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr.strip()


@pytest.fixture
def policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


def findings(report: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((f["rule"], f["message"]) for image in report["images"] for f in image["findings"])


def test_a_docker_save_tarball_is_checked_under_its_repo_tag(tmp_path: Path, policy: str) -> None:
    saved = docker_save(tmp_path / "saved.tar", app_image())
    code, out, _ = run("check", "--input", str(saved), "-p", policy, "-f", "json")
    assert code == 1
    report = json.loads(out)
    assert (report["source"], report["input"]) == ("archive", str(saved))
    (image,) = report["images"]
    assert image["image"] == NAME
    assert {f["rule"] for f in image["findings"]} == {"maxUncompressedSize", "requireNonRootUser", "maxPackages"}
    assert f"image {NAME} has 3 OS packages (dpkg, linux/amd64)" in json.dumps(image["findings"])


def test_an_oci_layout_named_by_a_tag_only_is_checked_under_the_name_given(tmp_path: Path, policy: str) -> None:
    layout = oci_layout(tmp_path / "layout", app_image(), tag="1.0")  # skopeo's oci:DIR:1.0
    code, _, stderr = run("check", "--input", str(layout), "-p", policy)
    assert code == 2
    assert stderr == (
        f"slimguard: error: {layout} holds an image with no name (tag 1.0): give the name the policies should "
        f"match, e.g. slimguard check --input {layout} registry.example.com/team/app:1.0"
    )
    code, out, _ = run("check", "--input", str(layout), NAME, "-p", policy, "-f", "json")
    assert code == 1
    assert json.loads(out)["images"][0]["image"] == NAME


def test_the_same_image_as_a_layout_its_tar_and_docker_save_has_the_same_findings(tmp_path: Path, policy: str) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    reports = [
        json.loads(run("check", "--input", str(path), NAME, "-p", policy, "-f", "json")[1])
        for path in (layout, tar_of(layout, tmp_path / "oci.tar"), docker_save(tmp_path / "saved.tar", image))
    ]
    from_layout, from_tar, from_save = (findings(report) for report in reports)
    assert from_layout == from_tar
    # docker save holds the layers uncompressed: their size is exact, where the layout's gzip trailers estimate.
    assert [(rule, m.replace("uncompressed (estimated)", "uncompressed")) for rule, m in from_layout] == from_save


def test_a_multi_platform_layout_is_one_image_checked_under_the_name_given(tmp_path: Path, policy: str) -> None:
    layout = oci_layout(tmp_path / "layout", multi_platform(), tag="2.0")
    code, out, _ = run(
        "check", "--input", str(layout), "registry.example.com/shop/multi:2.0", "-p", policy, "-f", "json"
    )
    assert code == 1
    assert json.loads(out)["images"][0]["image"] == "registry.example.com/shop/multi:2.0"


def test_an_archive_of_one_image_is_checked_under_the_name_given(tmp_path: Path, policy: str) -> None:
    one = docker_save(tmp_path / "one.tar", app_image(), repo_tag="example.com/one:1")
    code, out, _ = run("check", "--input", str(one), "registry.example.com/shop/api:9", "-p", policy, "-f", "json")
    assert code == 1
    assert json.loads(out)["images"][0]["image"] == "registry.example.com/shop/api:9"


def test_an_image_an_archive_of_several_does_not_hold_is_exit_2_naming_what_it_holds(
    tmp_path: Path, policy: str
) -> None:
    both = two_image_archive(tmp_path)
    code, _, stderr = run("check", "--input", str(both), "registry.example.com/shop/other:9", "-p", policy)
    assert (code, stderr) == (
        2,
        f"slimguard: error: {both} holds no image called registry.example.com/shop/other:9 (it holds 2: "
        "example.com/one:1, example.com/two:2)",
    )
    code, out, _ = run("check", "--input", str(both), "example.com/two:2", "-p", policy, "-f", "json")
    assert [image["image"] for image in json.loads(out)["images"]] == ["example.com/two:2"]


def test_inspect_input_shows_the_archive_and_every_platform(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", multi_platform(), tag="2.0")
    code, out, _ = run("inspect", "--input", str(layout), "-f", "json")
    assert code == 0
    report = json.loads(out)
    assert (report["image"], report["source"], report["input"]) == ("tag 2.0", "archive", str(layout))
    assert [p["platform"] for p in report["platforms"]] == ["linux/amd64", "linux/arm64/v8"]
    assert all(p["compressedSize"] for p in report["platforms"])
    code, out, _ = run("inspect", "--input", str(layout), "--platform", "linux/arm64")
    assert code == 0
    assert f"tag 2.0 (archive {layout})" in out
    assert "linux/arm64/v8: " in out
    assert "linux/amd64: " not in out


def test_sarif_locates_archive_findings_at_the_images_repository_and_names_the_archive(
    tmp_path: Path, policy: str
) -> None:
    saved = docker_save(tmp_path / "saved.tar", app_image())
    code, out, _ = run("check", "--input", str(saved), "-p", policy, "-f", "sarif")
    assert code == 1
    log = json.loads(out)
    jsonschema.validate(log, SARIF_SCHEMA)
    for result in log["runs"][0]["results"]:
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "shop/app"
        assert result["properties"]["input"] == str(saved)
        assert result["properties"]["image"] == NAME


def test_the_table_says_where_the_images_were_read(tmp_path: Path, policy: str) -> None:
    saved = docker_save(tmp_path / "saved.tar", app_image())
    _, out, _ = run("check", "--input", str(saved), "-p", policy)
    assert out.splitlines()[:2] == [f"read from {saved}", f"{NAME}: noncompliant (exit 1)"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--input", "x.tar", "--docker"], "give --docker or --input ARCHIVE, not both"),
        (["inspect", "--input", "x.tar", "--docker"], "give --docker or --input ARCHIVE, not both"),
        (["check"], "give an image reference (or --input ARCHIVE)"),
        (["inspect"], "give an image reference (or --input ARCHIVE)"),
    ],
)
def test_usage_mistakes_are_one_line(argv: list[str], message: str, policy: str) -> None:
    extra = ["-p", policy] if argv[0] == "check" else []
    code, _, stderr = run(*argv, *extra)
    assert (code, stderr) == (2, f"slimguard: error: {message}")


def test_inspect_of_an_archive_of_several_images_without_a_name_asks_for_one(tmp_path: Path) -> None:
    both = two_image_archive(tmp_path)
    code, _, stderr = run("inspect", "--input", str(both))
    assert code == 2
    assert stderr == (
        f"slimguard: error: {both} holds 2 images (example.com/one:1, example.com/two:2): name the one to inspect"
    )
