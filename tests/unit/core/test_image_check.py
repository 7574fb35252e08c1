"""Images checked on their own (the CLI): policy files, image-scoped policies, and the exit status of a check."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.builders import APP, MiB, context, facts, layers, platform_image, policy
from slimguard.core.errors import InspectionError, InvalidPolicy
from slimguard.core.evaluation.evaluate import evaluate
from slimguard.core.evaluation.outcome import EXIT_DENIED, EXIT_ERROR, EXIT_OK, check_exit_status, outcome_of
from slimguard.core.evaluation.plan import plan
from slimguard.core.facts.image_facts import FactsOrError, PlatformImage
from slimguard.core.model.image_check import image_scoped, image_workload, narrowed_to, policies_from_yaml
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import Decision, ImagePolicy
from slimguard.core.reports.report import image_result

POLICY_YAML = """
apiVersion: slimguard.dev/v1alpha1
kind: ImagePolicy
metadata: {name: slim}
spec:
  mode: Enforce
  match: {namespaces: ["team-*"], kinds: [Deployment], images: ["registry.example.com/*"]}
  rules: {maxCompressedSize: 200Mi}
---
apiVersion: slimguard.dev/v1alpha1
kind: ImagePolicy
metadata: {name: rootless}
spec:
  rules: {requireNonRootUser: true}
