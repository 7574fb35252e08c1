"""One version, written once (`slimguard.__version__`), read by the package, the CLI and the metrics."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from slimguard import __version__, metrics
from slimguard.cli.main import app


def test_slimguard_version_names_the_program_and_its_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"slimguard {__version__}\n"


def test_the_version_command_prints_the_number_alone_for_scripts() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{__version__}\n"


def test_the_package_metadata_reads_the_version_from_the_package(repo_root: Path) -> None:
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"], "the version is written in slimguard/__init__.py only"
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "slimguard.__version__"}


def test_build_info_reports_the_same_version() -> None:
    assert __version__ == metrics.VERSION
