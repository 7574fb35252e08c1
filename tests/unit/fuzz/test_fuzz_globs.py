"""Globs come from policies: any glob against any name or reference is True or False, and means what it says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from slimguard.core.errors import InvalidReference
from slimguard.core.model.globs import image_matches_any, matches_any
from slimguard.core.model.reference import ImageReference

from .strategies import references

glob_text = st.text(st.sampled_from("ab-/.:*?[]!^\\"), max_size=16)
names = st.text(st.sampled_from("ab-/.:"), max_size=16)


@given(names, st.lists(glob_text, max_size=3))
def test_any_glob_against_any_name_is_a_boolean(name: str, globs: list[str]) -> None:
    assert isinstance(matches_any(name, globs), bool)
    assert matches_any(name, [*globs, "*"])
    assert not matches_any(name, [])


@given(names)
def test_a_glob_without_wildcards_matches_exactly_itself(name: str) -> None:
    assert matches_any(name, [name])
    assert not matches_any(name + "x", [name])


@given(references(), st.lists(glob_text, max_size=3))
def test_every_spelling_of_a_reference_matches_itself_and_star_matches_all(text: str, globs: list[str]) -> None:
    try:
        reference = ImageReference.parse(text)
    except InvalidReference:
        return
    assert image_matches_any(reference, ["*"])
    assert isinstance(image_matches_any(reference, globs), bool)
    for spelling in reference.spellings():
        if "[" not in spelling:  # an IPv6 registry: "[" opens a character class, as in shell globs
            assert image_matches_any(reference, [spelling])
