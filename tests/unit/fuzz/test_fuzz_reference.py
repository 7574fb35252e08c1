"""Image references are user input: whatever text arrives, the parser accepts exactly the grammar or says why not."""

from __future__ import annotations

import re

from hypothesis import example, given

from slimguard.core.errors import InvalidReference
from slimguard.core.model.reference import ImageReference

from .strategies import reference_like_text, references

# The grammar of github.com/distribution/reference (regexp.go), whole-string: an independent oracle.
_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_COMPONENT}(?:\.{_COMPONENT})*|\[[a-fA-F0-9:.]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
GRAMMAR = re.compile(rf"(?:{_DOMAIN}/)?{_PATH}(?::{_TAG})?(?:@{_DIGEST})?")


def _parse_or_none(text: str) -> ImageReference | None:
    try:
        return ImageReference.parse(text)
    except InvalidReference:
        return None


@given(reference_like_text)
@example("node\n:20")
@example("registry.example.com\n/app:1")
@example("app:1.0\n")
def test_only_invalid_reference_escapes_and_only_the_grammar_is_accepted(text: str) -> None:
    reference = _parse_or_none(text)  # any other exception fails the test by itself
    if reference is not None:
        assert GRAMMAR.fullmatch(text), f"accepted {text!r}, which the reference grammar does not"


@given(reference_like_text)
def test_what_is_accepted_prints_to_text_that_parses_to_the_same_reference(text: str) -> None:
    reference = _parse_or_none(text)
    if reference is not None:
        assert ImageReference.parse(str(reference)) == reference
        assert GRAMMAR.fullmatch(str(reference))


@given(references())
def test_every_reference_of_the_grammar_is_accepted_unless_too_long(text: str) -> None:
    try:
        reference = ImageReference.parse(text)
    except InvalidReference as error:
        message = str(error)
    else:
        assert ImageReference.parse(str(reference)) == reference
        return
    # Beyond the grammar: the name (with Docker Hub's defaults) is at most 255 characters, and a first path
    # component holding a dot is a registry host (distribution's splitDockerDomain), so it must be one.
    assert "longer than 255" in message or "invalid registry" in message, (text, message)
