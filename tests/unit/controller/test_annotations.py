"""Annotations are written only when the verdict changes, and removed when no policy applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core import builders

from slimguard.controller import annotations as notes
from slimguard.core.policy import Mode
from slimguard.core.verdict import Finding, FindingKind, Verdict
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
    from slimguard.core.alternatives import SlimmerBase
    from slimguard.core.facts import Platform

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
    (said,) = json.loads(wanted[notes.SLIMMER_BASE])
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
    current = dict(wanted)
    patch = notes.patch_for(current, notes.desired(Verdict(KEY, ("slim",), (finding(),)), NOW))
    assert patch is not None
    assert patch[notes.SLIMMER_BASE] is None
