"""What a verdict means for the one who asked: denials, warnings and an exit status, by each policy's mode.

One mapping for every entry point: the webhook answers with it, and a CI check exits with it.
- Enforce violations deny; Warn violations warn; Audit violations are only recorded.
- An error (facts that could not be had, a rule left undecided) is decided by its policy's ``onUnknown``:
  Deny in an Enforce policy denies it; otherwise it is admitted with a warning saying it was not checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from slimguard.core.evaluation.verdict import Finding, FindingKind, Verdict
from slimguard.core.model.policy import Decision, Mode

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_ERROR = 2
"""A check that could not be completed (an image or base unreadable, a bad policy, bad usage): never a pass."""

ALLOWED, WARNED, UNKNOWN, DENIED = "allowed", "warned", "unknown", "denied"
DECISIONS = (ALLOWED, WARNED, UNKNOWN, DENIED)
"""A policy's decision, mildest first; a review under several policies takes the strictest of theirs."""


@dataclass(frozen=True, slots=True)
class Outcome:
    denials: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()
    unknown: tuple[Finding, ...] = ()
    """The error findings, whichever way onUnknown decided them (they are counted)."""
    policy_decisions: Mapping[str, str] = field(default_factory=dict)
    """Each policy with a finding: the strictest of DECISIONS its findings led to (absent: allowed)."""

    @property
    def decision(self) -> str:
        return max(self.policy_decisions.values(), key=DECISIONS.index, default=ALLOWED)

    @property
    def allowed(self) -> bool:
        return not self.denials

    @property
    def exit_status(self) -> int:
        return EXIT_OK if self.allowed else EXIT_DENIED

    def denial_message(self, subject: str) -> str:
        """``slimguard denied <subject>: N violation(s) of ImagePolicy "a", "b":`` and one line per denial."""
        policies = ", ".join(sorted({f'"{finding.policy}"' for finding in self.denials}))
        said = list(dict.fromkeys(finding.message for finding in self.denials))  # one error under 7 policies: once
        lines = "\n".join(f"- {text}" for text in said)
        return f"slimguard denied {subject}: {len(said)} violation(s) of ImagePolicy {policies}:\n{lines}"


def outcome_of(verdict: Verdict, *, on_unknown: Mapping[str, Decision], warn: bool = True) -> Outcome:
    """Map each finding by its policy's mode (and ``onUnknown`` for errors; a policy not named there: Allow).

    ``warn=False`` for objects a workload controller made: nobody reads warnings sent to it, so none are given
    (and none is counted as given).
    """
    denials: list[Finding] = []
    warnings: list[tuple[Finding, str]] = []
    unknown: list[Finding] = []
    decided: dict[str, str] = {}

    def decide(finding: Finding, decision: str) -> None:
        if DECISIONS.index(decision) > DECISIONS.index(decided.get(finding.policy, ALLOWED)):
            decided[finding.policy] = decision

    for finding in verdict.findings:
        if finding.kind is FindingKind.ERROR:
            unknown.append(finding)
            if finding.mode is Mode.ENFORCE and on_unknown.get(finding.policy) is Decision.DENY:
                denials.append(finding)
                decide(finding, DENIED)
            else:
                warnings.append((finding, f"{finding.message}; admitted unchecked (onUnknown: Allow)"))
                decide(finding, UNKNOWN)
        elif finding.mode is Mode.ENFORCE:
            denials.append(finding)
            decide(finding, DENIED)
        elif finding.mode is Mode.WARN and warn:
            warnings.append((finding, finding.message))
            decide(finding, WARNED)
    # An image that cannot be inspected is an error under every policy checking it, in the same words: it is
    # said once, and not as "admitted" where another policy denies it.
    denied = {finding.message for finding in denials}
    said = tuple(dict.fromkeys(text for finding, text in warnings if finding.message not in denied)) if warn else ()
    return Outcome(tuple(denials), said, tuple(unknown), decided)


def worst_exit_status(outcomes: Sequence[Outcome]) -> int:
    return max((outcome.exit_status for outcome in outcomes), default=EXIT_OK)


def check_exit_status(outcome: Outcome, *, strict: bool = False) -> int:
    """The exit status of a check outside the cluster (CI): what admission would do, with errors never a pass.

    An error finding is 2 whatever ``onUnknown`` says: admission may let an unchecked image in so that a registry
    outage does not stop a cluster, but a pipeline that cannot check an image must not report it clean. Enforce
    violations are 1; Warn violations are 1 only with ``strict``; Audit findings are recorded and exit 0.
    """
    if outcome.unknown:
        return EXIT_ERROR
    if outcome.denials:
        return EXIT_DENIED
    if strict and any(decision == WARNED for decision in outcome.policy_decisions.values()):
        return EXIT_DENIED
    return EXIT_OK
