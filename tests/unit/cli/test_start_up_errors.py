"""A bad start-up value is one line naming it and exit 2, before anything starts (the kubelet shows a crash loop)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimguard.cli.main import app


def error_lines(argv: list[str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, argv)
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("command", [["controller"], ["webhook", "--tls-cert-file", "c", "--tls-key-file", "k"]])
def test_a_missing_ca_file_stops_the_operator_commands_naming_it(command: list[str]) -> None:
    code, lines = error_lines([*command, "--ca-file", "/nonexistent/registry-ca.crt"])
    assert code == 2
    assert lines == [
        "slimguard: error: --ca-file /nonexistent/registry-ca.crt cannot be read: No such file or directory"
    ]


def test_the_ci_commands_refuse_it_the_same_way(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: slimguard.dev/v1alpha1\nkind: ImagePolicy\n")
    code, lines = error_lines(["check", "--ca-file", str(tmp_path), "--policy", str(policy), "example.com/app:1"])
    assert code == 2
    assert lines == [f"slimguard: error: --ca-file {tmp_path} cannot be read: Is a directory"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["webhook", "--tls-cert-file", "c", "--tls-key-file", "k", "--path", "validate"], "--path 'validate'"),
        (["controller", "--liveness", "http://[::]/healthz"], "--liveness 'http://[::]/healthz'"),
        (["controller", "--log-level", "verbose"], "--log-level 'verbose'"),
        (["controller", "--workers", "0"], "--workers"),
        (["controller", "--leader-elect-renew-deadline", "10"], "--leader-elect-lease-duration"),
        (["controller", "--leader-elect-retry-period", "6"], "--leader-elect-renew-deadline"),
        (["controller", "--https-proxy", "socks5://127.0.0.1:1080"], "--https-proxy 'socks5://127.0.0.1:1080'"),
        (["webhook", "--tls-cert-file", "c", "--tls-key-file", "k", "--no-proxy", "a/b/c"], "--no-proxy"),
        (
            ["webhook", "--tls-cert-file", "c", "--tls-key-file", "k", "--decision-times", "/nonexistent/times.txt"],
            "--decision-times /nonexistent/times.txt",
        ),
        (["check", "--http-proxy", "http://p:1/x", "--policy", "p.yaml", "example.com/app:1"], "--http-proxy"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(argv: list[str], named: str) -> None:
    code, lines = error_lines(argv)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("slimguard: error: ")
    assert named in lines[0]
