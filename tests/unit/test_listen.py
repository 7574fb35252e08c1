"""Servers listen on every address, IPv6 and IPv4, and on IPv4 alone where the node has no IPv6."""

from __future__ import annotations

import pytest

from slimguard.listen import ANY_ADDRESS, listen_host, liveness_url, site_host


def test_every_address_stays_dual_stack_where_the_node_has_ipv6() -> None:
    assert ANY_ADDRESS == "::"
    assert listen_host("::", has_ipv6=lambda: True) == "::"


def test_every_address_falls_back_to_ipv4_where_the_node_has_no_ipv6() -> None:
    assert listen_host("::", has_ipv6=lambda: False) == "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0", "10.0.0.7"])
def test_an_address_given_explicitly_is_kept(host: str) -> None:
    assert listen_host(host, has_ipv6=lambda: False) == host


def test_the_webhook_site_opens_one_listener_per_family_for_every_address() -> None:
    # asyncio makes an IPv6 listener IPv6-only: no host is what binds both families.
    assert site_host("::") is None
    assert site_host("127.0.0.1") == "127.0.0.1"


@pytest.mark.parametrize(
    ("pod_ip", "served"),
    [("10.244.0.7", "http://0.0.0.0:8080/healthz"), ("fd00:10:244::7", "http://[::]:8080/healthz")],
)
def test_the_liveness_endpoint_listens_on_the_family_the_kubelet_probes(pod_ip: str, served: str) -> None:
    assert liveness_url("http://[::]:8080/healthz", pod_ip=pod_ip, has_ipv6=lambda: True) == served


def test_outside_a_pod_the_liveness_endpoint_follows_the_node() -> None:
    assert liveness_url("http://[::]:8080/healthz", has_ipv6=lambda: True) == "http://[::]:8080/healthz"
    assert liveness_url("http://[::]:8080/healthz", has_ipv6=lambda: False) == "http://0.0.0.0:8080/healthz"
    assert liveness_url("http://127.0.0.1:8080/healthz", pod_ip="fd00::7") == "http://127.0.0.1:8080/healthz"


def test_a_bad_liveness_url_or_pod_ip_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"--liveness 'http://\[::\]/healthz' must name a host and a port"):
        liveness_url("http://[::]/healthz")
    with pytest.raises(ValueError, match="POD_IP 'pod-7' is not an IP address"):
        liveness_url("http://[::]:8080/healthz", pod_ip="pod-7")
