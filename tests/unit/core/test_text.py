"""Text is cut in the middle, so both what it is about and why survive."""

from __future__ import annotations

from slimguard.core.text import shorten


def test_short_text_is_untouched_and_long_text_keeps_both_ends_within_the_limit() -> None:
    assert shorten("fits", 4) == "fits"
    cut = shorten("container api: " + "x" * 100 + " is unreachable", 40)
    assert len(cut) == 40
    assert cut.startswith("container api: ")
    assert cut.endswith("unreachable")
    assert "…" in cut


def test_a_limit_too_small_for_the_ellipsis_still_holds() -> None:
    assert shorten("abcdef", 1) == "a"
    assert shorten("abcdef", 2) == "…f"  # the end, which says why, is kept first
    assert shorten("abcdef", 0) == ""
