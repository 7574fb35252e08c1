"""Where the servers listen: ``::``, every address of both families, so IPv4-only, dual-stack and IPv6-only
clusters all reach them. Each server library needs it said its own way:

- /metrics (prometheus-client, a plain socket server): ``::`` takes IPv4 connections too, as IPv4-mapped
  addresses (Linux's default ``net.ipv6.bindv6only=0``); a kernel without IPv6 cannot open an IPv6 socket at
  all, so there it is ``0.0.0.0`` (``listen_host``).
- The webhook (aiohttp on asyncio): asyncio makes every IPv6 listener IPv6-only, so ``::`` would refuse IPv4;
  no host at all makes it open one listener per family the kernel has (``site_host``).
- The controller's liveness endpoint (kopf's, which takes one host from a URL and binds it with asyncio): the
  family the kubelet probes, that of the Pod's primary IP (``POD_IP``, from the downward API; ``liveness_url``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

ANY_ADDRESS = "::"
"""The default of every ``--host``/``--*-address`` option: all addresses, both families."""
ANY_IPV4_ADDRESS = "0.0.0.0"


def ipv6_available() -> bool:
    """Whether this kernel can open an IPv6 socket (it cannot when booted with ``ipv6.disable=1``)."""
    if not socket.has_ipv6:
        return False
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


def listen_host(host: str, *, has_ipv6: Callable[[], bool] = ipv6_available) -> str:
    """``host`` as given, except ``::`` on a node without IPv6, which becomes ``0.0.0.0``."""
    if host == ANY_ADDRESS and not has_ipv6():
        log.info("no IPv6 on this node: listening on %s instead of %s", ANY_IPV4_ADDRESS, ANY_ADDRESS)
        return ANY_IPV4_ADDRESS
    return host


def site_host(host: str) -> str | None:
    """The host for an aiohttp site: None (every family the kernel has, one listener each) for ``::``."""
    return None if host == ANY_ADDRESS else host


def liveness_url(url: str, *, pod_ip: str | None = None, has_ipv6: Callable[[], bool] = ipv6_available) -> str:
    """kopf's liveness URL, whose ``[::]`` becomes the family of ``pod_ip`` (what the kubelet probes); outside
    a Pod, as ``listen_host`` says."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"--liveness {url!r} must name a host and a port, e.g. http://[::]:8080/healthz")
    host = parts.hostname
    if host == ANY_ADDRESS:
        if pod_ip:
            try:
                host = ANY_ADDRESS if ipaddress.ip_address(pod_ip).version == 6 else ANY_IPV4_ADDRESS
            except ValueError:
                raise ValueError(f"POD_IP {pod_ip!r} is not an IP address (the downward API's status.podIP)") from None
        else:
            host = listen_host(host, has_ipv6=has_ipv6)
    netloc = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
