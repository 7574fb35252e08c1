"""Kubernetes quantities (``200Mi``, ``1G``, ``1.5Gi``) and human-readable sizes."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
    "Pi": Decimal(1024**5),
    "Ei": Decimal(1024**6),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
# An exponent has at most 2 digits, as the CRD demands: 1e999999999 is a valid Decimal whose integer value
# would take minutes and gigabytes to build.
_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]{1,2})?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def parse_bytes(value: str | int) -> int:
    """A Kubernetes quantity as a whole number of bytes (rounded up, as the apiserver does)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    match = _QUANTITY_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 200Mi or 1G")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        amount = Decimal(number) * _SUFFIXES[suffix]
    except ArithmeticError as error:  # InvalidOperation ("1.2.3"), and Overflow should the grammar ever widen
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 200Mi or 1G") from error
    if amount < 0:
        raise ValueError(f"{value!r} is negative")
    whole = int(amount)
    return whole if whole == amount else whole + 1


def format_bytes(size: int) -> str:
    """``1299227648`` → ``1.21 GiB``; binary units, as ``docker images`` and Kubernetes limits read."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        # Compare after rounding: 1048575 bytes reads "1 MiB", not "1024 KiB".
        if round(value, 2) < 1024 or unit == "TiB":
            text = f"{value:.2f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
