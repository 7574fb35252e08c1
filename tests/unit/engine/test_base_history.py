"""The versions of a base slimguard has read: newest first, the current one apart, bounded."""

from __future__ import annotations

from core.builders import facts, layers, platform_image

from slimguard.engine.bases import BaseHistory

BASE = "registry.example.com/base/node:20-bookworm"


def _version(n: int) -> object:
    return facts(platform_image(*layers(f"v{n}", 1), seed=f"v{n}"), seed=f"v{n}")


def test_earlier_versions_are_newest_first_without_the_current_one_and_bounded() -> None:
    history = BaseHistory(per_reference=3)
    versions = [_version(n) for n in range(5)]
    for version in versions:
        history.record(BASE, version)  # type: ignore[arg-type]
    current = versions[-1]
    assert history.earlier(BASE, current.digest) == (versions[3], versions[2])  # type: ignore[attr-defined]
    assert history.earlier("registry.example.com/other:1", current.digest) == ()  # type: ignore[attr-defined]


def test_a_version_read_again_is_not_kept_twice() -> None:
    history = BaseHistory()
    one, two = _version(1), _version(2)
    for version in (one, two, one):
        history.record(BASE, version)  # type: ignore[arg-type]
    assert history.earlier(BASE, "sha256:none") == (one, two)
