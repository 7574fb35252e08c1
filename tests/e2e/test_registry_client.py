"""The registry client against the real registry: Basic and bearer-token auth, token reuse, digests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimguard.core.errors import InspectionError
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.platform import Platform
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential
from slimguard.registry.guard import AddressPolicy, GuardedNetworkBackend
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import CertificateAuthority, Registry
from slimguard_testbed.blobstore import BlobStore
from slimguard_testbed.operator_runner import LoopbackOnlyBackend

AMD64 = {Platform("linux", "amd64")}
ON_AMD64 = FactsNeeds(frozenset(AMD64))


def inspector_for(
    registry: Registry, clock: Callable[[], float] = time.monotonic, *, trusted: bool = True
) -> ImageInspector:
    """``trusted`` False: without the registry's CA (``--ca-file``), as a fresh install may be."""
    ca_files = (str(registry.ca_file),) if trusted else ()
    settings = RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), ca_files=ca_files)
    backend = GuardedNetworkBackend(settings.address_policy, inner=LoopbackOnlyBackend())
    return ImageInspector(RegistryClient(settings, backend=backend), clock=clock)


async def test_basic_auth_registry_is_read_with_credentials_and_refused_without(
    basic_registry: Registry, fixture_images: Any, registry_credentials: Any
) -> None:
    image = f"{basic_registry.host}/shop/api:1.0-slim"
    credential = Credential(basic_registry.host, registry_credentials.username, registry_credentials.password)
    inspector = inspector_for(basic_registry)
    try:
        facts = await inspector.inspect(image, ON_AMD64, credentials=[credential])
        assert facts.digest == fixture_images.slim_app.digest
        with pytest.raises(InspectionError, match=r"refused access to .* without credentials \(HTTP 401\)"):
            await inspector.inspect(f"{basic_registry.host}/shop/api:1.0-fat", ON_AMD64)
    finally:
        await inspector.client.aclose()


async def test_a_registry_whose_certificate_is_not_trusted_is_said_so_naming_the_fix(registry: Registry) -> None:
    inspector = inspector_for(registry, trusted=False)
    try:
        with pytest.raises(InspectionError) as raised:
            await inspector.inspect(f"{registry.host}/shop/api:1.0-slim", ON_AMD64)
    finally:
        await inspector.client.aclose()
    assert raised.value.reason == "RegistryUntrusted"
    assert str(raised.value) == (
        f"registry {registry.host} presents a certificate slimguard does not trust (certificate verify failed: "
        "unable to get local issuer certificate); give slimguard the CA that signed it with --ca-file (Helm: "
        "registries.caBundle)"
    )


async def test_a_credential_for_another_registry_is_not_sent(
    basic_registry: Registry, registry_credentials: Any
) -> None:
    wrong_host = Credential("registry.example.com", registry_credentials.username, registry_credentials.password)
    inspector = inspector_for(basic_registry)
    try:
        with pytest.raises(InspectionError, match="without credentials"):
            await inspector.inspect(f"{basic_registry.host}/shop/api:1.0-slim", ON_AMD64, credentials=[wrong_host])
    finally:
        await inspector.client.aclose()


async def test_bearer_tokens_are_fetched_once_per_repository_and_reused(
    registry: Registry, fixture_images: Any
) -> None:
    inspector = inspector_for(registry)
    issuer = registry.token_issuer
    assert issuer is not None
    before = len(issuer.requests)
    try:
        await inspector.inspect(fixture_images.multiarch.ref, ON_AMD64)
        first = len(issuer.requests) - before
        await inspector.inspect(fixture_images.multiarch.pinned, FactsNeeds(frozenset({Platform("linux", "arm64")})))
    finally:
        await inspector.client.aclose()
    assert first == 1
    assert len(issuer.requests) - before == 1, "the cached token served the second inspection"


async def test_a_second_repository_gets_its_token_before_its_first_request_not_after_a_401(
    registry: Registry, fixture_images: Any
) -> None:
    # The registry's bearer challenge is remembered: behind a remote registry each 401 is a round trip lost.
    first, second = fixture_images.multiarch, fixture_images.slim_app
    inspector = inspector_for(registry)
    mark = registry.mark()
    try:
        await inspector.inspect(first.ref, ON_AMD64)
        between = registry.mark()
        await inspector.inspect(second.ref, ON_AMD64)
    finally:
        await inspector.client.aclose()
    before = [r for r in registry.requests(since=mark)[: between - mark] if r.repository]
    after = [r for r in registry.requests(since=between) if r.repository]
    assert {r.repository for r in before}.isdisjoint({r.repository for r in after}), "two repositories"
    assert before[0].status == 401, "the first repository is challenged: nothing is known of the registry yet"
    assert after, "the second image was read from the registry"
    assert [r.status for r in after if r.status >= 400] == [], after


