"""The Python model refuses what the apiserver's schema refuses: one set of invalid policies, two gatekeepers.

The CLI reads policy files without an apiserver in between, so it must not be looser than the CRD.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slimguard.core.errors import InvalidPolicy
from slimguard.core.model.policy import ImagePolicy, Rules

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


def test_the_crd_has_every_rule_of_the_model_and_counts_each_as_a_rule_set() -> None:
    """A rule added to the model but not to the CRD would be pruned or refused by the apiserver, and one left out of
    the CRD's "at least one rule" check would make a policy setting only it invalid in the cluster, valid in the CLI."""
    crd = yaml.safe_load((REPO / "crds" / "slimguard.dev_imagepolicies.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]
    fields = {info.alias or name for name, info in Rules.model_fields.items()}
    assert set(rules["properties"]) == fields
    (at_least_one,) = [
        check for check in rules["x-kubernetes-validations"] if "at least one rule" in check.get("message", "")
    ]
    for field in fields:
        assert f"has(self.{field})" in at_least_one["rule"], field
        assert field in at_least_one["message"], field
