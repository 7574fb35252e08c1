"""The proxy settings: where they come from, what NO_PROXY means, and what the guard decides before a proxy hears of
a request. That requests really take these routes, through a real proxy, is tests/e2e/test_registry_proxy.py."""

from __future__ import annotations

import ipaddress
import re

import pytest

from slimguard.registry.guard import AddressPolicy, RefusedAddress, literal_address
from slimguard.registry.proxy import ProxySettingInvalid, ProxySettings, parse_no_proxy, shown_url

PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)


def from_options(
    https_proxy: str | None = None, http_proxy: str | None = None, no_proxy: list[str] | None = None
) -> ProxySettings:
    return ProxySettings.from_options(https_proxy=https_proxy, http_proxy=http_proxy, no_proxy=no_proxy)


def test_by_default_no_registry_is_reached_through_a_proxy() -> None:
    assert from_options() == ProxySettings()
    assert ProxySettings().describe() == "https_proxy=none http_proxy=none no_proxy=none"


def test_the_standard_variables_name_the_proxies_the_lower_case_one_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://upper.example:3128")
    monkeypatch.setenv("https_proxy", "http://lower.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "plain.example:8080")
    monkeypatch.setenv("NO_PROXY", ".svc, 10.0.0.0/8,registry.local:5000")
    settings = from_options()
    assert settings.https_proxy == "http://lower.example:3128"
    assert settings.http_proxy == "http://plain.example:8080"  # no scheme: http://, as curl and httpx read it
    assert settings.no_proxy == (".svc", "10.0.0.0/8", "registry.local:5000")


def test_an_option_wins_over_its_variable_and_an_empty_one_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://from-env.example:3128")
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert from_options(https_proxy="http://flag.example:3128").https_proxy == "http://flag.example:3128"
    assert from_options(https_proxy="").https_proxy is None
    assert from_options(no_proxy=["a.example,b.example", "c.example"]).no_proxy == (
        "a.example",
        "b.example",
        "c.example",
    )
    assert from_options(no_proxy=[""]).no_proxy == ()


def test_a_cgi_request_method_makes_http_proxy_untrusted_as_urllib_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUEST_METHOD", "GET")  # httpoxy: a request's "Proxy:" header arrives as HTTP_PROXY
    monkeypatch.setenv("HTTP_PROXY", "http://attacker.example:80")
    assert from_options().http_proxy is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("socks5://127.0.0.1:1080", "HTTP and HTTPS proxies only, not socks5"),
        ("http://proxy.example:3128/some/path", "is not a proxy URL such as http://proxy.example.com:3128"),
        ("http://proxy example:3128", "is not a proxy URL"),
        ("http://proxy.example:port", "is not a URL"),
    ],
)
def test_a_proxy_url_slimguard_cannot_use_is_refused_naming_it(value: str, says: str) -> None:
    with pytest.raises(ProxySettingInvalid, match=r"^--https-proxy") as refused:
        from_options(https_proxy=value)
    assert says in str(refused.value)


def test_a_bad_variable_is_named_as_the_variable_and_its_password_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:s3cret@127.0.0.1:1080")
    with pytest.raises(ProxySettingInvalid) as refused:
        from_options()
    assert str(refused.value).startswith("$https_proxy/$HTTPS_PROXY 'socks5://***@127.0.0.1:1080'")
    assert "s3cret" not in str(refused.value)


def test_settings_made_directly_are_checked_and_read_as_the_options_are() -> None:
    assert ProxySettings(https_proxy="proxy.example:3128").https_proxy == "http://proxy.example:3128"
    with pytest.raises(ProxySettingInvalid, match=r"^--http-proxy 'ftp://proxy.example'"):
        ProxySettings(http_proxy="ftp://proxy.example")
    with pytest.raises(ProxySettingInvalid, match=r"^--no-proxy entry 'a b'"):
        ProxySettings(no_proxy=("a b",))


def test_the_start_up_line_shows_the_proxies_without_their_credentials() -> None:
    settings = from_options(https_proxy="http://svc-user:s3cret@proxy.example:3128", no_proxy=[".svc,10.0.0.0/8"])
    assert settings.describe() == "https_proxy=http://***@proxy.example:3128 http_proxy=none no_proxy=.svc,10.0.0.0/8"
    assert shown_url("http://token@proxy.example:3128") == "http://***@proxy.example:3128"


def test_no_proxy_entries_become_host_and_domain_patterns_and_networks() -> None:
    parsed = parse_no_proxy(
        ["example.com, .corp.example,*.svc", "registry.local:5000,10.1.2.3,::1,[fd00::1]:5000", "10.0.0.0/8,fd00::/8"],
        option="--no-proxy",
    )
    # httpx's "*domain": the domain and every subdomain, with or without a leading dot (as curl and urllib read it).
    assert parsed.patterns == (
        "all://*example.com",
        "all://*corp.example",
        "all://*svc",
        "all://*registry.local:5000",
        "all://10.1.2.3",
        "all://[::1]",
        "all://[fd00::1]:5000",
    )
    assert parsed.networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert not parsed.everything
    assert parse_no_proxy(["example.com,*"], option="--no-proxy").everything


@pytest.mark.parametrize("entry", ["two words", "a/b/c", "10.0.0.0/33", "host?query", "user@host"])
def test_a_no_proxy_entry_that_is_no_host_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(ProxySettingInvalid, match=f"^--no-proxy entry {re.escape(repr(entry))}"):
        parse_no_proxy([f"example.com,{entry}"], option="--no-proxy")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[fe80::1]", "fe80::1"),
        # What a proxy's resolver (inet_aton) reads as an address: for the guard they are literals, not names.
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
    ],
)
def test_every_spelling_of_an_address_is_a_literal(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["registry.example.com", "localhost", "deadbeef.cafe", "0x.example", "1e100.net"])
def test_a_name_is_not_a_literal(host: str) -> None:
    assert literal_address(host) is None


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        ("169.254.169.254", "registry host 169.254.169.254 is a link-local address"),
        ("2130706433", "registry host 2130706433 (127.0.0.1) is a loopback address"),
        ("10.0.0.7", "registry host 10.0.0.7 is a private address"),
    ],
)
def test_before_a_proxy_is_asked_a_literal_internal_address_is_refused(host: str, refusal: str) -> None:
    with pytest.raises(RefusedAddress, match=f"^{re.escape(refusal)}"):
        AddressPolicy().check_proxied_host(host)


def test_a_name_passes_to_the_proxy_and_an_allowed_range_does_too() -> None:
    AddressPolicy().check_proxied_host("registry.example.com")  # what it resolves to, only the proxy learns
    AddressPolicy().check_proxied_host("localhost")
    AddressPolicy(allow_loopback=True).check_proxied_host("127.0.0.1")
    AddressPolicy(allow_private=True).check_proxied_host("10.0.0.7")
