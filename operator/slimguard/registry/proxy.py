"""Registries reached through an HTTP(S) proxy: which requests go through it, and the guard in front of it.

Only the registry client is routed here: the Kubernetes API connections (kopf's, the kubernetes client's) never
see these settings.

Through a proxy, slimguard opens a connection to the proxy alone and asks it for the registry by name (``CONNECT
host:port`` for HTTPS, the absolute URL for plain HTTP); the proxy resolves that name and connects. So the guard
decides on what the request itself says, before it is handed over: a literal internal address (``127.0.0.1``,
``169.254.169.254``, ``[fd00::1]``, ``2130706433``) is refused as for a direct connection, and nothing is sent; a
name passes, because the address it stands for is the proxy's to find (``guard.check_proxied_host``). The proxy's
own address is not vetted: it is the operator's configuration, not a workload's.

Which requests go through which proxy is httpx's routing (a mount per scheme, and one per NO_PROXY host or domain,
which then use the direct, guarded transport); a CIDR in NO_PROXY, which httpx's patterns cannot express, is
matched here against literal addresses.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from slimguard.core.errors import SlimguardError
from slimguard.registry.guard import AddressPolicy, literal_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxySettingInvalid(SlimguardError):
    """A proxy URL or NO_PROXY entry slimguard cannot use; the message names the option and the value."""


@dataclass(frozen=True)
class NoProxy:
    """The parsed NO_PROXY list: hosts and domains as httpx mount patterns, CIDRs as networks, or everything."""

    patterns: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()
    everything: bool = False


def parse_no_proxy(entries: Sequence[str], *, option: str) -> NoProxy:
    """NO_PROXY as curl and Python's urllib read it: comma-separated hosts or domains (``example.com`` and
    ``.example.com`` both match the domain and every subdomain), IP addresses, CIDRs, each optionally with
    ``:port`` (not CIDRs); ``*`` for every host."""
    patterns: list[str] = []
    networks: list[Network] = []
    for entry in (part.strip().lower() for text in entries for part in text.split(",")):
        if not entry:
            continue
        if entry == "*":
            return NoProxy(everything=True)
        if "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ProxySettingInvalid(f"{option} entry {entry!r} is not a CIDR such as 10.0.0.0/8") from None
            continue
        pattern = _host_pattern(entry)
        if pattern is None:
            raise ProxySettingInvalid(
                f"{option} entry {entry!r} is not a host, domain, IP address or CIDR (each optionally with :port)"
            )
        patterns.append(pattern)
    return NoProxy(patterns=tuple(dict.fromkeys(patterns)), networks=tuple(networks))


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", re.IGNORECASE)


def _is_host(host: str) -> bool:
    """A DNS name or an IP address (httpx percent-encodes what a URL's host may not hold, so check it here)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST_NAME.fullmatch(host))
    return True


def _host_pattern(entry: str) -> str | None:
    """The httpx mount pattern of one NO_PROXY host, domain or address (with its port, if any); None if it is none."""
    try:
        address = ipaddress.ip_address(entry.strip("[]"))  # an IPv6 address written without brackets and port
    except ValueError:
        try:
            url = httpx.URL("all://" + entry.lstrip("*."))
        except httpx.InvalidURL:
            return None
        if url.userinfo or url.path != "/" or url.query or url.fragment:
            return None
        port = f":{url.port}" if url.port else ""
        try:
            address = ipaddress.ip_address(url.host)
        except ValueError:
            # httpx reads "*example.com" as the domain and every subdomain
            return f"all://*{url.host}{port}" if _is_host(url.host) else None
    else:
        port = ""
    return f"all://[{address}]{port}" if address.version == 6 else f"all://{address}{port}"


def parse_proxy_url(value: str, *, option: str) -> str:
    """A proxy URL as given (``proxy.corp:3128`` means ``http://proxy.corp:3128``, as curl and httpx read it)."""
    text = value.strip()
    if "://" not in text:
        text = f"http://{text}"
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as error:
        raise ProxySettingInvalid(f"{option} {shown_url(value)!r} is not a URL: {error}") from None
    if url.scheme not in ("http", "https"):
        raise ProxySettingInvalid(
            f"{option} {shown_url(value)!r}: slimguard speaks to HTTP and HTTPS proxies only, not {url.scheme}"
        )
    if not _is_host(url.host) or url.path not in ("", "/") or url.query or url.fragment:
        raise ProxySettingInvalid(
            f"{option} {shown_url(value)!r} is not a proxy URL such as http://proxy.example.com:3128"
        )
    return text


def shown_url(url: str) -> str:
    """A proxy URL fit for a log: its user and password (a token, often) replaced."""
    try:
        parsed = httpx.URL(url if "://" in url else f"http://{url}")
    except httpx.InvalidURL:
        return "<unparseable URL>" if "@" in url else url
    return str(parsed.copy_with(username="***", password=None)) if parsed.userinfo else url


@dataclass(frozen=True)
class ProxySettings:
    """The proxies registries are reached through; none by default (a library user's client stays direct).

    The entry points fill it from ``--https-proxy``, ``--http-proxy`` and ``--no-proxy``, each falling back to the
    standard environment variable (``from_options``).
    """

    https_proxy: str | None = None
    """For ``https://`` requests: every registry except a ``--plain-http-registry``, and token services on HTTPS."""
    http_proxy: str | None = None
    """For ``http://`` requests: plain-HTTP registries and token services."""
    no_proxy: tuple[str, ...] = ()
    """Hosts, domains, addresses and CIDRs reached directly (through the guard's own resolver), as NO_PROXY."""

    def __post_init__(self) -> None:
        for field, value in (("https_proxy", self.https_proxy), ("http_proxy", self.http_proxy)):
            if value is not None:  # as written (proxy.corp:3128 too), kept as the URL it means
                object.__setattr__(self, field, parse_proxy_url(value, option=f"--{field.replace('_', '-')}"))
        parse_no_proxy(self.no_proxy, option="--no-proxy")

    @classmethod
    def from_options(
        cls, *, https_proxy: str | None, http_proxy: str | None, no_proxy: Sequence[str] | None
    ) -> ProxySettings:
        """Each option as given, else its environment variable (``https_proxy``/``HTTPS_PROXY``, ...; the
        lower-case one first, as curl and Python's urllib read them). An option given as "" means none, whatever
        the environment says."""
        environment = urllib.request.getproxies_environment()
        chosen: dict[str, str | None] = {}
        for scheme, given in (("https", https_proxy), ("http", http_proxy)):
            value = environment.get(scheme) if given is None else given
            source = f"--{scheme}-proxy" if given is not None else f"${scheme}_proxy/${scheme.upper()}_PROXY"
            chosen[scheme] = parse_proxy_url(value, option=source) if value else None
        bypass = tuple(no_proxy) if no_proxy is not None else (environment.get("no", ""),)
        parse_no_proxy(bypass, option="--no-proxy" if no_proxy is not None else "$no_proxy/$NO_PROXY")
        return cls(
            https_proxy=chosen["https"],
            http_proxy=chosen["http"],
            no_proxy=tuple(part.strip() for text in bypass for part in text.split(",") if part.strip()),
        )

    def describe(self) -> str:
        """For the start-up log line: the proxies without their passwords."""
        https = shown_url(self.https_proxy) if self.https_proxy else "none"
        http = shown_url(self.http_proxy) if self.http_proxy else "none"
        return f"https_proxy={https} http_proxy={http} no_proxy={','.join(self.no_proxy) or 'none'}"


class ThroughProxy(httpx.AsyncBaseTransport):
    """The route of the requests a proxy carries: the guard's say on the target first, then the proxy."""

    def __init__(
        self,
        url: str,
        *,
        policy: AddressPolicy,
        direct: httpx.AsyncBaseTransport,
        direct_networks: Sequence[Network],
        verify: ssl.SSLContext,
        limits: httpx.Limits,
    ) -> None:
        self.shown = shown_url(url)
        self._policy = policy
        self._direct = direct
        self._direct_networks = tuple(direct_networks)
        # httpx's own proxy transport (httpcore's proxy pool): CONNECT tunnels for HTTPS, inside which the
        # registry's TLS runs end to end, so the proxy sees neither the requests nor their Authorization headers;
        # forwarded requests for plain HTTP. Proxy-Authorization comes only from the proxy URL's own user:password.
        proxy = httpx.Proxy(url)
        if proxy.url.scheme == "https":  # an HTTPS proxy is trusted as registries are: the system's CAs, --ca-file
            proxy = httpx.Proxy(url, ssl_context=verify)
        self._proxy = httpx.AsyncHTTPTransport(verify=verify, trust_env=False, limits=limits, proxy=proxy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        address = literal_address(host)
        if address is not None and any(address in network for network in self._direct_networks):
            return await self._direct.handle_async_request(request)  # a NO_PROXY CIDR: the direct, guarded route
        self._policy.check_proxied_host(host)  # refused here, nothing has been sent to anyone
        try:
            return await self._proxy.handle_async_request(request)
        except httpx.TransportError as error:
            hint = ""
            if isinstance(error, httpx.ProxyError) and str(error).startswith("407"):
                hint = "; put its user and password in the proxy URL (http://USER:PASSWORD@HOST:PORT)"
            message = f"{error or type(error).__name__} (through the proxy {self.shown}){hint}"
            raise type(error)(message, request=request) from error

    async def aclose(self) -> None:
        await self._proxy.aclose()  # the direct transport is the client's own, closed by it


def proxy_mounts(
    settings: ProxySettings,
    *,
    policy: AddressPolicy,
    direct: httpx.AsyncBaseTransport,
    verify: ssl.SSLContext,
    limits: httpx.Limits,
) -> dict[str, httpx.AsyncBaseTransport | None]:
    """httpx mounts for ``settings``: a proxied route per scheme that has a proxy, and a direct one (None: the
    client's own transport) for each NO_PROXY host or domain; empty when no proxy applies."""
    bypass = parse_no_proxy(settings.no_proxy, option="--no-proxy")
    if bypass.everything:
        return {}
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for scheme, url in (("https", settings.https_proxy), ("http", settings.http_proxy)):
        if url:
            mounts[f"{scheme}://"] = ThroughProxy(
                url, policy=policy, direct=direct, direct_networks=bypass.networks, verify=verify, limits=limits
            )
    if mounts:
        mounts.update(dict.fromkeys(bypass.patterns))
    return mounts
