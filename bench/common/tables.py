"""The Markdown tables the benchmarks print (and bench/README.md quotes), and their "Met" column."""

from __future__ import annotations

from collections.abc import Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def met(ok: bool | None) -> str:
    """A target's verdict: reported beside the measurement, never asserted (a benchmark, not a test)."""
    return "n/a" if ok is None else ("yes" if ok else "NO")
