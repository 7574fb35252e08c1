"""A verdict's status and mode: violations outrank errors, errors outrank pending, the strictest mode decides."""

from __future__ import annotations

from slimguard.core.policy import Mode
from slimguard.core.verdict import Finding, FindingKind, Status, Verdict
from slimguard.core.workload import WorkloadKey

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
