"""The status label and the finding annotations: one small write per change of verdict, nothing otherwise.

A compliant workload carries the label alone; findings (and slimmer-base hints) add annotations, removed in the
same patch once they are gone; the annotation-only format of earlier versions is migrated by one patch.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from core import builders

from slimguard.controller import annotations as notes
from slimguard.core.evaluation.verdict import Finding, FindingKind, Status, Verdict
from slimguard.core.model.policy import Mode
from slimguard.core.model.workload import STATUS_LABEL, WorkloadKey

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = WorkloadKey("Deployment", "shop", "api")
# Kubernetes' rule for a label value (apimachinery's IsValidLabelValue).
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def finding(message: str = 'container "api": image x is 1 GiB compressed') -> Finding:
    return Finding(
        policy="slim", mode=Mode.AUDIT, container="api", image="x", rule="maxCompressedSize", message=message
    )


COMPLIANT = Verdict(KEY, ("slim",))
NONCOMPLIANT = Verdict(KEY, ("slim",), (finding(),))


def marks_of(verdict: Verdict, when: datetime = NOW) -> notes.Marks:
    wanted = notes.desired(verdict, when)
    assert wanted is not None
    return wanted


@pytest.mark.parametrize("status", list(Status))
def test_every_status_is_a_valid_label_value(status: Status) -> None:
    assert len(status.value) <= 63
    assert LABEL_VALUE.fullmatch(status.value)


def test_a_compliant_or_pending_workload_carries_the_label_alone() -> None:
    assert notes.desired(COMPLIANT, NOW) == notes.Marks("compliant", {})
    pending = Verdict(KEY, ("slim",), pending_images=("x",))
    assert notes.desired(pending, NOW) == notes.Marks("pending", {})
    assert notes.patch_for(notes.Marks(), marks_of(COMPLIANT)) == {"labels": {STATUS_LABEL: "compliant"}}


def test_an_unchanged_verdict_causes_no_write_even_at_a_later_time() -> None:
    assert notes.patch_for(marks_of(NONCOMPLIANT), marks_of(NONCOMPLIANT, LATER)) is None
    assert notes.patch_for(marks_of(COMPLIANT), marks_of(COMPLIANT, LATER)) is None


def test_a_workload_found_noncompliant_gets_the_label_violations_and_time_in_one_patch() -> None:
    patch = notes.patch_for(marks_of(COMPLIANT), marks_of(NONCOMPLIANT))
    assert patch is not None
    assert patch["labels"] == {STATUS_LABEL: "noncompliant"}
    annotations = patch["annotations"]
    assert json.loads(annotations[notes.VIOLATIONS] or "")[0]["rule"] == "maxCompressedSize"
    assert annotations[notes.CHECKED_AT] == "2026-11-27T12:00:00Z"
    assert set(annotations) == {notes.VIOLATIONS, notes.CHECKED_AT}


def test_a_workload_that_becomes_compliant_loses_its_finding_annotations_in_the_same_patch() -> None:
    assert notes.patch_for(marks_of(NONCOMPLIANT), marks_of(COMPLIANT, LATER)) == {
        "labels": {STATUS_LABEL: "compliant"},
        "annotations": {notes.VIOLATIONS: None, notes.CHECKED_AT: None},
    }


def test_other_violations_rewrite_the_violations_and_their_time_but_not_the_label() -> None:
    other = Verdict(KEY, ("slim",), (finding('container "api": image x has no USER'),))
    patch = notes.patch_for(marks_of(NONCOMPLIANT), marks_of(other, LATER))
    assert patch is not None
    assert "labels" not in patch
    assert patch["annotations"][notes.CHECKED_AT] == "2026-11-28T12:00:00Z"


def test_no_applicable_policy_removes_our_label_and_annotations_and_nothing_else() -> None:
    current = notes.Marks("noncompliant", {notes.VIOLATIONS: "[]", notes.CHECKED_AT: "2026-11-27T12:00:00Z"})
    removal = {
        "labels": {STATUS_LABEL: None},
        "annotations": {notes.VIOLATIONS: None, notes.CHECKED_AT: None},
    }
    assert notes.patch_for(current, notes.desired(Verdict(KEY, ()), NOW)) == removal
    assert notes.patch_for(current, None) == removal
    assert notes.patch_for(notes.Marks(), None) is None


def test_a_compliant_workload_in_the_annotation_only_format_is_migrated_to_the_label_alone_in_one_patch() -> None:
    legacy = notes.Marks(
        None, {notes.LEGACY_STATUS: "compliant", notes.VIOLATIONS: "[]", notes.CHECKED_AT: "2026-11-01T00:00:00Z"}
    )
    assert notes.patch_for(legacy, marks_of(COMPLIANT)) == {
        "labels": {STATUS_LABEL: "compliant"},
        "annotations": {notes.LEGACY_STATUS: None, notes.VIOLATIONS: None, notes.CHECKED_AT: None},
    }


def test_a_noncompliant_workload_in_the_annotation_only_format_keeps_its_findings_and_their_time() -> None:
    earlier = marks_of(NONCOMPLIANT)
    legacy = notes.Marks(None, {notes.LEGACY_STATUS: "noncompliant", **earlier.annotations})
    # The findings are the same: nothing about them is news, not even their time.
    assert notes.patch_for(legacy, marks_of(NONCOMPLIANT, LATER)) == {
        "labels": {STATUS_LABEL: "noncompliant"},
        "annotations": {notes.LEGACY_STATUS: None},
    }


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (notes.Marks(), NONCOMPLIANT),
        (notes.Marks("noncompliant", {notes.VIOLATIONS: "[1]", notes.CHECKED_AT: "t"}), COMPLIANT),
        (notes.Marks(None, {notes.LEGACY_STATUS: "compliant", notes.VIOLATIONS: "[]"}), NONCOMPLIANT),
        (notes.Marks("compliant", {}), Verdict(KEY, ("slim",), pending_images=("x",))),
    ],
)
def test_once_the_patch_has_landed_the_workload_says_exactly_what_was_wanted(
    before: notes.Marks, after: Verdict
) -> None:
    wanted = marks_of(after)
    patch = notes.patch_for(before, wanted)
    assert patch is not None
    assert notes.applied(before, patch) == wanted
    assert notes.patch_for(notes.applied(before, patch), wanted) is None


def test_the_violations_annotation_stays_bounded_and_says_what_it_left_out() -> None:
    many = tuple(finding("x" * 400 + str(n)) for n in range(50))
    text = notes.violations_json(Verdict(KEY, ("slim",), many))
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    items = json.loads(text)
    assert items[-1]["truncated"] == f"{50 - (len(items) - 1)} more findings"


def unreachable(policy: str, image: str) -> Finding:
    return Finding(
        policy=policy,
        mode=Mode.AUDIT,
        container="api",
        image=image,
        rule="inspection",
        message=f'container "api": image {image} could not be inspected: registry 127.0.0.1:1 is unreachable',
        kind=FindingKind.ERROR,
    )


def test_a_10_kb_image_reference_unreachable_under_seven_policies_is_said_once_with_its_reason() -> None:
    image = "127.0.0.1:1/" + "a" * 10_000 + ":1.0"
    names = tuple(f"policy-{n}" for n in range(7))
    verdict = Verdict(KEY, names, tuple(unreachable(name, image) for name in names))
    text = notes.violations_json(verdict)
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    (item,) = json.loads(text)
    assert item["message"].startswith('container "api": image 127.0.0.1:1/aaa')
    assert item["message"].endswith("could not be inspected: registry 127.0.0.1:1 is unreachable")
    assert item["image"].startswith("127.0.0.1:1/")
    assert item["image"].endswith(":1.0")
    assert item["policies"] == list(names)
    assert item["kind"] == "error"


def test_long_findings_are_cut_to_fit_and_the_first_ones_are_kept_rather_than_dropped() -> None:
    long = tuple(finding('container "api": image x ' + "y" * 5_000 + f" is too big ({n})") for n in range(3))
    text = notes.violations_json(Verdict(KEY, ("slim",), long))
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    items = json.loads(text)
    assert [item["message"][-len(" is too big (0)") :] for item in items] == [f" is too big ({n})" for n in range(3)]
    assert all(item["message"].startswith('container "api": image x y') for item in items)


def test_the_first_findings_reason_survives_whatever_follows_and_the_rest_is_counted() -> None:
    many = tuple(finding('container "api": image x ' + "z" * 9_000 + f" reason {n}") for n in range(40))
    text = notes.violations_json(Verdict(KEY, ("slim",), many))
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    items = json.loads(text)
    assert items[0]["message"].endswith(" reason 0")
    assert items[-1]["truncated"] == f"{40 - (len(items) - 1)} more findings"


def test_many_policy_names_on_one_finding_are_cut_and_counted() -> None:
    image = "127.0.0.1:1/" + "a" * 10_000 + ":1.0"
    names = tuple(f"policy-with-a-rather-long-name-{n:03}" for n in range(200))
    text = notes.violations_json(Verdict(KEY, names, tuple(unreachable(name, image) for name in names)))
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    (item,) = json.loads(text)
    assert item["policies"][0] == names[0]
    assert item["policies"][-1] == f"+{200 - (len(item['policies']) - 1)} more"
    assert item["message"].endswith("is unreachable")


def test_text_that_json_escapes_to_six_times_its_length_still_fits() -> None:
    image = "\u2603" * 10_000
    odd = Finding(
        policy="slim", mode=Mode.AUDIT, container="api", image=image, rule="reference", message='"\u0001' * 10_000
    )
    text = notes.violations_json(Verdict(KEY, ("slim",), (odd,) * 3))
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    assert json.loads(text)[0]["rule"] == "reference"


def test_a_10_kb_image_reference_under_seven_policies_keeps_why_it_cannot_be_checked() -> None:
    image = "registry.example.com/" + "a" * 10_000 + ":1.0"
    verdict = builders.verdict(
        [builders.policy(f"policy-{n}") for n in range(7)], builders.workload(image), facts_by_image={}
    )
    assert len(verdict.errors) == 7
    text = notes.violations_json(verdict)
    assert len(text.encode()) <= notes.MAX_VIOLATIONS_BYTES
    (item,) = json.loads(text)
    assert item["rule"] == "reference"
    assert item["message"].startswith('container "app": image registry.example.com/aaa')
    assert item["message"].endswith("is longer than 255 characters")
    assert len(item["policies"]) == 7


def _hint(policy: str = "slim") -> object:
    from slimguard.core.facts.bases import SlimmerBase
    from slimguard.core.model.platform import Platform

    return SlimmerBase(
        policy=policy,
        image="x",
        base="r.example/base/node:20-bookworm",
        base_size=380 << 20,
        alternative="r.example/base/node:20-alpine",
        alternative_size=45 << 20,
        platform=Platform("linux", "amd64"),
    )


def test_a_slimmer_base_hint_is_its_own_annotation_said_once_for_several_policies_and_removed_when_gone() -> None:
    hinted = Verdict(KEY, ("slim", "other"), (finding(),), hints=(_hint(), _hint("other")))  # type: ignore[arg-type]
    wanted = notes.desired(hinted, NOW)
    assert wanted is not None
    (said,) = json.loads(wanted.annotations[notes.SLIMMER_BASE])
    assert said == {
        "policy": "slim",
        "image": "x",
        "base": "r.example/base/node:20-bookworm",
        "baseBytes": 380 << 20,
        "alternative": "r.example/base/node:20-alpine",
        "alternativeBytes": 45 << 20,
        "savedBytes": 335 << 20,
        "platform": "linux/amd64",
    }
    patch = notes.patch_for(wanted, notes.desired(Verdict(KEY, ("slim",), (finding(),)), NOW))
    assert patch is not None
    assert patch["annotations"][notes.SLIMMER_BASE] is None


def test_a_compliant_workload_with_a_slimmer_base_hint_carries_the_hint() -> None:
    """A hint is advice the policy asked for (``slimmerBases``): said on the workload whatever its status."""
    hinted = Verdict(KEY, ("slim",), hints=(_hint(),))  # type: ignore[arg-type]
    wanted = notes.desired(hinted, NOW)
    assert wanted is not None
    assert wanted.status == "compliant"
    assert set(wanted.annotations) == {notes.SLIMMER_BASE, notes.CHECKED_AT}
