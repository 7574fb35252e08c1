"""The Python model refuses what the apiserver's schema refuses: one set of invalid policies, two gatekeepers.

The CLI reads policy files without an apiserver in between, so it must not be looser than the CRD.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slimguard.core.errors import InvalidPolicy
from slimguard.core.model.policy import ImagePolicy

REPO = Path(__file__).resolve().parents[3]
INVALID = sorted((REPO / "tests" / "e2e" / "fixtures" / "invalid-policies").glob("*.yaml"))
SHIPPED = sorted((REPO / "policies").glob("*.yaml"))


def load(path: Path) -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_every_policy_the_apiserver_rejects_is_rejected_by_the_model_too(path: Path) -> None:
    document = load(path)
    name = document["metadata"]["name"]
    # The message names the policy and the field at fault, as the apiserver's does.
    with pytest.raises(InvalidPolicy, match=rf'^ImagePolicy "{name}" is invalid: spec\.\w+'):
        ImagePolicy.from_resource(name, document.get("spec") or {})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_policies_we_ship_are_valid(path: Path) -> None:
    document = load(path)
    policy = ImagePolicy.from_resource(document["metadata"]["name"], document["spec"])
    assert policy.spec.rules.compressed_limit is not None
    # A shipped glob-only base rule would match by annotation only, i.e. nothing `docker build` makes.
    assert policy.base_detection_warning is None
