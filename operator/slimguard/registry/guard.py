"""The guard against server-side request forgery: which addresses slimguard may open a connection to.

Image references come from workloads anyone with create rights can write, so ``image: 169.254.169.254/x``
must not make the operator fetch from the cloud metadata service. The guard runs inside the connection
layer: every host name is resolved here, every resolved address is vetted, and the socket is opened to the
vetted address itself, so a DNS answer that changes between check and use (rebinding) cannot slip through.
Redirects go through the same path, because every connection does.

Through a proxy (``registry/proxy.py``) the proxy resolves the registry's name and opens the connection, so the
guard sees only what the reference says: a literal address is vetted (``check_proxied_host``) before the request
is handed to the proxy; the address a name stands for is the proxy's to find.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpcore

from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.model.globs import matches_any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class RefusedAddress(InspectionError):
    """A registry host that the guard will not connect to."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=InspectionReason.REGISTRY_REFUSED)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def literal_address(host: str) -> Address | None:
    """The address ``host`` names without any lookup, else None (a name).

    Besides IP literals this reads the other spellings of an IPv4 address that resolvers accept as one
    (inet_aton's: ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``): a proxy given one connects to that
    address as is, so to the guard it is a literal, not a name.
    """
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not text or not all(char in "0123456789abcdefxABCDEFX." for char in text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def classify(address: Address) -> str | None:
    """Why an address is internal (``None`` when it is a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address in ipaddress.ip_network("100.64.0.0/10"):
        return "carrier-grade NAT"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """What the guard lets through. Loopback and private ranges are opt-in, for labs and tests."""

    allow_loopback: bool = False
    allow_private: bool = False
    allowed_registries: tuple[str, ...] = ()
    """Host globs (``*.example.com``, ``registry.local:5000``, ``[::1]:*``); when given, no other registry is
    contacted. Only ``*`` and ``?`` are wildcards, so an IPv6 registry is written with its brackets as is."""

    def check_registry(self, registry: str) -> None:
        if self.allowed_registries and not matches_any(registry, self.allowed_registries):
            raise RefusedAddress(
                f"registry {registry} is not in slimguard's registry allowlist ({', '.join(self.allowed_registries)})"
            )

    def check_address(self, host: str, address: Address) -> None:
        kind = classify(address)
        if kind is None:
            return
        if kind == "loopback" and self.allow_loopback:
            return
        if kind == "private" and self.allow_private:
            return
        shown = host if host == str(address) else f"{host} ({address})"
        note = " (where cloud metadata services live)" if kind == "link-local" else ""
        article = "an" if kind[0] in "aeiou" else "a"
        raise RefusedAddress(
            f"registry host {shown} is {article} {kind} address{note}; slimguard does not connect to internal "
            "addresses unless its settings allow them"
        )

    def check_proxied_host(self, host: str) -> None:
        """Before a request is handed to a proxy, which resolves names itself: a literal address is vetted as a
        direct connection's would be; a name cannot be (what it resolves to, the proxy alone learns)."""
        address = literal_address(host)
        if address is not None:
            self.check_address(host, address)

    def vet(self, host: str, addresses: Iterable[str]) -> list[str]:
        """The addresses that may be connected to; refuses if any is internal, so mixed answers do not pass."""
        vetted = []
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            self.check_address(host, address)
            vetted.append(text)
        if not vetted:
            raise RefusedAddress(f"registry host {host} did not resolve to any address")
        return vetted


@dataclass
class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves and vets before any socket is opened."""

    policy: AddressPolicy
    resolver: Resolver = system_resolver
    inner: httpcore.AsyncNetworkBackend = field(default_factory=httpcore.AnyIOBackend)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses: Sequence[str] = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            try:
                addresses = await self.resolver(host, port)
            except OSError as error:
                raise httpcore.ConnectError(f"cannot resolve registry host {host}: {error}") from error
        vetted = self.policy.vet(host, addresses)
        last_error: Exception | None = None
        for address in vetted:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as error:
                last_error = error
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("registries are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
