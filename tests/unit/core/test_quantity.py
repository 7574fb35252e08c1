"""Size limits are Kubernetes quantities; sizes are shown in binary units, as docker and kubectl show them."""

from __future__ import annotations

import pytest

from slimguard.core.model.quantity import format_bytes, parse_bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("200Mi", 200 * 1024**2),
        ("1G", 10**9),
        ("1.5Gi", 1536 * 1024**2),
        ("500M", 500 * 10**6),
        ("64Ki", 64 * 1024),
        ("3k", 3000),
        ("1Ti", 1024**4),
        ("1E", 10**18),
        ("1e3", 1000),
        ("1E3", 1000),
        (".5Ki", 512),
        ("1024", 1024),
        ("+7", 7),
    ],
)
def test_kubernetes_quantities_become_bytes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_plain_integers_are_bytes() -> None:
    assert parse_bytes(629145600) == 629145600
    assert parse_bytes(0) == 0


def test_a_fraction_of_a_byte_is_rounded_up_as_the_apiserver_does() -> None:
    assert parse_bytes("1.5") == 2
    assert parse_bytes("0.1Ki") == 103


@pytest.mark.parametrize(
    "text",
    # An exponent and a suffix together, and spaces anywhere, are not quantities to the apiserver either.
    [
        *("", "abc", "200MB", "200mi", "1K", "Mi", "1.2.3Mi", ".", "500m", "0x10"),
        *("1 Mi", " 1Mi", "1Mi ", "2.5e2Ki", "1e3M"),
    ],
)
def test_strings_that_are_not_quantities_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="200Mi"):
        parse_bytes(text)


@pytest.mark.parametrize("value", [-1, "-1", "-200Mi", "-1e3"])
def test_negative_quantities_are_refused(value: int | str) -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_bytes(value)


def test_a_boolean_is_not_a_quantity_even_though_python_counts_it_as_an_int() -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_bytes(True)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (200 * 1024**2, "200 MiB"),
        (1299227648, "1.21 GiB"),
        (3 * 1024**4, "3 TiB"),
        (2048 * 1024**4, "2048 TiB"),
    ],
)
def test_sizes_read_in_binary_units_with_at_most_two_decimals(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_a_size_just_under_a_unit_rounds_into_that_unit_not_to_1024_of_the_one_below() -> None:
    assert format_bytes(1024**2 - 1) == "1 MiB"
    assert format_bytes(1024**3 - 1) == "1 GiB"
