"""A verdict's status and mode: violations outrank errors, errors outrank pending, the strictest mode decides."""

from __future__ import annotations

from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.verdict import Finding, FindingKind, Status, Verdict
from slimguard.core.model.policy import Mode
from slimguard.core.model.workload import WorkloadKey

from . import builders

KEY = WorkloadKey("Deployment", "team-a", "api")


def finding(policy: str = "slim", mode: Mode = Mode.AUDIT, kind: FindingKind = FindingKind.VIOLATION) -> Finding:
    return Finding(
        policy=policy, mode=mode, container="app", image="x", rule="maxLayers", message="too many", kind=kind
    )


def test_no_finding_is_compliant_and_no_policy_means_the_verdict_does_not_apply() -> None:
    assert Verdict(KEY, ("slim",)).status is Status.COMPLIANT
    assert Verdict(KEY, ("slim",)).applies
    assert not Verdict(KEY, ()).applies


def test_a_violation_outranks_an_error_which_outranks_pending() -> None:
    error = finding(kind=FindingKind.ERROR)
    assert Verdict(KEY, ("slim",), (error, finding()), pending_images=("x",)).status is Status.NONCOMPLIANT
    assert Verdict(KEY, ("slim",), (error,), pending_images=("x",)).status is Status.ERROR
    assert Verdict(KEY, ("slim",), pending_images=("x",)).status is Status.PENDING


def test_exempted_findings_do_not_make_a_workload_noncompliant() -> None:
    assert Verdict(KEY, ("slim",), exempted=(finding(),)).status is Status.COMPLIANT


def test_the_mode_is_the_strictest_among_violations_and_errors_do_not_count() -> None:
    verdict = Verdict(
        KEY,
        ("a", "b", "c"),
        (
            finding("a", Mode.AUDIT),
            finding("b", Mode.WARN),
            finding("c", Mode.ENFORCE, FindingKind.ERROR),
        ),
    )
    assert verdict.mode is Mode.WARN
    assert Verdict(KEY, ("a",)).mode is None


def test_findings_can_be_read_per_policy_and_as_plain_dicts() -> None:
    verdict = Verdict(KEY, ("a", "b"), (finding("a"), finding("b", kind=FindingKind.ERROR)))
    assert [f.policy for f in verdict.for_policy("b")] == ["b"]
    assert verdict.findings[0].as_dict() == {
        "policy": "a",
        "container": "app",
        "image": "x",
        "rule": "maxLayers",
        "message": "too many",
    }
    assert verdict.findings[1].as_dict()["kind"] == "error"


def test_the_status_under_one_policy_counts_only_that_policys_findings() -> None:
    def finding(policy: str, kind: FindingKind) -> Finding:
        return Finding(policy=policy, mode=Mode.AUDIT, container="api", image="x", rule="r", message="m", kind=kind)

    verdict = Verdict(
        WorkloadKey("Deployment", "shop", "api"),
        ("size", "scan", "clean"),
        (finding("size", FindingKind.VIOLATION), finding("scan", FindingKind.ERROR)),
    )
    assert verdict.status is Status.NONCOMPLIANT
    assert verdict.status_for("size") is Status.NONCOMPLIANT
    assert verdict.status_for("scan") is Status.ERROR
    assert verdict.status_for("clean") is Status.COMPLIANT


def test_an_error_about_one_image_found_by_seven_policies_is_said_once_and_counted_for_each() -> None:
    names = [f"policy-{n}" for n in range(7)]
    unreachable = InspectionError("registry registry.example.com is unreachable", reason="Unreachable")
    verdict = builders.verdict([builders.policy(name) for name in names], facts_by_image={builders.APP: unreachable})
    assert len(verdict.errors) == 7, "one per policy, so each policy's status counts it"
    (said,) = verdict.distinct_findings
    assert said.policies == tuple(names)
    assert said.message.endswith("could not be inspected: registry registry.example.com is unreachable")
    assert said.as_dict()["policies"] == names
    assert said.as_dict()["policy"] == "policy-0"
    assert all(verdict.status_for(name) is Status.ERROR for name in names)


def test_findings_that_differ_in_what_they_say_stay_apart() -> None:
    fat = builders.facts(builders.platform_image(*builders.layers("fat", 3)))
    verdict = builders.verdict(
        [builders.policy("a", rules={"maxLayers": 1}), builders.policy("b", rules={"maxLayers": 2})],
        facts_by_image={builders.APP: fat},
    )
    # Each violation names its own policy and limit: two statements, one policy each.
    assert [f.policies for f in verdict.distinct_findings] == [("a",), ("b",)]
    assert "policies" not in verdict.distinct_findings[0].as_dict()
