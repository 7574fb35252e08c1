"""The webhook's certificate options: files, or a certificate of its own (--certificate-secret), never both, never
neither; what self-management needs is named when missing, before anything starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slimguard.cli.main import app

SELF_MANAGED = [
    "--certificate-secret", "slimguard-webhook-tls", "--namespace", "slimguard",
    "--service", "slimguard-webhook", "--webhook-configuration", "slimguard",
]  # fmt: skip


def error_lines(argv: list[str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["webhook", *argv], env={"POD_NAMESPACE": ""})
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "the apiserver only calls HTTPS: give --tls-cert-file and --tls-key-file, or --certificate-secret"),
        (["--tls-cert-file", "c"], "the apiserver only calls HTTPS"),
        (
            [*SELF_MANAGED, "--tls-cert-file", "c", "--tls-key-file", "k"],
            "--certificate-secret and --tls-cert-file/--tls-key-file exclude each other",
        ),
        (SELF_MANAGED[:4] + SELF_MANAGED[6:], "--service is required with --certificate-secret"),
        (SELF_MANAGED[:-2], "--webhook-configuration is required with --certificate-secret"),
        (
            ["--certificate-secret", "s", "--service", "svc", "--webhook-configuration", "w"],
            "--namespace (or $POD_NAMESPACE) is required with --certificate-secret",
        ),
        (
            [*SELF_MANAGED, "--ca-overlap", "15"],
            "--ca-overlap (15 s) must be at least twice --cert-reload-interval (10 s)",
        ),
        (
            [*SELF_MANAGED, "--cert-reload-interval", "1", "--ca-trust-delay", "1"],
            "--ca-trust-delay (1 s) must be at least twice --cert-reload-interval (1 s)",
        ),
    ],
)
def test_certificate_options_that_cannot_work_are_one_line(argv: list[str], said: str) -> None:
    code, lines = error_lines(argv)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("slimguard: error: ")
    assert said in lines[0]
