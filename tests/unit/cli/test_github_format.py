"""``--format github``: GitHub Actions workflow commands, one per line, escaped as the Actions toolkit escapes them,
so a finding becomes an annotation (at its Dockerfile line for lint) and never a broken or injected command."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.builds import NEW, OLD, run, two_builds
from slimguard.cli.github import command, escape_data, escape_property

POLICY = """\
apiVersion: slimguard.dev/v1alpha1
kind: ImagePolicy
metadata: {name: no-bloat}
spec:
  mode: %s
  match: {images: ["registry.example.com/shop/*"]}
  rules:
    maxGrowthBytes: 64Ki
"""


def test_data_escapes_percent_and_line_breaks_and_nothing_else() -> None:
    assert escape_data("50% of a:b,c\r\nnext") == "50%25 of a:b,c%0D%0Anext"


def test_a_property_also_escapes_colon_and_comma() -> None:
    assert escape_property("registry.example.com:5000/a:1,x%\n") == "registry.example.com%3A5000/a%3A1%2Cx%25%0A"


def test_a_command_is_one_line_however_its_text_is_made() -> None:
    made = command("error", "two\nlines ::warning::forged", title="a,b:c", file=None, line=3)
    assert made == "::error title=a%2Cb%3Ac,line=3::two%0Alines ::warning::forged"
    assert "\n" not in made
    assert command("notice", "plain") == "::notice::plain"


@pytest.fixture
def archive(tmp_path: Path) -> str:
    return two_builds(tmp_path)


@pytest.mark.parametrize(("mode", "level", "code"), [("Enforce", "error", 1), ("Warn", "warning", 0)])
def test_check_annotates_each_finding_at_its_policy_modes_level_titled_by_rule_and_image(
    archive: str, tmp_path: Path, mode: str, level: str, code: int
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY % mode)
    exit_code, out, _ = run(
        "check", "--input", archive, NEW, "--measure-compressed", "-p", str(policy), "--baseline", OLD, "-f", "github"
    )
    assert exit_code == code
    annotation, summary = out.strip().splitlines()
    title = "slimguard maxGrowthBytes%3A registry.example.com/shop/app%3A1.1"
    assert annotation.startswith(f"::{level} title={title}::{NEW}: image {NEW} grew ")
    assert "RUN apt-get install -y gcc-12" in annotation
    assert annotation.endswith(f"(ImagePolicy no-bloat, {'denied' if mode == 'Enforce' else 'warned'})")
    assert summary.startswith(f"slimguard check: {NEW}: ")


def test_lint_annotates_each_finding_at_its_dockerfile_line(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian:12\nRUN apt-get update\nRUN apt-get install -y curl\n")
    code, out, _ = run("lint", str(dockerfile), "-f", "github")
    lines = out.strip().splitlines()
    annotations = [line for line in lines if line.startswith("::")]
    assert annotations, out
    for line in annotations:
        level, _, rest = line[2:].partition(" ")
        assert level in {"error", "warning", "notice"}
        assert rest.startswith(f"file={escape_property(str(dockerfile))},line=")
        assert ",title=slimguard SG1" in rest
    assert lines[-1] == f"slimguard lint: {dockerfile}: {len(annotations)} finding(s)"
    assert code == (1 if any(line.startswith("::error") for line in annotations) else 0)


def test_diff_gives_notices_only_the_size_change_and_the_layer_added(archive: str) -> None:
    code, out, _ = run("diff", "--input", archive, OLD, NEW, "--measure-compressed", "-f", "github")
    assert code == 0
    size, layer = out.strip().splitlines()
    title = "slimguard diff linux/amd64%3A registry.example.com/shop/app%3A1.1"
    assert size.startswith(f"::notice title={title}::compressed ")
    assert "layers 2 → 3" in size
    assert layer.startswith(f"::notice title={title}::layer 2 added (+")
    assert layer.endswith("RUN apt-get install -y gcc-12")


def test_inspect_offers_no_annotations() -> None:
    code, _, err = run("inspect", "registry.example.com/shop/app:1.1", "-f", "github")
    assert code == 2
    assert "'github' is not one of" in " ".join(err.split())
