"""Images read with the credentials the kubelet pulls them with: the workload's pull secrets first, then the
credential providers', each tried while the registry refuses the one before; a provider that failed is named when
the image could not be read. The registry here is a dict that accepts some users per image; the provider is the
test bed's real exec provider."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from core.builders import MiB, facts, layers, platform_image

from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.model.reference import ImageReference
from slimguard.engine.kubelet_keyring import KubeletKeyring
from slimguard.registry.credential_providers import CredentialProviders
from slimguard.registry.credentials import Credential, credentials_for
from slimguard.registry.provider_config import load_credential_providers
from slimguard_testbed.credential_provider import ProviderEntry, install, write_config, write_credentials

REGISTRY = "127.0.0.1:5000"
IMAGE = f"{REGISTRY}/private/app:1.0"
NEEDS = FactsNeeds(frozenset())
FACTS = facts(platform_image(*layers("app", 2, MiB)))
STALE_SECRET = Credential(location=REGISTRY, username="ci", password="expired")


class Registry:
    """A facts source over a dict: each image readable by some users (None: anonymously), every try recorded."""

    def __init__(self, readers: dict[str, set[str | None]], *, missing: Sequence[str] = ()) -> None:
        self.readers = readers
        self.missing = set(missing)
        self.tries: list[str | None] = []
        self.memory: dict[tuple[str, str | None], ImageFacts | InspectionError] = {}

    def _read(self, image: str, credentials: Sequence[Credential]) -> ImageFacts:
        assert len(credentials) <= 1, "one credential a try, as the kubelet tries them"
        # As the registry inspector picks the credential it sends: the first that matches the image, by its rules.
        credentials = credentials_for(ImageReference.parse(image), credentials)[:1]
        user = credentials[0].username if credentials else None
        self.tries.append(user)
        if image in self.missing:
            error = InspectionError(f"registry has no {image}", reason=InspectionReason.IMAGE_NOT_FOUND)
        elif user not in self.readers.get(image, set()):
            how = f"with {credentials[0].describe()}" if credentials else "without credentials"
            error = InspectionError(f"refused {how}", reason=InspectionReason.REGISTRY_UNAUTHORIZED)
        else:
            self.memory[(image, user)] = FACTS
            return FACTS
        self.memory[(image, user)] = error
        raise error

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None:
        credentials = credentials_for(ImageReference.parse(image), credentials)[:1]
        return self.memory.get((image, credentials[0].username if credentials else None))

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        return self._read(image, credentials)


@pytest.fixture
def entry(tmp_path: Path) -> ProviderEntry:
    credentials = write_credentials(tmp_path / "credentials.json", "node", "from-the-provider")
    return ProviderEntry("testbed", (REGISTRY,), credentials, tmp_path / "calls.log", cache_duration="1h")


def keyring(tmp_path: Path, registry: Registry, entry: ProviderEntry) -> KubeletKeyring:
    install(tmp_path / "bin", entry.name)
    path = write_config(tmp_path / "config.json", [entry])
    return KubeletKeyring(registry, CredentialProviders(load_credential_providers(str(path), str(tmp_path / "bin"))))


async def test_an_image_only_the_provider_can_read_is_read_with_its_credentials(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    registry = Registry({IMAGE: {"node"}})
    assert await keyring(tmp_path, registry, entry).inspect(IMAGE, NEEDS, credentials=()) == FACTS
    assert registry.tries == ["node"]


async def test_a_pull_secret_is_tried_first_and_the_provider_after_it_is_refused(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    registry = Registry({IMAGE: {"node"}})
    source = keyring(tmp_path, registry, entry)
    assert await source.inspect(IMAGE, NEEDS, credentials=[STALE_SECRET]) == FACTS
    assert registry.tries == ["ci", "node"]
    # From memory afterwards, the same way round, with no provider run.
    assert source.cached(IMAGE, NEEDS, credentials=[STALE_SECRET]) == FACTS
    assert len(entry.runs()) == 1


async def test_a_working_pull_secret_is_used_and_the_providers_credentials_are_not(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    registry = Registry({IMAGE: {"ci", "node"}})
    assert await keyring(tmp_path, registry, entry).inspect(IMAGE, NEEDS, credentials=[STALE_SECRET]) == FACTS
    assert registry.tries == ["ci"]


async def test_an_image_of_another_registry_is_read_as_before_and_runs_no_provider(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    other = "127.0.0.1:6000/public/app:1.0"
    registry = Registry({other: {None}})
    assert await keyring(tmp_path, registry, entry).inspect(other, NEEDS, credentials=[STALE_SECRET]) == FACTS
    assert registry.tries == [None]
    assert entry.runs() == []


async def test_a_refusal_after_a_provider_failed_names_the_provider_and_why(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    registry = Registry({IMAGE: {"node"}})
    source = keyring(tmp_path, registry, replace(entry, behave="exit"))
    with pytest.raises(InspectionError) as refused:
        await source.inspect(IMAGE, NEEDS, credentials=())
    assert refused.value.reason is InspectionReason.CREDENTIAL_PROVIDER_FAILED
    assert str(refused.value) == (
        "credential provider testbed exited with status 3 for 127.0.0.1:5000/private/app: the registry's token "
        "service refused the provider: AccessDenied; refused without credentials"
    )
    cached = source.cached(IMAGE, NEEDS, credentials=())
    assert isinstance(cached, InspectionError)
    assert cached.reason is InspectionReason.CREDENTIAL_PROVIDER_FAILED


async def test_a_failed_provider_does_not_fail_an_image_readable_without_it(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    registry = Registry({IMAGE: {None}})
    assert await keyring(tmp_path, registry, replace(entry, behave="exit")).inspect(IMAGE, NEEDS, credentials=()) == (
        FACTS
    )


async def test_an_error_other_than_a_refusal_is_not_tried_again_with_the_next_credential(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    registry = Registry({IMAGE: {"ci", "node"}}, missing=[IMAGE])
    with pytest.raises(InspectionError) as failed:
        await keyring(tmp_path, registry, entry).inspect(IMAGE, NEEDS, credentials=[STALE_SECRET])
    assert failed.value.reason is InspectionReason.IMAGE_NOT_FOUND
    assert registry.tries == ["ci"]


async def test_from_memory_needs_the_providers_answer_in_memory_too(tmp_path: Path, entry: ProviderEntry) -> None:
    registry = Registry({IMAGE: {"node"}})
    source = keyring(tmp_path, registry, entry)
    assert source.cached(IMAGE, NEEDS, credentials=()) is None  # the provider has not been run yet
    await source.inspect(IMAGE, NEEDS, credentials=())
    assert source.cached(IMAGE, NEEDS, credentials=()) == FACTS


async def test_a_key_the_kubelet_matches_by_string_prefix_still_serves_the_image(
    tmp_path: Path, entry: ProviderEntry
) -> None:
    """The kubelet's path prefix is a plain string prefix (127.0.0.1:5000/priv serves .../private/app); the
    registry inspector's own choice, by whole path segments, must not drop the credential again."""
    registry = Registry({IMAGE: {"node"}})
    source = keyring(tmp_path, registry, replace(entry, auth_key=f"{REGISTRY}/priv"))
    assert await source.inspect(IMAGE, NEEDS, credentials=()) == FACTS
    assert registry.tries == ["node"]
