"""Kubernetes quantities (``200Mi``, ``1G``, ``1.5Gi``) and human-readable sizes."""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, ROUND_CEILING, Context, Decimal, InvalidOperation, localcontext

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
# A quantity in bytes is an int64 in Kubernetes; anything larger is no image size, and converting a Decimal
# such as 1e999999 to an int takes minutes (found by tests/unit/fuzz/test_fuzz_quantity.py).
MAX_BYTES = 2**63 - 1
# The CRD's grammar exactly (crds/: a number, then one exponent *or* one suffix; no spaces), so a policy file
# `slimguard check` accepts is one `kubectl apply` accepts (tests/e2e/test_model_crd_agreement.py). An
# exponent has at most 2 digits (the apiserver's own quantity check ran past its timeout on 1e999999999).
_QUANTITY_RE = re.compile(
    r"([+-]?(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+))(?:([eE][+-]?[0-9]{1,2})|(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E))?"
)


class QuantityTooLarge(ValueError):
    """A well-formed quantity beyond what an int64 of bytes holds."""


def parse_bytes(value: str | int) -> int:
    """A Kubernetes quantity as a whole number of bytes (rounded up, as the apiserver does)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    match = _QUANTITY_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 200Mi or 1G")
    number_text, suffix = match.group(1) + (match.group(2) or ""), match.group(3) or ""
    try:
        number = Decimal(number_text)  # exact: construction does not round
    except InvalidOperation as error:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 200Mi or 1G") from error
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    if number > MAX_BYTES:
        raise QuantityTooLarge(f"{value!r} is larger than a Kubernetes quantity of bytes can be (2^63-1)")
    # Exact arithmetic: the default 28 digits rounded 1.0000000000000000000000000000001 down to 1, and its
    # exponent range turned 1e-99999999 into 0 and 1e9999999999 into decimal.Overflow (no ValueError).
    exact = Context(prec=len(number.as_tuple().digits) + 25, Emin=MIN_EMIN, Emax=MAX_EMAX, traps=[])
    with localcontext(exact):
        whole = int((number * _SUFFIXES[suffix]).to_integral_value(rounding=ROUND_CEILING))  # rounded up, as Kubernetes
    if whole > MAX_BYTES:
        raise QuantityTooLarge(f"{value!r} is larger than a Kubernetes quantity of bytes can be (2^63-1)")
    return whole


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
