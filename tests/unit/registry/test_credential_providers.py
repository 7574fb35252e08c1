"""Exec credential providers run as the kubelet runs them: the test bed's real provider (a process speaking
credentialprovider.kubelet.k8s.io/v1 on stdin and stdout) started from a bin directory, its answers kept as its
cacheKeyType and cacheDuration say (the clock injected), and every way a provider fails said, naming it."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from manual_clock import Clock

from slimguard.registry.credential_providers import CredentialProviders, ProvidedCredentials
from slimguard.registry.provider_config import load_credential_providers
from slimguard_testbed.credential_provider import ProviderEntry, install, write_config, write_credentials

REGISTRY = "127.0.0.1:5000"
IMAGE = f"{REGISTRY}/private/app"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def entry(tmp_path: Path) -> ProviderEntry:
    credentials = write_credentials(tmp_path / "credentials.json", "slimguard", "s3cret")
    return ProviderEntry("testbed", (REGISTRY,), credentials, tmp_path / "calls.log")


def started(
    tmp_path: Path, *entries: ProviderEntry, clock: Clock | None = None, timeout: float = 60, installed: bool = True
) -> CredentialProviders:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for each in entries:
        if installed:
            install(bin_dir, each.name)
    path = write_config(tmp_path / "config.json", entries)
    return CredentialProviders(
        load_credential_providers(str(path), str(bin_dir)), clock=clock or Clock(), timeout=timeout
    )


def users(provided: ProvidedCredentials) -> list[tuple[str, str, str]]:
    return [(c.location, c.username, c.password) for c in provided.credentials]


async def test_a_matching_image_gets_the_providers_credentials_for_its_registry(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    providers = started(tmp_path, entry)
    provided = await providers.lookup(IMAGE)
    assert users(provided) == [(REGISTRY, "slimguard", "s3cret")]
    assert provided.credentials[0].source == "credential provider testbed"
    assert provided.failures == ()
    assert entry.runs() == [IMAGE]  # the image asked for is registry/repository, as the kubelet sends it


async def test_an_image_no_provider_matches_runs_nothing(tmp_path: Path, entry: ProviderEntry) -> None:
    providers = started(tmp_path, entry)
    assert await providers.lookup("127.0.0.1:5001/private/app") == ProvidedCredentials()
    assert providers.cached("ghcr.io/team/app") == ProvidedCredentials()
    assert entry.runs() == []


async def test_an_answer_for_another_host_gives_the_image_nothing(tmp_path: Path, entry: ProviderEntry) -> None:
    providers = started(tmp_path, replace(entry, auth_key="127.0.0.2:5000"))
    assert (await providers.lookup(IMAGE)).credentials == ()


async def test_the_configured_env_and_args_reach_the_provider(tmp_path: Path, entry: ProviderEntry) -> None:
    # The calls file is named by the configuration's env; the credentials file and the key by its args.
    providers = started(tmp_path, replace(entry, auth_key=f"{REGISTRY}/private"))
    assert users(await providers.lookup(IMAGE)) == [(f"{REGISTRY}/private", "slimguard", "s3cret")]
    assert entry.calls.read_text() == f"{IMAGE}\n"


async def test_a_registry_answer_serves_every_image_of_the_registry_until_it_expires(
    tmp_path: Path, entry: ProviderEntry, clock: Clock
) -> None:
    providers = started(tmp_path, replace(entry, cache_key_type="Registry", cache_duration="30s"), clock=clock)
    await providers.lookup(IMAGE)
    clock.now += 29
    assert providers.cached(f"{REGISTRY}/private/other") is not None
    await providers.lookup(f"{REGISTRY}/private/other")
    assert len(entry.runs()) == 1
    clock.now += 2
    assert providers.cached(IMAGE) is None  # expired: a lookup must run the provider again
    await providers.lookup(f"{REGISTRY}/private/other")
    assert entry.runs() == [IMAGE, f"{REGISTRY}/private/other"]


async def test_an_image_answer_serves_that_image_only(tmp_path: Path, entry: ProviderEntry, clock: Clock) -> None:
    providers = started(tmp_path, replace(entry, cache_key_type="Image", cache_duration="1h"), clock=clock)
    await providers.lookup(IMAGE)
    await providers.lookup(IMAGE)
    await providers.lookup(f"{REGISTRY}/private/other")
    assert entry.runs() == [IMAGE, f"{REGISTRY}/private/other"]


async def test_a_global_answer_serves_every_matching_image(tmp_path: Path, entry: ProviderEntry, clock: Clock) -> None:
    providers = started(
        tmp_path, replace(entry, match_images=(REGISTRY, "localhost:5000"), cache_key_type="Global"), clock=clock
    )
    await providers.lookup(IMAGE)
    assert providers.cached("localhost:5000/private/app") is not None
    assert len(entry.runs()) == 1


async def test_without_a_cache_duration_the_default_holds_and_zero_keeps_nothing(
    tmp_path: Path, entry: ProviderEntry, clock: Clock
) -> None:
    defaulted = started(tmp_path, replace(entry, default_cache_duration="10s"), clock=clock)
    await defaulted.lookup(IMAGE)
    clock.now += 9
    assert defaulted.cached(IMAGE) is not None
    clock.now += 2
    assert defaulted.cached(IMAGE) is None

    uncached = started(tmp_path, replace(entry, cache_duration="0s"), clock=clock)
    await uncached.lookup(IMAGE)
    assert uncached.cached(IMAGE) is None
    await uncached.lookup(IMAGE)
    assert len(entry.runs()) == 3


async def test_concurrent_lookups_of_one_image_share_one_run(tmp_path: Path, entry: ProviderEntry) -> None:
    providers = started(tmp_path, replace(entry, cache_duration="0s"))
    answers = await asyncio.gather(*(providers.lookup(IMAGE) for _ in range(5)))
    assert all(users(answer) == [(REGISTRY, "slimguard", "s3cret")] for answer in answers)
    assert len(entry.runs()) == 1


@pytest.mark.parametrize(
    ("behave", "said"),
    [
        ("exit", "credential provider testbed exited with status 3 for 127.0.0.1:5000/private/app: the registry's "
         "token service refused the provider: AccessDenied"),
        ("garbage", "credential provider testbed printed no JSON for 127.0.0.1:5000/private/app"),
        ("wrong-api-version", "credential provider testbed answered apiVersion "
         "'credentialprovider.kubelet.k8s.io/v1beta1' for 127.0.0.1:5000/private/app; its configuration says "
         "credentialprovider.kubelet.k8s.io/v1"),
        ("bad-cache-key-type", "credential provider testbed answered cacheKeyType 'Forever' for "
         "127.0.0.1:5000/private/app, not one of Image, Registry, Global"),
    ],
)  # fmt: skip
async def test_a_failing_provider_gives_no_credentials_and_says_why_naming_itself(
    tmp_path: Path, entry: ProviderEntry, behave: str, said: str
) -> None:
    providers = started(tmp_path, replace(entry, behave=behave))
    provided = await providers.lookup(IMAGE)
    assert provided.credentials == ()
    (failure,) = provided.failures
    assert failure.provider == "testbed"
    assert failure.message.startswith(said), failure.message
    assert "s3cret" not in failure.message


async def test_a_missing_binary_is_a_failure_naming_its_path(tmp_path: Path, entry: ProviderEntry) -> None:
    providers = started(tmp_path, entry, installed=False)
    assert providers.warnings() == [
        f"credential provider testbed: {tmp_path}/bin/testbed is missing or not executable; images matching "
        f"['{REGISTRY}'] get an error finding naming it until it is"
    ]
    (failure,) = (await providers.lookup(IMAGE)).failures
    assert failure.message == f"credential provider testbed has no binary {tmp_path}/bin/testbed " + (
        "(--image-credential-provider-bin-dir)"
    )


async def test_a_binary_that_is_not_executable_is_a_failure(tmp_path: Path, entry: ProviderEntry) -> None:
    providers = started(tmp_path, entry)
    (tmp_path / "bin" / "testbed").chmod(0o644)
    (failure,) = (await providers.lookup(IMAGE)).failures
    assert failure.message == f"credential provider testbed cannot be run: {tmp_path}/bin/testbed is not executable"


async def test_a_provider_that_hangs_is_stopped_at_the_timeout(tmp_path: Path, entry: ProviderEntry) -> None:
    providers = started(tmp_path, replace(entry, behave="hang"), timeout=1.5)
    (failure,) = (await providers.lookup(IMAGE)).failures
    assert failure.message == (
        "credential provider testbed gave no answer for 127.0.0.1:5000/private/app within 1.5 s and was stopped"
    )


async def test_a_failure_is_remembered_briefly_then_the_provider_is_run_again(
    tmp_path: Path, entry: ProviderEntry, clock: Clock
) -> None:
    providers = started(tmp_path, replace(entry, behave="exit"), clock=clock)
    await providers.lookup(IMAGE)
    cached = providers.cached(IMAGE)
    assert cached is not None
    assert cached.failures
    clock.now += 16
    assert providers.cached(IMAGE) is None
    await providers.lookup(IMAGE)
    assert len(entry.runs()) == 2


async def test_an_answer_too_large_or_not_a_response_is_refused(tmp_path: Path, entry: ProviderEntry) -> None:
    providers = started(tmp_path, entry)
    binary = tmp_path / "bin" / "testbed"
    binary.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.read()\nsys.stdout.write('x' * (2 << 20))\n")
    (failure,) = (await providers.lookup(IMAGE)).failures
    assert "printed more than 1048576 bytes" in failure.message

    unknown = '{"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderResponse", '
    unknown += '"cacheKeyType": "Image", "auth": {"x": {"username": "u", "password": "hunter2", "token": "t"}}}'
    binary.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.read()\nprint({unknown!r})\n")
    (failure,) = (await started(tmp_path, entry, installed=False).lookup(IMAGE)).failures
    assert "cannot be decoded: auth.x.token (unknown field)" in failure.message
    assert "hunter2" not in failure.message


async def test_a_provider_asking_for_service_account_tokens_is_not_run(tmp_path: Path, entry: ProviderEntry) -> None:
    token = {"serviceAccountTokenAudience": "sts.amazonaws.com", "cacheType": "ServiceAccount"}
    providers = started(tmp_path, replace(entry, extra={"tokenAttributes": {**token, "requireServiceAccount": True}}))
    (failure,) = (await providers.lookup(IMAGE)).failures
    assert "tokenAttributes" in failure.message
    assert "which slimguard does not request" in failure.message
    assert entry.runs() == []


async def test_two_providers_answers_are_merged_in_the_keyring_order(tmp_path: Path, entry: ProviderEntry) -> None:
    first = replace(entry, name="first", auth_key=REGISTRY)
    second = replace(entry, name="second", auth_key=f"{REGISTRY}/private")
    provided = await started(tmp_path, first, second).lookup(IMAGE)
    assert [(c.location, c.source) for c in provided.credentials] == [
        (f"{REGISTRY}/private", "credential provider second"),
        (REGISTRY, "credential provider first"),
    ]
