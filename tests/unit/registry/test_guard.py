"""The SSRF guard decides before any socket opens: these tests never open one to anything but a recorder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import pytest

from slimguard.registry.guard import AddressPolicy, GuardedNetworkBackend, RefusedAddress


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands where the socket would be opened: records the address and opens nothing."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        raise httpcore.ConnectError("recorder: no socket is ever opened in this test")


def resolver_answering(*addresses: str):  # type: ignore[no-untyped-def]
    asked: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return list(addresses)

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
    ],
)
async def test_an_ip_literal_in_an_internal_range_is_refused_without_connecting(address: str, kind: str) -> None:
    recorder = RecordingBackend()
    backend = GuardedNetworkBackend(AddressPolicy(), inner=recorder)
    with pytest.raises(RefusedAddress, match=kind):
        await backend.connect_tcp(address, 443)
    assert recorder.connected == []


async def test_a_host_name_resolving_to_the_metadata_address_is_refused_without_connecting() -> None:
    recorder = RecordingBackend()
    resolver = resolver_answering("169.254.169.254")
    backend = GuardedNetworkBackend(AddressPolicy(), resolver=resolver, inner=recorder)
    with pytest.raises(RefusedAddress, match=r"registry host metadata.internal \(169.254.169.254\) is a link-local"):
        await backend.connect_tcp("metadata.internal", 443)
    assert resolver.asked == ["metadata.internal"]  # type: ignore[attr-defined]
    assert recorder.connected == []


async def test_one_internal_address_among_public_ones_refuses_the_host() -> None:
    """A resolver that mixes answers must not get the internal one through on a retry."""
    recorder = RecordingBackend()
    backend = GuardedNetworkBackend(
        AddressPolicy(), resolver=resolver_answering("93.184.216.34", "10.0.0.5"), inner=recorder
    )
    with pytest.raises(RefusedAddress, match="private"):
        await backend.connect_tcp("registry.example.com", 443)
    assert recorder.connected == []


async def test_the_socket_opens_to_the_vetted_address_not_to_the_name() -> None:
    """Connecting to what was vetted, not re-resolving the name, is what defeats DNS rebinding."""
    recorder = RecordingBackend()
    backend = GuardedNetworkBackend(AddressPolicy(), resolver=resolver_answering("93.184.216.34"), inner=recorder)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("registry.example.com", 443)
    assert recorder.connected == ["93.184.216.34"]


async def test_loopback_is_allowed_only_when_the_settings_say_so() -> None:
    recorder = RecordingBackend()
    backend = GuardedNetworkBackend(AddressPolicy(allow_loopback=True), inner=recorder)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("127.0.0.1", 5000)
    assert recorder.connected == ["127.0.0.1"]
    with pytest.raises(RefusedAddress, match="link-local"):
        await backend.connect_tcp("169.254.169.254", 80)
    assert recorder.connected == ["127.0.0.1"]


def test_a_registry_outside_the_allowlist_is_refused_by_name() -> None:
    policy = AddressPolicy(allowed_registries=("*.example.com", "registry.local:5000"))
    policy.check_registry("registry.local:5000")
    policy.check_registry("ghcr.example.com")
    with pytest.raises(RefusedAddress, match="not in slimguard's registry allowlist"):
        policy.check_registry("evil.io")


def test_the_refusal_uses_the_right_article_before_a_vowel() -> None:
    with pytest.raises(RefusedAddress, match=r"registry host 0\.0\.0\.0 is an unspecified address;"):
        AddressPolicy().vet("0.0.0.0", ["0.0.0.0"])
    with pytest.raises(RefusedAddress, match=r"registry host 127\.0\.0\.1 is a loopback address;"):
        AddressPolicy().vet("127.0.0.1", ["127.0.0.1"])


def test_an_ipv6_registry_in_the_allowlist_is_written_as_the_reference_spells_it() -> None:
    """Brackets are literal, as in the image reference: no fnmatch escaping like '[[]::1]:*'."""
    policy = AddressPolicy(allowed_registries=("[::1]:*",))
    policy.check_registry("[::1]:5000")
    with pytest.raises(RefusedAddress, match="not in slimguard's registry allowlist"):
        policy.check_registry("1:5000")  # what '[::1]:*' would match as a character class
    with pytest.raises(RefusedAddress, match="not in slimguard's registry allowlist"):
        policy.check_registry("[::2]:5000")
