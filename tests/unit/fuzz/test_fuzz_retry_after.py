"""A registry's Retry-After is a header it chooses: any value is a pause within bounds, never an exception."""

from __future__ import annotations

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from slimguard.registry.client import RegistryClient, _Reply
from slimguard.registry.settings import RegistrySettings

SETTINGS = RegistrySettings(max_retry_after_seconds=30.0, backoff_seconds=0.5)
latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
retry_after = st.one_of(
    latin1,
    st.integers(min_value=-10, max_value=10**30).map(str),
    st.floats(allow_nan=True).map(str),
    st.datetimes().map(lambda when: when.strftime("%a, %d %b %Y %H:%M:%S GMT")),
)


@given(retry_after, st.integers(min_value=1, max_value=5))
@example("1.5", 1)  # once: ValueError from parsedate_to_datetime, out of the registry client
@example("soon", 1)
@example("\u00b2", 1)  # once: isdigit() is true for a superscript two, and float() refuses it
@example("Wed, 21 Oct 2015 07:28:00", 1)  # no zone: read as GMT, as HTTP dates are
def test_any_retry_after_is_a_bounded_pause(value: str, attempt: int) -> None:
    client = RegistryClient(SETTINGS)
    delay = client._retry_delay(_Reply(429, httpx.Headers({"Retry-After": value.encode("latin-1")}), b""), attempt)
    assert 0.0 <= delay <= max(SETTINGS.max_retry_after_seconds, SETTINGS.backoff_seconds * 2 ** (attempt - 1))


def test_retry_after_seconds_are_honoured_and_capped() -> None:
    client = RegistryClient(SETTINGS)
    assert client._retry_delay(_Reply(429, httpx.Headers({"Retry-After": "2"}), b""), 1) == 2.0
    assert client._retry_delay(_Reply(429, httpx.Headers({"Retry-After": "3600"}), b""), 1) == 30.0
    assert client._retry_delay(_Reply(503, httpx.Headers(), b""), 3) == 2.0  # 0.5 * 2**2
