"""`slimguard controller --policy-reports`: Kyverno's API by default, OpenReports on request, or none at all."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slimguard.cli.main import app
from slimguard.controller import handlers
from slimguard.controller.settings import ControllerSettings


def settings_from(monkeypatch: pytest.MonkeyPatch, *argv: str) -> ControllerSettings:
    started: list[ControllerSettings] = []
    monkeypatch.setattr(handlers, "run", started.append)  # the command's last step; nothing is started
    result = CliRunner().invoke(app, ["controller", *argv])
    assert result.exit_code == 0, result.output
    (settings,) = started
    return settings


def test_reports_are_written_as_kyverno_writes_them_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from(monkeypatch).policy_reports == "wgpolicyk8s.io"
    assert settings_from(monkeypatch, "--policy-reports", "openreports.io").policy_reports == "openreports.io"
    assert settings_from(monkeypatch, "--policy-reports", "none").policy_reports is None


def test_an_unknown_report_api_is_refused_at_start_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"--policy-reports must be one of wgpolicyk8s\.io, openreports\.io or none"):
        ControllerSettings(policy_reports="reports.example.com")
