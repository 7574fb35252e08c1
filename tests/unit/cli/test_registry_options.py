"""The registry options are declared once and reach every command as one RegistrySettings."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from slimguard.cli.main import app, with_registry_options
from slimguard.controller import handlers
from slimguard.controller.settings import ControllerSettings
from slimguard.registry.settings import RegistrySettings

PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")


def test_a_command_gets_the_registry_options_as_settings() -> None:
    seen: list[tuple[RegistrySettings, int]] = []
    probe = typer.Typer()

    @probe.command()
    @with_registry_options
    def check(registry_settings: RegistrySettings, workers: int = 1) -> None:
        seen.append((registry_settings, workers))

    result = CliRunner().invoke(
        probe,
        ["--workers", "3", "--allow-loopback-registries", "--registry", "127.0.0.1:*", "--registry", "[::1]:*"],
    )
    assert result.exit_code == 0, result.output
    ((settings, workers),) = seen
    assert workers == 3
    assert settings.address_policy.allow_loopback
    assert not settings.address_policy.allow_private
    assert settings.address_policy.allowed_registries == ("127.0.0.1:*", "[::1]:*")


def test_every_command_that_reads_a_registry_offers_them() -> None:
    for command in ("controller", "webhook", "check", "inspect", "diff"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
        assert result.exit_code == 0
        for option in (
            "--allow-loopback-registries",
            "--allow-private-registries",
            "--registry",
            "--ca-file",
            "--https-proxy",
            "--http-proxy",
            "--no-proxy",
            "--image-credential-provider-config",
            "--image-credential-provider-bin-dir",
        ):
            assert option in result.output, (command, option)


def invoke(
    argv: list[str], env: dict[str, str] | None = None, *, server: bool = False
) -> tuple[Result, RegistrySettings | None]:
    """A command given the registry options (``server``: a long-running one's too), run with ``argv``: its result
    and the settings it got (None: it did not run)."""
    seen: list[RegistrySettings] = []
    probe = typer.Typer()

    @probe.command()
    @functools.partial(with_registry_options, server=server)
    def check(registry_settings: RegistrySettings) -> None:
        seen.append(registry_settings)

    result = CliRunner().invoke(probe, argv, env=env)
    return result, (seen[0] if seen else None)


def probe_settings(argv: list[str], env: dict[str, str] | None = None, *, server: bool = False) -> RegistrySettings:
    result, settings = invoke(argv, env, server=server)
    assert result.exit_code == 0, result.output
    assert settings is not None
    return settings


def test_the_tag_ttl_and_its_longest_staleness_are_options_of_the_servers_alone() -> None:
    default = probe_settings([], server=True)
    chosen = probe_settings(["--tag-ttl", "60", "--tag-max-stale", "0"], server=True)
    assert (default.tag_ttl_seconds, default.tag_max_stale_seconds) == (120, 300)
    assert (chosen.tag_ttl_seconds, chosen.tag_max_stale_seconds) == (60, 0)
    assert chosen.tag_refresh_after_seconds == 45, "refreshed ahead of a TTL shorter than the default refresh"
    refused, _ = invoke(["--tag-max-stale", "-1"], server=True)
    assert refused.exit_code != 0
    one_shot, _ = invoke(["--tag-ttl", "60"])  # a CI command resolves each tag once: no TTL to set
    assert one_shot.exit_code == 2
    assert probe_settings([]).tag_ttl_seconds == 120


def test_the_kubelets_credential_provider_flags_are_read_and_validated_at_start(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n"
        "  - {name: ecr-credential-provider, matchImages: ['*.dkr.ecr.*.amazonaws.com'], defaultCacheDuration: 12h,"
        " apiVersion: credentialprovider.kubelet.k8s.io/v1}\n"
    )
    flags = ["--image-credential-provider-config", str(config), "--image-credential-provider-bin-dir", str(tmp_path)]
    given, default = probe_settings(flags), probe_settings([])
    assert given.credential_providers is not None
    assert [provider.name for provider in given.credential_providers.providers] == ["ecr-credential-provider"]
    assert default.credential_providers is None

    config.write_text(config.read_text().replace("defaultCacheDuration: 12h", "defaultCacheDuration: 12 hours"))
    refused, ran = invoke(flags)
    assert (refused.exit_code, ran) == (2, None)
    assert refused.output.strip() == (
        f"slimguard: error: {config}: providers[0] (ecr-credential-provider).defaultCacheDuration: invalid duration "
        "'12 hours' (a Go duration: 12h, 1m30s, 500ms)"
    )
    alone, ran = invoke(flags[:2])
    assert (alone.exit_code, ran) == (2, None)
    assert "--image-credential-provider-config and --image-credential-provider-bin-dir go together" in alone.output


@pytest.fixture
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "SLIMGUARD_HTTPS_PROXY", "SLIMGUARD_HTTP_PROXY", "SLIMGUARD_NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_proxy_environment")
def test_the_proxy_options_reach_the_registry_settings_and_fall_back_to_the_standard_variables() -> None:
    given = probe_settings(
        ["--https-proxy", "http://proxy.example:3128", "--no-proxy", ".svc,10.0.0.0/8", "--no-proxy", "registry.local"]
    ).proxy
    assert (given.https_proxy, given.http_proxy) == ("http://proxy.example:3128", None)
    assert given.no_proxy == (".svc", "10.0.0.0/8", "registry.local")

    from_environment = probe_settings([], env={"HTTPS_PROXY": "http://env.example:3128", "NO_PROXY": ".corp"}).proxy
    assert (from_environment.https_proxy, from_environment.no_proxy) == ("http://env.example:3128", (".corp",))

    # slimguard's own variables (a password kept in a Secret, without HTTPS_PROXY in the Pod) are the options.
    own = probe_settings([], env={"SLIMGUARD_HTTPS_PROXY": "http://own.example:3128", "HTTPS_PROXY": "http://x:1"})
    assert own.proxy.https_proxy == "http://own.example:3128"
    assert probe_settings(["--https-proxy", ""], env={"HTTPS_PROXY": "http://x:1"}).proxy.https_proxy is None
    # As the kustomize component sets them: one variable, a comma-separated list.
    assert probe_settings([], env={"SLIMGUARD_NO_PROXY": ".svc,10.0.0.0/8"}).proxy.no_proxy == (".svc", "10.0.0.0/8")


@pytest.mark.usefixtures("no_proxy_environment")
def test_the_controller_gets_the_proxy_and_says_so_once_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[ControllerSettings] = []
    monkeypatch.setattr(handlers, "run", started.append)  # the command's last step; nothing is started
    argv = ["controller", "--no-leader-elect", "--https-proxy", "http://user:s3cret@proxy.example:3128"]
    result = CliRunner().invoke(app, [*argv, "--no-proxy", "10.0.0.0/8"])
    assert result.exit_code == 0, result.output
    (settings,) = started
    assert settings.registry.proxy.https_proxy == "http://user:s3cret@proxy.example:3128"
    assert "https_proxy=http://***@proxy.example:3128 http_proxy=none no_proxy=10.0.0.0/8" in settings.describe()