async def test_facts_of_an_index_are_fetched_only_for_the_required_platforms(
    registry: Registry, fixture_images: Any
) -> None:
    inspector = inspector_for(registry)
    try:
        facts = await inspector.inspect(fixture_images.multiarch.ref, ON_AMD64)
    finally:
        await inspector.client.aclose()
    assert facts.is_index
    assert [str(image.platform) for image in facts.platforms] == ["linux/amd64"]
    assert set(facts.platform_names) == {p.platform for p in fixture_images.multiarch.platforms}
    amd64 = fixture_images.multiarch.platform("linux/amd64")
    (measured,) = facts.platforms
    assert measured.compressed_size - measured.config_size == amd64.compressed_size


async def test_a_blob_redirected_to_storage_on_another_host_is_fetched_without_the_credential(
    registry_storage: Path,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
    fixture_images: Any,
    registry_credentials: Any,
) -> None:
    """As with S3 behind a registry: the registry gets the credential, the storage host never does."""
    with (
        BlobStore(root=registry_storage, ca=testbed_ca, workdir=tmp_path) as store,
        Registry(
            storage_dir=registry_storage,
            ca=testbed_ca,
            auth="htpasswd",
            workdir=tmp_path / "registry",
            username=registry_credentials.username,
            password=registry_credentials.password,
            redirect_blobs_to=store.url,
        ) as redirecting,
    ):
        credential = Credential(redirecting.host, registry_credentials.username, registry_credentials.password)
        inspector = inspector_for(redirecting)
        try:
            facts = await inspector.inspect(
                f"{redirecting.host}/private/api:1.0-slim", ON_AMD64, credentials=[credential]
            )
        finally:
            await inspector.client.aclose()
    assert facts.digest == fixture_images.private_slim.digest
    config_blobs = [r for r in store.requests if "/blobs/sha256/" in r.path]
    assert config_blobs, "the config blob was served by the storage host, through the redirect"
    assert all("authorization" not in r.headers for r in config_blobs)


async def test_a_failing_registry_is_asked_again_only_after_a_pause() -> None:
    """During an outage, admissions must not each wait for the same dead registry."""
    now = [1000.0]
    connector = LoopbackOnlyBackend()
    settings = RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), failure_ttl_seconds=15)
    client = RegistryClient(settings, backend=GuardedNetworkBackend(settings.address_policy, inner=connector))
    inspector = ImageInspector(client, clock=lambda: now[0])
    try:
        for _ in range(3):
            with pytest.raises(InspectionError, match=r"registry 127\.0\.0\.1:1 is unreachable"):
                await inspector.inspect("127.0.0.1:1/shop/api:1.0", ON_AMD64)
        assert len(connector.attempts) == 1
        now[0] += 16
        with pytest.raises(InspectionError, match="unreachable"):
            await inspector.inspect("127.0.0.1:1/shop/api:1.0", ON_AMD64)
        assert len(connector.attempts) == 2
    finally:
        await client.aclose()


async def test_a_warm_image_is_answered_from_memory_without_a_request(registry: Registry, fixture_images: Any) -> None:
    inspector = inspector_for(registry)
    image = fixture_images.slim_app.ref
    try:
        assert inspector.cached(image, ON_AMD64) is None
        inspected = await inspector.inspect(image, ON_AMD64)
        sent = inspector.client.requests_sent
        assert inspector.cached(image, ON_AMD64) is inspected
        assert inspector.client.requests_sent == sent
        # Another platform was never fetched: memory cannot answer for it.
        assert (
            inspector.cached(fixture_images.multiarch.ref, FactsNeeds(frozenset({Platform("linux", "arm64")}))) is None
        )
        refused = inspector.cached("UPPER/case:1", ON_AMD64)
        assert isinstance(refused, InspectionError)
    finally:
        await inspector.client.aclose()


async def test_a_seen_image_past_its_tag_ttl_is_answered_at_once_and_re_resolved_in_the_background(
    registry: Registry, fixture_images: Any
) -> None:
    now = [1000.0]
    inspector = inspector_for(registry, clock=lambda: now[0])
    image = fixture_images.slim_app.ref
    repository = image.split("/", 1)[1].rsplit(":", 1)[0]
    try:
        inspected = await inspector.inspect(image, ON_AMD64)
        settings = inspector.client.settings
        now[0] += settings.tag_ttl_seconds + 1  # the tag's entry is due
        mark = registry.mark()
        sent = inspector.client.requests_sent
        assert inspector.cached(image, ON_AMD64) is inspected, "the admission path answers from memory"
        assert await inspector.inspect(image, ON_AMD64) is inspected
        assert inspector.client.requests_sent == sent, "nothing waited for the registry"
        await inspector.tags_settled()
        asked = [(r.method, r.kind, r.status) for r in registry.requests(since=mark) if r.repository == repository]
        assert [a for a in asked if a[2] < 400] == [("HEAD", "manifests", 200)], "one HEAD, in the background"
        now[0] += settings.tag_refresh_after_seconds - 1  # re-resolved: fresh again
        assert inspector.cached(image, ON_AMD64) is inspected
        assert inspector.tags_revalidating == 0
        now[0] += settings.tag_ttl_seconds + settings.tag_max_stale_seconds  # unused for longer than allowed
        assert inspector.cached(image, ON_AMD64) is None, "too stale: the next lookup asks the registry"
    finally:
        await inspector.client.aclose()
