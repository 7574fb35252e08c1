"""Annotations are written only when the verdict changes, and removed when no policy applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from slimguard.controller import annotations as notes
from slimguard.core.policy import Mode
from slimguard.core.verdict import Finding, Verdict
from slimguard.core.workload import WorkloadKey

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEY = WorkloadKey("Deployment", "shop", "api")


def finding(message: str = 'container "api": image x is 1 GiB compressed') -> Finding:
    return Finding(
        policy="slim", mode=Mode.AUDIT, container="api", image="x", rule="maxCompressedSize", message=message
    )


def test_an_unchanged_verdict_causes_no_write_even_at_a_later_time() -> None:
    verdict = Verdict(KEY, ("slim",), (finding(),))
    current = notes.desired(verdict, NOW)
    assert current is not None
    later = notes.desired(verdict, datetime(2026, 11, 28, tzinfo=UTC))
    assert notes.patch_for(current, later) is None


def test_a_changed_verdict_writes_status_violations_and_time() -> None:
    before = notes.desired(Verdict(KEY, ("slim",)), NOW)
    assert before is not None
    assert before[notes.STATUS] == "compliant"
    patch = notes.patch_for(before, notes.desired(Verdict(KEY, ("slim",), (finding(),)), NOW))
    assert patch is not None
    assert patch[notes.STATUS] == "noncompliant"
    assert json.loads(patch[notes.VIOLATIONS] or "")[0]["rule"] == "maxCompressedSize"
    assert patch[notes.CHECKED_AT] == "2026-11-27T12:00:00Z"


def test_no_applicable_policy_removes_only_our_annotations() -> None:
    current = {notes.STATUS: "compliant", notes.VIOLATIONS: "[]", "team": "shop"}
    assert notes.patch_for(current, notes.desired(Verdict(KEY, ()), NOW)) == {
        notes.STATUS: None,
        notes.VIOLATIONS: None,
    }
    assert notes.patch_for({"team": "shop"}, None) is None


def test_the_violations_annotation_stays_bounded_and_says_what_it_left_out() -> None:
    many = tuple(finding("x" * 400 + str(n)) for n in range(50))
    text = notes.violations_json(Verdict(KEY, ("slim",), many))
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    items = json.loads(text)
    assert items[-1]["truncated"] == f"{50 - (len(items) - 1)} more findings"
