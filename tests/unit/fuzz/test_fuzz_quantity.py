"""Quantities and durations come from policies anyone with edit rights writes: any text is a number or a ValueError."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from slimguard.core.model.policy import parse_duration
from slimguard.core.model.quantity import format_bytes, parse_bytes

_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"]
_MULTIPLIERS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18} | {
    suffix: 1024 ** (n + 1) for n, suffix in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
}
_PLAIN_NUMBER = re.compile(r"[+]?[0-9]+(\.[0-9]+)?")
quantity_text = st.one_of(
    st.text(st.sampled_from("0123456789.eE+-kKMGTPEi m\n"), max_size=20),
    st.builds(
        lambda number, exponent, suffix: f"{number}{exponent}{suffix}",
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
        st.sampled_from(["", "e3", "E-2", "e999999", "e9999999999", "e-99999999", "e+18"]),
        st.sampled_from(_SUFFIXES),
    ),
)


@given(quantity_text)
@example("1e999999")  # once: int() of a million-digit Decimal, the controller stuck on one policy for minutes
@example("1e9999999999")  # once: decimal.Overflow, which is no ValueError, escaped the policy model
@example("1.0000000000000000000000000000001")  # once: rounded to 1 at 28 digits, not up to 2
def test_a_quantity_is_a_whole_number_of_bytes_or_a_value_error(text: str) -> None:
    try:
        size = parse_bytes(text)
    except ValueError:
        return
    assert isinstance(size, int)
    assert 0 <= size <= 2**63 - 1  # what a Kubernetes quantity can hold
    if _PLAIN_NUMBER.fullmatch(text):  # no suffix, no exponent: the number rounded up, as the apiserver does
        assert size == max(0, math.ceil(Decimal(text)))


@given(st.integers(min_value=0, max_value=2**62), st.sampled_from(_SUFFIXES))
def test_a_whole_number_with_a_suffix_is_that_multiple(number: int, suffix: str) -> None:
    if number * _MULTIPLIERS[suffix] > 2**63 - 1:
        return
    assert parse_bytes(f"{number}{suffix}") == number * _MULTIPLIERS[suffix]


@given(st.integers(min_value=0, max_value=2**63))
def test_format_bytes_never_fails(size: int) -> None:
    assert format_bytes(size).split(" ")[1] in {"B", "KiB", "MiB", "GiB", "TiB"}


duration_text = st.one_of(
    st.text(st.sampled_from("0123456789smhdx \n"), max_size=24),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10**25), st.sampled_from("smhd")), min_size=1, max_size=4
    ).map(lambda parts: "".join(f"{n}{unit}" for n, unit in parts)),
)


@given(duration_text)
@example("9999999999999999999d")  # once: OverflowError from timedelta, which is no ValueError
def test_a_duration_is_a_timedelta_or_a_value_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except ValueError:
        return
    assert isinstance(duration, timedelta)
    assert duration >= timedelta(0)
