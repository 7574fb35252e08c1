"""The mode mapping every entry point shares: Enforce denies, Warn warns, Audit records, onUnknown decides errors."""

from __future__ import annotations

from slimguard.core.evaluation.outcome import EXIT_DENIED, EXIT_OK, outcome_of, worst_exit_status
from slimguard.core.evaluation.verdict import Finding, FindingKind, Verdict
from slimguard.core.model.policy import Decision, Mode
from slimguard.core.model.workload import WorkloadKey

KEY = WorkloadKey("Deployment", "shop", "api")


def finding(policy: str, mode: Mode, *, kind: FindingKind = FindingKind.VIOLATION, message: str = "is fat") -> Finding:
    return Finding(
        policy=policy, mode=mode, container="api", image="shop/api:1", rule="maxLayers", message=message, kind=kind
    )


def verdict(*findings: Finding) -> Verdict:
    return Verdict(KEY, tuple(sorted({f.policy for f in findings})), findings)


def test_an_enforce_violation_denies_and_exits_non_zero() -> None:
    result = outcome_of(verdict(finding("strict", Mode.ENFORCE)), on_unknown={})
    assert not result.allowed
    assert result.exit_status == EXIT_DENIED
    assert [f.policy for f in result.denials] == ["strict"]
    assert result.warnings == ()


def test_a_warn_violation_admits_with_its_message_as_a_warning() -> None:
    result = outcome_of(verdict(finding("gentle", Mode.WARN, message="is 300 MiB")), on_unknown={})
    assert result.allowed
    assert result.exit_status == EXIT_OK
    assert result.warnings == ("is 300 MiB",)


def test_an_audit_violation_admits_silently() -> None:
    result = outcome_of(verdict(finding("watch", Mode.AUDIT)), on_unknown={})
    assert (result.allowed, result.warnings, result.denials) == (True, (), ())


def test_an_error_in_an_enforce_policy_is_denied_only_when_on_unknown_is_deny() -> None:
    error = finding("strict", Mode.ENFORCE, kind=FindingKind.ERROR, message="could not be inspected")
    denied = outcome_of(verdict(error), on_unknown={"strict": Decision.DENY})
    assert [f.message for f in denied.denials] == ["could not be inspected"]
    assert denied.unknown == (error,)
    admitted = outcome_of(verdict(error), on_unknown={"strict": Decision.ALLOW})
    assert admitted.allowed
    assert admitted.warnings == ("could not be inspected; admitted unchecked (onUnknown: Allow)",)
    assert admitted.unknown == (error,)


def test_on_unknown_deny_in_a_warn_policy_still_admits() -> None:
    error = finding("gentle", Mode.WARN, kind=FindingKind.ERROR, message="could not be inspected")
    assert outcome_of(verdict(error), on_unknown={"gentle": Decision.DENY}).allowed


def test_the_denial_message_names_every_policy_and_lists_every_denial() -> None:
    result = outcome_of(
        verdict(finding("b-policy", Mode.ENFORCE, message="one"), finding("a-policy", Mode.ENFORCE, message="two")),
        on_unknown={},
    )
    assert result.denial_message("Deployment shop/api") == (
        'slimguard denied Deployment shop/api: 2 violation(s) of ImagePolicy "a-policy", "b-policy":\n- one\n- two'
    )


def test_the_worst_exit_status_of_several_checks_wins() -> None:
    ok = outcome_of(verdict(), on_unknown={})
    denied = outcome_of(verdict(finding("strict", Mode.ENFORCE)), on_unknown={})
    assert worst_exit_status([ok, denied, ok]) == EXIT_DENIED
    assert worst_exit_status([]) == EXIT_OK


def test_each_policy_decides_by_its_strictest_finding_and_the_review_by_the_strictest_policy() -> None:
    result = outcome_of(
        verdict(
            finding("gentle", Mode.WARN),
            finding("strict", Mode.ENFORCE, kind=FindingKind.ERROR, message="could not be inspected"),
            finding("watch", Mode.AUDIT),
        ),
        on_unknown={},
    )
    assert result.policy_decisions == {"gentle": "warned", "strict": "unknown"}
    assert result.decision == "unknown"
    assert outcome_of(verdict(), on_unknown={}).decision == "allowed"


def test_objects_made_by_a_controller_get_no_warnings_and_none_is_counted() -> None:
    result = outcome_of(verdict(finding("gentle", Mode.WARN)), on_unknown={}, warn=False)
    assert (result.warnings, result.decision) == ((), "allowed")
