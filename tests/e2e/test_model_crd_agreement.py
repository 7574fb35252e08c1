"""The ImagePolicy model (used by the webhook, the controller and the CLI) and the CRD (enforced by the
apiserver) agree: a sample of near-valid specs, each judged by both. A policy only the model accepts would be
refused at `kubectl apply` though `slimguard check` passed it; one only the CRD accepts is stored but ignored.

One difference is on purpose and not sampled: a field the schema does not know is pruned by the apiserver
with a warning, and refused by the model, so a misspelt rule fails `slimguard check` loudly."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings

from slimguard.core.errors import InvalidPolicy
from slimguard.core.model.policy import ImagePolicy
from slimguard_testbed import ControlPlane

# The unit tier's fuzzing strategies, shared rather than copied (tests/unit is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from fuzz.strategies import near_valid_specs

POLICIES = "/apis/slimguard.dev/v1alpha1/imagepolicies"


@pytest.fixture(scope="module")
def apiserver(control_plane: ControlPlane, crds_installed: None) -> Iterator[httpx.Client]:
    pki = control_plane.workdir / "pki"
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with httpx.Client(base_url=control_plane.server, verify=context, timeout=30) as client:
        yield client


def model_accepts(spec: dict[str, Any]) -> bool:
    try:
        ImagePolicy.from_resource("fuzzed", spec)
    except InvalidPolicy:
        return False
    return True


def crd_answer(client: httpx.Client, spec: dict[str, Any]) -> httpx.Response:
    """A server-side dry run: the schema, CEL and defaulting all run, nothing is stored."""
    body = {"apiVersion": "slimguard.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": "fuzzed"}, "spec": spec}
    return client.post(POLICIES, params={"dryRun": "All"}, json=body)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same sample every run: a disagreement found once is found again
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=near_valid_specs)
@example(spec={"rules": {"maxCompressedSize": "200Mi"}})
@example(spec={"rules": {"maxCompressedSize": "1e3Mi"}})  # exponent and suffix: the model took it (fixed)
@example(spec={"rules": {"maxCompressedSize": " 1Gi"}})  # a space: the model stripped it (fixed)
@example(spec={"rules": {"allowedBaseImages": []}})  # an empty list sets no rule: the model said it did (fixed)
@example(spec={"rules": {"platforms": []}})
@example(spec={"rules": {"deniedBaseImages": [" "]}})
@example(spec={"rules": {"maxLayers": 1.5}})
@example(spec={"rules": {"maxCompressedSize": 1.5}})
@example(spec={"rules": {"maxCompressedSize": 2**63}})
@example(spec={"rules": {"requireNonRootUser": 1}})  # the model took 1 as true (fixed: strict booleans)
@example(spec={"rules": {"maxLayers": "5"}})  # and "5" as 5 (fixed: strict integers)
@example(spec={"rules": {"platforms": ["Linux/AMD64"]}})  # and upper case platforms (fixed: the CRD's pattern)
@example(spec={"mode": None, "rules": {"maxCritical": None, "requireDigest": True}})  # null is "not set" (fixed)
@example(spec={"rules": {"vulnerabilities": {"maxCritical": 0, "maxHigh": None}}})
def test_the_model_accepts_exactly_what_the_crd_accepts(apiserver: httpx.Client, spec: dict[str, Any]) -> None:
    answer = crd_answer(apiserver, spec)
    assert answer.status_code in (201, 400, 422), answer.text
    assert model_accepts(spec) == (answer.status_code == 201), f"{spec!r}: the apiserver said {answer.text[:600]}"
