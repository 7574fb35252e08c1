"""`pip install slimguard` is the CLI alone; a command that needs the operator's dependencies names the extra."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import typer

from slimguard.cli.main import OPERATOR_EXTRA_MODULES, operator_extra


@pytest.mark.parametrize("missing", ["kopf", "kubernetes.config", "prometheus_client", "aiohttp", "cryptography.x509"])
def test_a_missing_operator_dependency_is_one_line_naming_the_extra(
    missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as exited, operator_extra("slimguard controller"):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
    assert exited.value.exit_code == 2
    top_level = missing.partition(".")[0]
    assert capsys.readouterr().err == (
        f"slimguard: error: slimguard controller needs {top_level}, which `pip install slimguard` leaves out: "
        "pip install 'slimguard[operator]'\n"
    )


def test_any_other_missing_module_is_a_bug_and_raised_as_is() -> None:
    with pytest.raises(ModuleNotFoundError, match="httpx"), operator_extra("slimguard check --cluster"):
        raise ModuleNotFoundError("No module named 'httpx'", name="httpx")


def normalised(distribution: str) -> str:
    """PEP 503: prometheus_client, Prometheus-Client and prometheus-client are one project."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_the_modules_named_are_those_the_operator_extra_installs(repo_root: Path) -> None:
    extra = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["operator"]
    distributions = {normalised(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]) for requirement in extra}
    installed_by = packages_distributions()
    assert {normalised(installed_by[module][0]) for module in OPERATOR_EXTRA_MODULES} == distributions