"""


def test_a_file_may_hold_several_policies_each_validated_by_the_crd_model() -> None:
    policies = policies_from_yaml(POLICY_YAML, source="policies.yaml")
    assert [p.name for p in policies] == ["slim", "rootless"]
    assert policies[0].spec.rules.compressed_limit == 200 * MiB


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "policies.yaml: not YAML (line 1)"),
        ("", "policies.yaml: holds no ImagePolicy"),
        ("- 1\n", "policies.yaml: a document is not a mapping"),
        ("apiVersion: v1\nkind: ConfigMap\n", "policies.yaml: ConfigMap is not an slimguard.dev/v1alpha1 ImagePolicy"),
        (
            "apiVersion: slimguard.dev/v1alpha1\nkind: ImagePolicy\nspec: {rules: {maxLayers: 3}}\n",
            "policies.yaml: an ImagePolicy has no metadata.name",
        ),
        (
            "apiVersion: slimguard.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\n"
            "spec: {rules: {maxLayers: 0}}\n",
            'policies.yaml: ImagePolicy "x" is invalid: spec.rules.maxLayers:',
        ),
    ],
)
def test_a_malformed_policy_file_is_one_error_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(InvalidPolicy) as raised:
        policies_from_yaml(text, source="policies.yaml")
    assert str(raised.value).startswith(message)


def test_an_image_is_checked_by_the_policy_image_globs_alone_and_findings_name_the_image() -> None:
    slim = image_scoped(policies_from_yaml(POLICY_YAML, source="p.yaml")[0])
    fat = facts(platform_image(*layers("fat", 3, 100 * MiB)))
    verdict = evaluate(plan([slim], image_workload(APP), {}), context({APP: fat}))
    assert verdict.policies == ("slim",)  # namespaces and kinds select workloads: an image has none
    (finding,) = verdict.findings
    assert finding.message.startswith(f"image {APP} is 300 MiB compressed (linux/amd64)")

    other = "docker.io/library/node:20"
    elsewhere = evaluate(plan([slim], image_workload(other), {}), context({other: fat}))
    assert elsewhere.policies == ()  # match.images still decides


def test_only_exemptions_naming_images_apply_to_an_image() -> None:
    exempt = policy(
        rules={"maxCompressedSize": "1Mi"},
        exemptions=[
            {"workloads": [{"namespace": "*"}], "reason": "every workload"},
        ],
    )
    verdict = evaluate(plan([image_scoped(exempt)], image_workload(APP), {}), context({APP: facts()}))
    assert [f.rule for f in verdict.findings] == ["maxCompressedSize"]
    by_image = policy(
        rules={"maxCompressedSize": "1Mi"}, exemptions=[{"images": ["registry.example.com/*"], "reason": "ours"}]
    )
    verdict = evaluate(plan([image_scoped(by_image)], image_workload(APP), {}), context({APP: facts()}))
    assert verdict.findings == ()
    assert [f.rule for f in verdict.exempted] == ["maxCompressedSize"]


def test_a_local_image_is_checked_for_the_platform_it_has_and_the_others_are_said_unchecked() -> None:
    multi = policy(rules={"platforms": ["linux/amd64", "linux/arm64"], "maxLayers": 10})
    narrowed, unchecked = narrowed_to(multi, [Platform("linux", "amd64")])
    assert narrowed.spec.rules.required_platforms == (Platform("linux", "amd64"),)
    assert unchecked == (Platform("linux", "arm64"),)
    untouched, none = narrowed_to(multi, [Platform("linux", "s390x")])
    # Nothing it has is required: the policy is left whole, so the platforms rule says what is missing.
    assert untouched is multi
    assert none == ()


def test_the_exit_status_of_a_check_errors_are_never_a_pass() -> None:
    enforce = policy("enforce", rules={"maxCompressedSize": "1Mi"}, mode="Enforce")
    warn = policy("warn", rules={"maxCompressedSize": "1Mi"}, mode="Warn")
    audit = policy("audit", rules={"maxCompressedSize": "1Mi"}, mode="Audit")
    allow = {p.name: Decision.ALLOW for p in (enforce, warn, audit)}

    def status(policies: list[ImagePolicy], found: FactsOrError, *, strict: bool = False) -> int:
        verdict = evaluate(plan([image_scoped(p) for p in policies], image_workload(APP), {}), context({APP: found}))
        return check_exit_status(outcome_of(verdict, on_unknown=allow), strict=strict)

    assert status([enforce], facts()) == EXIT_DENIED
    assert status([warn], facts()) == EXIT_OK
    assert status([warn], facts(), strict=True) == EXIT_DENIED
    assert status([audit], facts(), strict=True) == EXIT_OK
    down = InspectionError("registry.example.com is unreachable", reason="RegistryUnreachable")
    assert status([audit], down) == EXIT_ERROR  # onUnknown: Allow admits it in a cluster; CI must not pass it
    assert status([enforce, warn], down) == EXIT_ERROR


def test_a_local_image_within_the_limit_uncompressed_passes_and_beyond_it_is_unknown_compressed() -> None:
    limit = policy(rules={"maxCompressedSize": "10Mi"}, mode="Enforce")
    small = facts(platform_image(*layers("small", 3, 2 * MiB)))
    local_small = facts(_local(small.platforms[0]))
    verdict = evaluate(plan([image_scoped(limit)], image_workload(APP), {}), context({APP: local_small}))
    assert verdict.findings == ()
    big = facts(_local(platform_image(*layers("big", 3, 20 * MiB))))
    verdict = evaluate(plan([image_scoped(limit)], image_workload(APP), {}), context({APP: big}))
    (finding,) = verdict.findings
    assert finding.reason == "CompressedSizeUnknown"
    assert "60 MiB uncompressed (linux/amd64) in the local Docker engine" in finding.message
    assert "--measure-compressed" in finding.message


def _local(image: PlatformImage) -> PlatformImage:
    """As a local engine reports it: the layer sizes are uncompressed, no compressed size is known."""
    return replace(image, compressed_measured=False)


def test_an_image_no_policy_selects_is_not_a_pass() -> None:
    only_ours = image_scoped(policy(rules={"maxLayers": 100}, match={"images": ["registry.example.com/ours/*"]}))
    verdict = evaluate(plan([only_ours], image_workload(APP), {}), context({APP: facts()}))
    assert verdict.policies == ()
    assert image_result(APP, verdict, outcome_of(verdict, on_unknown={})).exit_status == EXIT_ERROR
