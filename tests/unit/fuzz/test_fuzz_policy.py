"""ImagePolicy specs are written by people: the model turns any JSON into a policy or an InvalidPolicy naming the
field, and whatever it accepts, evaluation can run without an exception of its own."""

from __future__ import annotations

from typing import Any

# tests/unit/core's builders: pytest puts tests/unit on sys.path, so that package is importable as ``core``.
from core.builders import APP, NOW, context, facts, vulnerability_report, workload
from hypothesis import example, given
from hypothesis import strategies as st

from slimguard.core.errors import InvalidPolicy
from slimguard.core.evaluation.evaluate import evaluate
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import Status
from slimguard.core.model.policy import ImagePolicy

from .strategies import json_values, near_valid_specs, plausible

_FIELDS = [
    "mode",
    "onUnknown",
    "match",
    "exclude",
    "rules",
    "exemptions",
    "knownBaseImages",
    "namespaces",
    "kinds",
    "names",
    "images",
    "namespaceSelector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "maxCompressedSize",
    "maxUncompressedSize",
    "maxLayers",
    "allowedBaseImages",
    "deniedBaseImages",
    "requireNonRootUser",
    "requireDigest",
    "platforms",
    "vulnerabilities",
    "maxCritical",
    "maxHigh",
    "maxMedium",
    "ignoreUnfixed",
    "maxReportAge",
    "onMissingReport",
    "workloads",
    "namespace",
    "kind",
    "name",
    "reason",
    "expires",
]
field_names = st.one_of(st.sampled_from(_FIELDS), st.text(max_size=6))
specs = json_values(keys=field_names, leaves=plausible)


def _policy_or_none(spec: Any) -> ImagePolicy | None:
    try:
        return ImagePolicy.from_resource("fuzzed", spec)
    except InvalidPolicy as error:
        message = str(error)
    assert message.startswith('ImagePolicy "fuzzed" is invalid: ')
    return None


@given(specs)
def test_any_json_spec_is_a_policy_or_an_invalid_policy(spec: Any) -> None:
    _policy_or_none(spec if isinstance(spec, dict) else {"rules": spec})


@given(near_valid_specs)
@example({"rules": {"vulnerabilities": {"maxCritical": 0, "maxReportAge": "999999999d"}}})
@example({"rules": {"vulnerabilities": {"maxCritical": 0, "maxReportAge": "9999999999999999999d"}}})
def test_every_policy_the_model_accepts_evaluates(spec: dict[str, Any]) -> None:
    policy = _policy_or_none(spec)
    if policy is None:
        return
    subject = workload(APP)
    image = facts()
    reports = [vulnerability_report(name="api", kind="Deployment", artifact_digest=image.digest, updated=NOW)]
    verdict = evaluate(plan([policy], subject, {}), context({APP: image}, reports=reports))
    assert verdict.status in set(Status)
