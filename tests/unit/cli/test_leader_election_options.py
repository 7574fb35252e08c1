"""`slimguard controller --leader-elect`: on by default, as for Kubernetes' own controllers, on a Lease in the
Pod's namespace; off on request, and always off for a dry run (it writes nothing, so it must not take the lease
from the controller that does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
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


def test_replicas_elect_a_leader_by_default_on_a_lease_in_the_pods_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "slimguard")
    monkeypatch.setenv("POD_ID", "slimguard-controller-7d9f-abcde")
    election = settings_from(monkeypatch).leader_election
    assert election is not None
    assert (election.namespace, election.name) == ("slimguard", "slimguard-controller")
    assert (election.lease_duration, election.renew_deadline, election.retry_period) == (10, 7, 2)
    # The Pod's name and a random suffix: a restarted container is another candidate.
    assert election.identity.startswith("slimguard-controller-7d9f-abcde_")
    assert settings_from(monkeypatch).leader_election.identity != election.identity  # type: ignore[union-attr]


def test_the_lease_is_named_and_placed_as_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "slimguard")
    election = settings_from(
        monkeypatch, "--leader-elect-resource-name", "sg", "--leader-elect-resource-namespace", "ops"
    ).leader_election
    assert election is not None
    assert (election.namespace, election.name) == ("ops", "sg")


def test_outside_a_pod_the_lease_is_in_the_kubeconfigs_namespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "team-ops"}}],
                "current-context": "x",
            }
        )
    )
    election = settings_from(monkeypatch, "--kubeconfig", str(kubeconfig)).leader_election
    assert election is not None
    assert election.namespace == "team-ops"


def test_no_election_when_turned_off_or_for_a_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "slimguard")
    assert settings_from(monkeypatch, "--no-leader-elect").leader_election is None
    assert settings_from(monkeypatch, "--dry-run").leader_election is None
    assert "leader_election=off" in settings_from(monkeypatch, "--dry-run").describe()
