"""``requireDigest``: images pinned by digest, so what was checked is what runs. Needs no registry."""

from __future__ import annotations

from slimguard.core.evaluation.rules.common import NOTHING, PolicyRule, Reads, Subject
from slimguard.core.model.policy import Rules

REQUIRE_DIGEST = PolicyRule(
    "requireDigest",
    summary="Images are referenced by digest",
    description="With requireDigest: true, every image is referenced by digest, so what was checked is what runs. "
    "Decided from the workload alone, even when the image cannot be read.",
    fix="Reference the image by digest (image@sha256:...).",
)


def reads(rules: Rules) -> Reads:
    return NOTHING


def check(subject: Subject) -> None:
    reference, report = subject.reference, subject.report
    if subject.rules.require_digest and reference.digest is None:
        report.violation(
            REQUIRE_DIGEST.name,
            f"is referenced by tag; {report.policy_name} requires a digest. "
            f"Pin it as {reference.name}@sha256:<digest>.",
            limit="digest",
            actual="tag",
        )
