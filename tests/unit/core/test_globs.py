"""Globs are shell-like (``*`` and ``?``), case-sensitive, and for images match any spelling of the reference."""

from __future__ import annotations

import pytest

from slimguard.core.model.globs import image_matches_any, matches_any
from slimguard.core.model.reference import ImageReference


def test_namespace_globs_use_star_and_question_mark_and_are_case_sensitive() -> None:
    assert matches_any("team-a", ["team-*"])
    assert matches_any("team-a", ["prod", "team-?"])
    assert not matches_any("team-ab", ["team-?"])
    assert not matches_any("Team-a", ["team-*"])
    assert not matches_any("team-a", [])


@pytest.mark.parametrize(
    ("image", "glob"),
    [
        ("node:20-alpine", "*/node:*-alpine"),
        ("docker.io/library/node:20-alpine", "*/node:*-alpine"),
        ("registry.example.com/mirror/node:22-alpine", "*/node:*-alpine"),
        ("node:20-alpine", "node:*-alpine"),
        ("node:20", "docker.io/library/node:*"),
        ("node:20", "docker.io/node:*"),
        ("node:20", "node"),
        ("registry.example.com/team/app:1.0", "registry.example.com/team/*"),
        ("registry.example.com/team/sub/app", "registry.example.com/team/*"),
        ("gcr.io/distroless/static-debian12:nonroot", "gcr.io/distroless/*"),
        ("debian:bookworm", "*/debian:*"),
    ],
)
def test_an_image_glob_matches_any_way_of_writing_the_image(image: str, glob: str) -> None:
    assert image_matches_any(ImageReference.parse(image), [glob])


@pytest.mark.parametrize(
    ("image", "glob"),
    [
        ("node:20", "*/node:*-alpine"),
        ("node:20-alpine", "*/node:*-slim"),
        ("registry.example.com/other/app:1.0", "registry.example.com/team/*"),
        ("registry.example.com/team-b/app:1.0", "registry.example.com/team/*"),
        ("registry.example.com/team/app:1.0", "other.example.com/team/*"),
        ("bitnami/node:20-alpine", "node:*"),
    ],
)
def test_an_image_glob_does_not_match_other_images(image: str, glob: str) -> None:
    assert not image_matches_any(ImageReference.parse(image), [glob])


def test_a_glob_on_a_tag_matches_a_pinned_reference_that_carries_that_tag() -> None:
    pinned = ImageReference.parse("node:20-alpine@sha256:" + "b" * 64)
    assert image_matches_any(pinned, ["*/node:*-alpine"])


def test_brackets_in_a_glob_are_literal_so_an_ipv6_registry_is_written_as_it_is_spelt() -> None:
    # Only '*' and '?' are wildcards (as the CRD documents); '[' is part of an IPv6 registry name.
    assert image_matches_any(ImageReference.parse("[::1]:5000/team/app:1"), ["[::1]:5000/team/*"])
    assert image_matches_any(ImageReference.parse("[::1]:5000/team/app:1"), ["[::1]:*"])
    assert not image_matches_any(ImageReference.parse("1:5000/team/app:1"), ["[::1]:*"])
    assert not matches_any("team-a", ["team-[ab]"])
    assert matches_any("team-[ab]", ["team-[ab]"])
