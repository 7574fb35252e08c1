"""No cascades: a test that uses a shared real part which has died fails at once, naming the part and its error.

Session- and module-scoped parts (the in-process controller, the control plane, the registries, the webhook
replicas, dockerd) outlive the test that broke them. Without this check every later test that uses a dead part
waits out its own timeout (issue 21: one controller that died in a restart cost ~80 tests a minute each).
tests/e2e/conftest.py imports the fixture below, which makes it autouse for every end-to-end test.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pytest

# The fixture names of the shared parts, and how a failure message names each one.
SHARED_PARTS: dict[str, str] = {
    "control_plane": "the session's control plane",
    "registry": "the session's registry (token auth)",
    "basic_registry": "the session's registry (htpasswd)",
    "open_registry": "the session's registry (no auth)",
    "docker_engine": "the session's Docker engine",
    "operator": "the session's in-process controller",
    "webhook": "the module's webhook replicas",
    "real_node": "the session's real node",
}


@runtime_checkable
class SharedPart(Protocol):
    def failure(self) -> str | None:
        """Why the part is no longer usable, or None while it is."""


def dead_part_message(parts: dict[str, object]) -> str | None:
    """The failure message for the first dead part among `parts` (fixture name -> value), else None."""
    for name, part in parts.items():
        if isinstance(part, SharedPart) and (reason := part.failure()) is not None:
            return f"{SHARED_PARTS.get(name, name)} is not running: {reason}"
    return None


@pytest.fixture(autouse=True)
def fail_fast_when_a_shared_part_died(request: pytest.FixtureRequest) -> None:
    # Higher-scoped fixtures are set up before any function-scoped one, so this only reads cached values.
    used = {name: request.getfixturevalue(name) for name in SHARED_PARTS if name in request.fixturenames}
    if (message := dead_part_message(used)) is not None:
        pytest.fail(message, pytrace=False)
