"""``vulnerabilities``: limits on Trivy Operator's findings for the digest that runs, by severity."""

from __future__ import annotations

from datetime import datetime, timedelta

from slimguard.core.errors import InspectionReason
from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Subject
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.vulnerabilities import select_report
from slimguard.core.model.policy import Decision, Rules

FIX = "Rebuild on a patched or smaller base image."
VULNERABILITIES = PolicyRule(
    "vulnerabilities",
    summary="Known vulnerabilities are within the limits",
    description="The worst current Trivy Operator VulnerabilityReport for the digest that runs counts at most "
    "maxCritical, maxHigh and maxMedium vulnerabilities (vulnerabilities.maxCritical, ... findings); with "
    "onMissingReport: Deny, a current report exists (vulnerabilities.onMissingReport).",
    fix=FIX,
)


def reads(rules: Rules) -> Reads:
    """The image (reports are matched by the digest the registry resolves the reference to) and the reports."""
    if rules.vulnerabilities is None:
        return NOTHING
    return Reads(FactsNeeds(frozenset(rules.required_platforms)), reports=True)


def digests(facts: ImageFacts) -> frozenset[str]:
    """Every digest a report may name for this image: the index's and each platform manifest's."""
    return frozenset({facts.digest} | {image.manifest_digest for image in facts.platforms})


def _fresh_since(now: datetime, age_limit: timedelta | None) -> datetime | None:
    """The oldest report time still trusted; None (every report) for a limit reaching back before year 1.

    The CRD admits ``maxReportAge: 999999999d``; ``now - age_limit`` then overflowed and every evaluation of
    the policy failed (found by tests/unit/fuzz/test_fuzz_policy.py).
    """
    if age_limit is None or age_limit >= now - datetime.min.replace(tzinfo=now.tzinfo):
        return None
    return now - age_limit


def check(subject: Subject) -> None:
    rules = subject.rules
    if rules.vulnerabilities is None:
        return
    assert subject.facts is not None
    report, workload, container, facts, context = (
        subject.report,
        subject.workload,
        subject.container,
        subject.facts,
        subject.context,
    )
    limits = rules.vulnerabilities
    assert limits is not None
    if not context.reports_listed:
        # Neither "no report" (onMissingReport) nor the worst of part of them: undecided, so onUnknown decides.
        report.error(
            VULNERABILITIES.name,
            "cannot be checked against its VulnerabilityReports yet: slimguard is still listing them (a policy "
            "that reads them was just added, or this replica just started)",
            reason=InspectionReason.REPORTS_PENDING,
        )
        return
    digests_running = digests(facts)
    owners = ((workload.kind, workload.name), *context.report_owners)
    age_limit = limits.report_age_limit
    lookup = select_report(
        context.reports,
        namespace=workload.namespace,
        resources=owners,
        container=container.name,
        digests=digests_running,
        shared=[group for digest in sorted(digests_running) for group in context.digest_reports.get(digest, ())],
        ignore_unfixed=limits.ignore_unfixed,
        fresh_since=_fresh_since(context.now, age_limit),
    )
    found = lookup.report
    if found is None:
        if limits.on_missing_report is Decision.DENY:
            if lookup.too_old is not None:
                why = (
                    f"its newest VulnerabilityReport {lookup.too_old.namespace}/{lookup.too_old.name} "
                    f"is older than {limits.max_report_age}"
                )
            elif lookup.stale is not None:
                why = (
                    f"its only VulnerabilityReport {lookup.stale.namespace}/{lookup.stale.name} is for another "
                    f"digest ({lookup.stale.digest}), so it is stale"
                )
            else:
                why = f"it has no VulnerabilityReport for digest {facts.digest}"
            report.violation(
                VULNERABILITIES.part("onMissingReport"),
                f"cannot be vouched for: {why}; {report.policy_name} requires a current scan "
                "(onMissingReport: Deny). Wait for Trivy Operator to scan it.",
                limit="current report",
                actual="none",
            )
        return
    counts = found.counts(ignore_unfixed=limits.ignore_unfixed)
    fixable = " fixable" if limits.ignore_unfixed else ""
    checks: list[tuple[str, int | None, int]] = [
        ("critical", limits.max_critical, counts.critical),
        ("high", limits.max_high, counts.high),
        ("medium", limits.max_medium, counts.medium),
    ]
    for severity, limit, actual in checks:
        if limit is not None and actual > limit:
            report.violation(
                VULNERABILITIES.part(f"max{severity.capitalize()}"),
                f"has {actual}{fixable} {severity} {'vulnerability' if actual == 1 else 'vulnerabilities'} "
                f"(VulnerabilityReport "
                f"{found.namespace}/{found.name}); {report.policy_name} allows {limit}. {FIX}",
                limit=str(limit),
                actual=str(actual),
            )
