"""``slimguard check NEW --baseline OLD``: the regression gate a pipeline runs, on two builds of one app saved in an
archive. The baseline is an image, or the JSON report of an earlier check or diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.builds import NEW, OLD, growth_policy, run, two_builds


@pytest.fixture
def archive(tmp_path: Path) -> str:
    return two_builds(tmp_path)


def policy(tmp_path: Path, allowance: str) -> str:
    path = tmp_path / f"policy-{allowance}.yaml"
    path.write_text(growth_policy(f"maxGrowthBytes: {allowance}"))
    return str(path)


def check(archive: str, *options: str) -> tuple[int, dict, str]:
    code, out, err = run("check", "--input", archive, NEW, "--measure-compressed", "-f", "json", *options)
    return code, json.loads(out) if out.strip() else {}, err


def growth_messages(report: dict) -> list[str]:
    return [f["message"] for image in report["images"] for f in image["findings"] if f["rule"] == "maxGrowthBytes"]


def test_growth_beyond_the_allowance_fails_with_the_layer_responsible_named(archive: str, tmp_path: Path) -> None:
    code, report, _ = check(archive, "-p", policy(tmp_path, "64Ki"), "--baseline", OLD)
    assert code == 1
    (message,) = growth_messages(report)
    assert message.startswith(f"image {NEW} grew ")
    assert "Layer responsible: layer 2/3 added +" in message
    assert "RUN apt-get install -y gcc-12" in message
    assert report["baseline"] == OLD


def test_growth_within_the_allowance_passes(archive: str, tmp_path: Path) -> None:
    code, report, _ = check(archive, "-p", policy(tmp_path, "1Mi"), "--baseline", OLD)
    assert code == 0
    assert growth_messages(report) == []


def test_an_unchanged_rebuild_passes_even_with_no_growth_allowed(archive: str, tmp_path: Path) -> None:
    code, _, _ = check(archive, "-p", policy(tmp_path, "0"), "--baseline", NEW)
    assert code == 0


def test_the_baseline_can_be_the_json_report_of_an_earlier_check(archive: str, tmp_path: Path) -> None:
    earlier = tmp_path / "old.json"
    code, _, _ = run(
        "check", "--input", archive, OLD, "--measure-compressed", "-p", policy(tmp_path, "1Mi"), "-f", "json",
        "-o", str(earlier),
    )  # fmt: skip
    assert code == 0
    code, report, _ = check(archive, "-p", policy(tmp_path, "64Ki"), "--baseline", str(earlier))
    assert code == 1
    (message,) = growth_messages(report)
    assert "RUN apt-get install -y gcc-12" in message


def test_the_baseline_can_be_the_new_image_of_an_earlier_diff(archive: str, tmp_path: Path) -> None:
    earlier = tmp_path / "diff.json"
    code, _, _ = run("diff", "--input", archive, OLD, NEW, "--measure-compressed", "-f", "json", "-o", str(earlier))
    assert code == 0
    code, report, _ = check(archive, "-p", policy(tmp_path, "0"), "--baseline", str(earlier))
    assert code == 0, report  # NEW against itself: no growth


def test_a_growth_rule_without_a_baseline_is_not_applied_and_says_so(archive: str, tmp_path: Path) -> None:
    code, report, err = check(archive, "-p", policy(tmp_path, "0"))
    assert code == 0
    assert growth_messages(report) == []
    assert err == (
        "slimguard: note: maxGrowth/maxGrowthBytes of ImagePolicy no-bloat not checked: no --baseline to compare with "
        "(give an image or a JSON report of an earlier check)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON report"),
        ('{"tool": {"name": "other"}}', "not a slimguard JSON report"),
        ('{"tool": {"name": "slimguard"}, "command": "check", "images": [{"image": "x"}]}', "holds no sizes"),
        ('{"tool": {"name": "slimguard"}, "command": "lint", "files": []}', "holds no image sizes"),
    ],
)
def test_a_baseline_report_slimguard_did_not_write_is_one_line_and_exit_2(
    archive: str, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = check(archive, "-p", policy(tmp_path, "0"), "--baseline", str(bad))
    assert code == 2
    assert err.startswith(f"slimguard: error: {bad}: ")
    assert message in err
    assert "\n" not in err


def test_a_baseline_report_of_an_image_read_uncompressed_is_refused_saying_how_to_measure(
    archive: str, tmp_path: Path
) -> None:
    earlier = tmp_path / "unmeasured.json"
    code, _, _ = run("check", "--input", archive, OLD, "-p", policy(tmp_path, "1Mi"), "-f", "json", "-o", str(earlier))
    assert code == 0
    code, _, err = check(archive, "-p", policy(tmp_path, "64Ki"), "--baseline", str(earlier))
    assert code == 2
    assert "holds no compressed size" in err
    assert "--measure-compressed" in err


def test_a_baseline_no_policy_compares_with_is_said_not_silently_ignored(archive: str, tmp_path: Path) -> None:
    other = tmp_path / "users.yaml"
    other.write_text(growth_policy("requireNonRootUser: true"))
    code, _, err = check(archive, "-p", str(other), "--baseline", OLD)
    assert code == 0
    assert err == f"slimguard: note: --baseline {OLD} is not compared: no ImagePolicy sets maxGrowth or maxGrowthBytes"
