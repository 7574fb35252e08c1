"""Help that reads at 80 columns and offers each command only the options it uses."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slimguard.cli.main import app

COMMANDS = ("check", "diff", "inspect", "lint", "controller", "webhook", "version")


def help_of(command: str, columns: int = 80) -> str:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": str(columns), "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("columns", [80, 200])
def test_no_help_line_is_wider_than_80_columns(command: str, columns: int) -> None:
    lines = help_of(command, columns).splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)


@pytest.mark.parametrize("command", ["check", "diff", "inspect", "lint"])
def test_every_ci_option_is_named_in_full_with_a_meaningful_metavar(command: str) -> None:
    """The CI commands, typed by people; the servers' options are set by the chart and keep typer's types."""
    text = help_of(command)
    assert "…" not in text  # nothing cut
    assert "<str>" not in text
    assert "<list[str]>" not in text


@pytest.mark.parametrize(
    ("command", "offered", "not_offered"),
    [
        ("check", ["--quiet", "--timeout DURATION", "--baseline-from-cluster KIND/NAME", "--measure-compressed"],
         ["--tag-ttl", "--tag-max-stale", "--no-measure-compressed", "--no-strict", "--content"]),
        ("diff", ["--quiet", "--timeout DURATION", "--content", "--uncompressed", "--platform OS/ARCH"],
         ["--tag-ttl", "--policy", "--strict", "--baseline", "--cluster"]),
        ("inspect", ["--quiet", "--timeout DURATION", "--content", "-f, --format FORMAT"],
         ["--tag-ttl", "--strict", "--baseline", "--cluster"]),
        ("lint", ["--build-arg NAME=VALUE", "--strict"],
         ["--quiet", "--timeout", "--registry", "--docker", "--kubeconfig"]),
        ("controller", ["--tag-ttl SECONDS", "--tag-max-stale SECONDS"], ["--quiet", "--timeout", "--format"]),
        ("webhook", ["--tag-ttl SECONDS"], ["--quiet", "--timeout", "--format"]),
    ],
)  # fmt: skip
def test_each_command_offers_only_the_options_it_uses(command: str, offered: list[str], not_offered: list[str]) -> None:
    text = help_of(command, 200)
    for option in offered:
        assert option in text, option
    for option in not_offered:
        assert f"{option} " not in text, option
        assert f"{option}\n" not in text, option
