"""The composite GitHub Action (``action.yml``): valid action metadata (SchemaStore's schema, vendored), every input
declared and used, scripts that pass shellcheck and take inputs only through the environment, and the script
itself run as the runner runs it, on two builds in an archive, with the real slimguard.

actionlint checks the action's use (``.github/workflows/slimguard-action.yml``, in ``make lint``): it checks
workflows, not an action's own metadata, hence the schema here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cli.builds import NEW, OLD, growth_policy, two_builds

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "action.yml").read_text())
SCHEMA = json.loads((REPO / "tests" / "schemas" / "github-action.json").read_text())
SCRIPTS = [step["run"] for step in ACTION["runs"]["steps"] if "run" in step]


def test_action_yml_is_valid_action_metadata() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(ACTION)
    assert ACTION["runs"]["using"] == "composite"


def test_the_schema_refuses_what_github_refuses() -> None:
    broken = {**ACTION, "runs": {"using": "composite", "steps": [{"run": "true"}]}}  # a run step needs its shell
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_every_input_is_declared_and_used() -> None:
    text = (REPO / "action.yml").read_text()
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", text))
    assert used == set(ACTION["inputs"])


def test_scripts_take_inputs_through_the_environment_only() -> None:
    """An expression inside run: is pasted into the script before bash reads it: an image name could inject code."""
    for script in SCRIPTS:
        assert "${{" not in script


@pytest.mark.parametrize("index", range(len(SCRIPTS)))
def test_each_script_passes_shellcheck(index: int, tmp_path: Path) -> None:
    script = tmp_path / "step.sh"
    script.write_text(SCRIPTS[index])
    result = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_the_actionlint_version_is_one_across_make_bootstrap_and_the_suite() -> None:
    make = re.search(r"^export ACTIONLINT_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    bootstrap = re.search(r"ACTIONLINT_VERSION:-(v[\d.]+)", (REPO / "scripts" / "bootstrap.sh").read_text())
    suite = re.search(r'ACTIONLINT = \("[^"]+", "(v[\d.]+)"\)', (REPO / "tests" / "e2e" / "conftest.py").read_text())
    assert make is not None
    assert bootstrap is not None
    assert suite is not None
    assert make[1] == bootstrap[1] == suite[1]


def run_step(tmp_path: Path, **inputs: str) -> tuple[int, str, dict[str, str]]:
    """The check step's script as the runner runs it: inputs as its env, GITHUB_OUTPUT a file, slimguard on PATH."""
    (main,) = [step for step in ACTION["runs"]["steps"] if step.get("id") == "slimguard"]
    env_names = {name: value.split("inputs.")[1].rstrip("} ") for name, value in main["env"].items()}
    defaults = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    values = {**defaults, **inputs}
    output = tmp_path / "github_output"
    output.write_text("")
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "slimguard").exists()
    env = {
        **os.environ,
        **{name: values[input_name] for name, input_name in env_names.items()},
        "GITHUB_OUTPUT": str(output),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO / "operator"),
    }
    result = subprocess.run(
        [shutil.which("bash") or "bash", "-c", main["run"]],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120,
    )  # fmt: skip
    outputs: dict[str, Any] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return result.returncode, result.stdout + result.stderr, outputs


def test_the_step_fails_on_growth_with_annotations_and_lints_the_dockerfile(tmp_path: Path) -> None:
    archive = two_builds(tmp_path)
    (tmp_path / "policy.yaml").write_text(growth_policy("maxGrowthBytes: 64Ki"))
    (tmp_path / "Dockerfile").write_text("FROM debian:12\nRUN apt-get update\n")
    code, out, outputs = run_step(
        tmp_path, image=NEW, policy="policy.yaml", baseline=OLD, diff="true",
        **{"check-args": f"--input {archive} --measure-compressed"},
    )  # fmt: skip
    assert code == 1, out
    assert outputs == {"status": "1"}
    assert re.search(r"^::\w+ file=Dockerfile,line=\d+,title=slimguard SG1", out, re.M), out
    assert "::error title=slimguard maxGrowthBytes%3A registry.example.com/shop/app%3A1.1::" in out
    assert re.search(r"^::notice title=slimguard diff linux/amd64.*::layer 2 added", out, re.M), out


def test_the_step_passes_within_the_allowance_and_writes_sarif_reports(tmp_path: Path) -> None:
    archive = two_builds(tmp_path)
    (tmp_path / "policy.yaml").write_text(growth_policy("maxGrowthBytes: 1Mi"))
    code, out, outputs = run_step(
        tmp_path, image=NEW, policy="policy.yaml", baseline=OLD, diff="true", format="sarif",
        **{"check-args": f"--input {archive} --measure-compressed"},
    )  # fmt: skip
    assert code == 0, out
    assert outputs == {"status": "0"}
    assert sorted(path.name for path in (tmp_path / "slimguard-reports").iterdir()) == ["check.sarif", "diff.sarif"]


def test_a_format_the_action_does_not_know_is_an_annotated_error(tmp_path: Path) -> None:
    code, out, _ = run_step(tmp_path, image=NEW, policy="policy.yaml", format="xml")
    assert code == 2
    assert "::error title=slimguard action::format must be github, table, sarif or json, not xml" in out
