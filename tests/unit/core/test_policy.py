"""An ImagePolicy is checked once, when loaded: defaults filled, and every bad field named with its policy."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from slimguard.core.errors import InvalidPolicy
from slimguard.core.evaluation.plan import policy_reads
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import Decision, ImagePolicy, LabelSelector, Mode, parse_duration

from .builders import GiB, MiB, policy


def test_an_unset_mode_is_audit_unknowns_are_allowed_and_linux_amd64_is_required() -> None:
    loaded = policy(rules={"maxCompressedSize": "200Mi"})
    assert loaded.spec.mode is Mode.AUDIT
    assert loaded.spec.on_unknown is Decision.ALLOW
    assert loaded.spec.rules.required_platforms == (Platform("linux", "amd64"),)
    assert loaded.spec.match.is_empty
    assert loaded.spec.exclude is None
    assert loaded.spec.exemptions == ()


def test_the_spec_is_read_as_written_in_yaml_with_camel_case_fields() -> None:
    loaded = ImagePolicy.from_resource(
        "slim",
        {
            "mode": "Enforce",
            "onUnknown": "Deny",
            "match": {"namespaces": ["team-*"], "kinds": ["Deployment"]},
            "rules": {
                "maxCompressedSize": "200Mi",
                "maxUncompressedSize": 629145600,
                "maxLayers": 20,
                "allowedBaseImages": ["*/node:*-alpine"],
                "requireNonRootUser": True,
                "platforms": ["linux/amd64", "linux/arm64/v8"],
                "vulnerabilities": {"maxCritical": 0, "maxReportAge": "7d", "onMissingReport": "Deny"},
            },
        },
        generation=3,
    )
    rules = loaded.spec.rules
    assert (loaded.name, loaded.generation, loaded.spec.mode, loaded.spec.on_unknown) == (
        "slim",
        3,
        Mode.ENFORCE,
        Decision.DENY,
    )
    assert (rules.compressed_limit, rules.uncompressed_limit, rules.max_layers) == (200 * MiB, 600 * MiB, 20)
    assert rules.required_platforms == (Platform("linux", "amd64"), Platform("linux", "arm64", "v8"))
    assert rules.vulnerabilities is not None
    assert rules.vulnerabilities.report_age_limit == timedelta(days=7)
    assert rules.vulnerabilities.on_missing_report is Decision.DENY


def test_unset_size_limits_and_report_age_are_none() -> None:
    rules = policy().spec.rules
    assert (rules.compressed_limit, rules.uncompressed_limit) == (None, None)
    assert policy(rules={"vulnerabilities": {"maxHigh": 1}}).spec.rules.vulnerabilities.report_age_limit is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"rules": {"maxCompressedSize": "abc"}}, "spec.rules.maxCompressedSize"),
        ({"rules": {"maxCompressedSize": 0}}, "spec.rules.maxCompressedSize"),
        ({"rules": {"maxUncompressedSize": "-1Gi"}}, "spec.rules.maxUncompressedSize"),
        ({"rules": {"maxLayers": 0}}, "spec.rules.maxLayers"),
        ({"rules": {"platforms": ["linux"]}}, "spec.rules.platforms"),
        ({"rules": {"allowedBaseImages": [" "]}}, "spec.rules.allowedBaseImages"),
        ({"rules": {"deniedBaseImages": [""]}}, "spec.rules.deniedBaseImages"),
        ({"rules": {"vulnerabilities": {"maxCritical": -1}}}, "spec.rules.vulnerabilities.maxCritical"),
        ({"rules": {"vulnerabilities": {"maxReportAge": "1w"}}}, "spec.rules.vulnerabilities.maxReportAge"),
        ({"rules": {"vulnerabilities": {"onMissingReport": "Maybe"}}}, "spec.rules.vulnerabilities.onMissingReport"),
        ({"rules": {"maxLayers": 1}, "mode": "Block"}, "spec.mode"),
        ({"rules": {"maxLayers": 1}, "onUnknown": "Ignore"}, "spec.onUnknown"),
        ({"rules": {"maxLayers": 1}, "match": {"kinds": ["Service"]}}, "spec.match.kinds"),
        ({"rules": {"maxLayers": 1}, "match": {"namespaces": [""]}}, "spec.match.namespaces"),
        ({"rules": {"maxLayers": 1}, "exclude": {"images": [" "]}}, "spec.exclude.images"),
        (
            {"rules": {"maxLayers": 1}, "match": {"selector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}},
            "spec.match.selector.matchExpressions.0.operator",
        ),
        ({"rules": {"maxLayers": 1}, "exemptions": [{"images": ["x"]}]}, "spec.exemptions.0.reason"),
        ({"rules": {"maxLayers": 1}, "exemptions": [{"images": ["x"], "reason": "  "}]}, "spec.exemptions.0.reason"),
        ({"rules": {"maxLayers": 1}, "exemptions": [{"reason": "why"}]}, "spec.exemptions.0"),
        ({"rules": {"maxLayers": 1}, "exemptions": [{"images": [], "reason": "why"}]}, "spec.exemptions.0"),
        ({"rules": {"maxLayers": 1, "maxSize": "1Gi"}}, "spec.rules.maxSize"),
        ({}, "spec.rules"),
    ],
)
def test_every_invalid_field_is_reported_naming_the_policy_and_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPolicy) as caught:
        ImagePolicy.from_resource("team-rules", spec)
    message = str(caught.value)
    assert message.startswith('ImagePolicy "team-rules" is invalid: ')
    assert f"{field}: " in message


def test_several_bad_fields_are_all_reported_at_once() -> None:
    with pytest.raises(InvalidPolicy) as caught:
        ImagePolicy.from_resource("p", {"mode": "Never", "rules": {"maxLayers": 0}})
    assert "spec.mode: " in str(caught.value)
    assert "spec.rules.maxLayers: " in str(caught.value)


def test_messages_explain_the_problem_in_words_not_in_validator_jargon() -> None:
    with pytest.raises(InvalidPolicy) as caught:
        ImagePolicy.from_resource("p", {"rules": {"maxCompressedSize": "200MB"}})
    assert str(caught.value) == (
        "ImagePolicy \"p\" is invalid: spec.rules.maxCompressedSize: '200MB' is not a Kubernetes quantity "
        "such as 200Mi or 1G"
    )


def test_an_exemption_needs_a_reason_and_names_images_or_workloads() -> None:
    with pytest.raises(InvalidPolicy, match="an exemption needs a reason"):
        policy(exemptions=[{"images": ["*/legacy/*"], "reason": ""}])
    with pytest.raises(InvalidPolicy, match="an exemption names images or workloads"):
        policy(exemptions=[{"reason": "migrating", "workloads": []}])
    loaded = policy(exemptions=[{"workloads": [{"namespace": "legacy-*"}], "reason": "migrating to distroless by Q3"}])
    assert loaded.spec.exemptions[0].reason == "migrating to distroless by Q3"


def test_an_exemption_without_expiry_is_always_active_and_one_with_expiry_ends_at_it() -> None:
    forever, dated = policy(
        exemptions=[
            {"images": ["a"], "reason": "r"},
            {"images": ["b"], "reason": "r", "expires": "2027-01-01T00:00:00Z"},
        ]
    ).spec.exemptions
    assert forever.active(datetime(2100, 1, 1, tzinfo=UTC))
    assert dated.active(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert not dated.active(datetime(2027, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("written", ["2027-01-01T00:00:00", "2027-01-01 00:00:00", "2027-01-01"])
def test_an_expiry_without_a_time_zone_is_read_as_utc_rather_than_failing_every_evaluation(written: str) -> None:
    # The apiserver's date-time format accepts these; comparing a naive time with an aware `now` would raise.
    (exemption,) = policy(exemptions=[{"images": ["a"], "reason": "r", "expires": written}]).spec.exemptions
    assert exemption.active(datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    assert not exemption.active(datetime(2027, 1, 1, 0, 0, tzinfo=UTC))


def test_an_expiry_in_another_time_zone_is_compared_as_the_same_instant() -> None:
    (exemption,) = policy(
        exemptions=[{"images": ["a"], "reason": "r", "expires": "2027-01-01T02:00:00+02:00"}]
    ).spec.exemptions
    assert not exemption.active(datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    assert exemption.active(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("168h", timedelta(hours=168)),
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_durations_are_sums_of_second_minute_hour_and_day_parts(text: str, duration: timedelta) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize("text", ["", "7", "1w", "1h 30m", "h", "1.5h", "-1h", "1H"])
def test_durations_in_other_forms_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="24h, 7d or 1h30m"):
        parse_duration(text)


def test_modes_order_by_strictness_enforce_over_warn_over_audit() -> None:
    assert Mode.AUDIT.strictness < Mode.WARN.strictness < Mode.ENFORCE.strictness


def test_size_limits_accept_integers_and_quantities() -> None:
    assert policy(rules={"maxCompressedSize": 1}).spec.rules.compressed_limit == 1
    assert policy(rules={"maxUncompressedSize": "1.5Gi"}).spec.rules.uncompressed_limit == GiB * 3 // 2


def test_concrete_base_images_are_candidates_for_layer_matching_but_globs_are_not() -> None:
    loaded = policy(
        rules={
            "allowedBaseImages": ["*/node:*-alpine", "docker.io/library/node:20-alpine"],
            "deniedBaseImages": ["debian:bookworm", "*/debian:*", "ubuntu:2?.04", "x[ab]"],
        },
        knownBaseImages=["debian:bookworm", "alpine:3.20"],
    )
    assert loaded.base_image_candidates == ("docker.io/library/node:20-alpine", "debian:bookworm", "alpine:3.20")


class TestLabelSelectors:
    """Standard Kubernetes LabelSelector semantics, for namespaceSelector and selector alike."""

    @staticmethod
    def selector(**fields: Any) -> LabelSelector:
        return LabelSelector.model_validate(fields)

    def test_an_empty_selector_matches_everything(self) -> None:
        assert self.selector().matches({})
        assert self.selector().matches({"team": "a"})

    def test_match_labels_need_every_label_with_exactly_that_value(self) -> None:
        chosen = self.selector(matchLabels={"team": "a", "tier": "web"})
        assert chosen.matches({"team": "a", "tier": "web", "extra": "x"})
        assert not chosen.matches({"team": "a"})
        assert not chosen.matches({"team": "a", "tier": "db"})

    @pytest.mark.parametrize(
        ("operator", "values", "labels", "ok"),
        [
            ("In", ["a", "b"], {"team": "b"}, True),
            ("In", ["a", "b"], {"team": "c"}, False),
            ("In", ["a"], {}, False),
            ("NotIn", ["a"], {"team": "b"}, True),
            ("NotIn", ["a"], {"team": "a"}, False),
            ("NotIn", ["a"], {}, True),
            ("Exists", [], {"team": ""}, True),
            ("Exists", [], {}, False),
            ("DoesNotExist", [], {}, True),
            ("DoesNotExist", [], {"team": "a"}, False),
        ],
    )
    def test_match_expressions_follow_kubernetes_semantics(
        self, operator: str, values: list[str], labels: dict[str, str], ok: bool
    ) -> None:
        chosen = self.selector(matchExpressions=[{"key": "team", "operator": operator, "values": values}])
        assert chosen.matches(labels) is ok

    def test_labels_and_expressions_must_all_hold(self) -> None:
        chosen = self.selector(matchLabels={"env": "prod"}, matchExpressions=[{"key": "team", "operator": "Exists"}])
        assert chosen.matches({"env": "prod", "team": "a"})
        assert not chosen.matches({"env": "prod"})
        assert not chosen.matches({"team": "a"})


@pytest.mark.parametrize(
    ("rules", "field", "why"),
    [
        (
            {"vulnerabilities": {"maxCritical": 0, "maxReportAge": "99999999999999999999d"}},
            "vulnerabilities.maxReportAge",
            "at most 36500d",
        ),
        (
            {"vulnerabilities": {"maxCritical": 0, "maxReportAge": "36500d1s"}},
            "vulnerabilities.maxReportAge",
            "at most 36500d",
        ),
        ({"maxCompressedSize": "1e999999999"}, "maxCompressedSize", "not a Kubernetes quantity"),
        ({"maxCompressedSize": "1e999"}, "maxCompressedSize", "not a Kubernetes quantity"),
        ({"maxUncompressedSize": "9Ei"}, "maxUncompressedSize", "at most 8E"),
        ({"maxUncompressedSize": "8.000000000000000001E"}, "maxUncompressedSize", "at most 8E"),
        ({"maxCompressedSize": 8 * 10**18 + 1}, "maxCompressedSize", "at most 8E"),
        ({"maxLayers": 2**31}, "maxLayers", "less than or equal to 2147483647"),
        ({"vulnerabilities": {"maxHigh": 2**31}}, "vulnerabilities.maxHigh", "less than or equal to 2147483647"),
    ],
)
def test_a_value_beyond_what_the_model_can_hold_is_an_invalid_policy_naming_the_field(
    rules: dict[str, Any], field: str, why: str
) -> None:
    # Not an OverflowError escaping into kopf ("Handler failed … will ignore it"): the policy's status must say it.
    with pytest.raises(
        InvalidPolicy, match=rf'^ImagePolicy "big" is invalid: spec\.rules\.{re.escape(field)}: .*{why}'
    ):
        ImagePolicy.from_resource("big", {"rules": rules})


def test_the_bounds_themselves_are_accepted() -> None:
    assert policy(rules={"maxCompressedSize": "8E"}).spec.rules.compressed_limit == 8 * 10**18
    assert policy(rules={"maxUncompressedSize": 8 * 10**18}).spec.rules.uncompressed_limit == 8 * 10**18
    assert policy(rules={"maxCompressedSize": "1e18"}).spec.rules.compressed_limit == 10**18
    assert policy(rules={"maxLayers": 2**31 - 1}).spec.rules.max_layers == 2**31 - 1
    vulnerabilities = {"maxCritical": 2**31 - 1, "maxReportAge": "36500d"}
    limits = policy(rules={"vulnerabilities": vulnerabilities}).spec.rules.vulnerabilities
    assert limits is not None
    assert limits.report_age_limit == timedelta(days=36500)


def test_an_unforeseen_failure_while_parsing_is_an_invalid_policy_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser bug must still end as a visible InvalidPolicy, never as an exception kopf swallows."""

    def broken(value: object) -> int:
        raise ArithmeticError("something no validator expected")

    monkeypatch.setattr("slimguard.core.model.policy.parse_bytes", broken)
    with pytest.raises(InvalidPolicy, match=r'^ImagePolicy "odd" is invalid: spec: .*something no validator expected'):
        ImagePolicy.from_resource("odd", {"rules": {"maxCompressedSize": "200Mi"}})


def test_a_duration_no_clock_can_count_is_a_value_error_not_an_overflow() -> None:
    with pytest.raises(ValueError, match="longer than any clock can count"):
        parse_duration("99999999999999999999d")


def test_base_globs_no_concrete_reference_matches_can_only_match_by_annotation() -> None:
    loaded = policy(
        rules={"deniedBaseImages": ["*/node:*-bookworm", "*/debian:*"], "allowedBaseImages": ["*/node:*-alpine"]},
        knownBaseImages=["docker.io/library/debian:bookworm"],
    )
    assert loaded.annotation_only_base_globs == {
        "deniedBaseImages": ("*/node:*-bookworm",),
        "allowedBaseImages": ("*/node:*-alpine",),
    }
    warning = loaded.base_detection_warning
    assert warning is not None
    assert warning.startswith("deniedBaseImages */node:*-bookworm and allowedBaseImages */node:*-alpine match only")
    assert "knownBaseImages" in warning


def test_a_base_glob_is_covered_by_any_concrete_entry_of_the_three_lists() -> None:
    covered = policy(
        rules={
            "deniedBaseImages": ["*/node:*-bookworm", "debian:bookworm"],
            "allowedBaseImages": ["*/debian:*", "gcr.io/distroless/*", "node:20-alpine"],
        },
        knownBaseImages=["node:20-bookworm", "gcr.io/distroless/static-debian12"],
    )
    assert covered.annotation_only_base_globs == {}
    assert covered.base_detection_warning is None
    assert policy(rules={"maxLayers": 3}).base_detection_warning is None


def test_the_readme_example_policy_finds_its_base_images_by_layers_too() -> None:
    """The first policy a reader copies must work for images built by docker build, which lack the annotations."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    document = yaml.safe_load(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    loaded = ImagePolicy.from_resource(document["metadata"]["name"], document["spec"])
    assert loaded.spec.rules.denied_base_images
    assert loaded.base_detection_warning is None


def test_slimmer_bases_and_require_current_base_are_read_and_checked() -> None:
    read = ImagePolicy.from_resource(
        "hints",
        {
            "rules": {"requireCurrentBase": True},
            "slimmerBases": {"alternatives": [{"base": "*/node:20-bookworm", "candidates": ["gcr.io/d/node:20"]}]},
        },
    )
    assert read.spec.rules.require_current_base
    assert read.spec.slimmer_bases is not None
    assert read.spec.slimmer_bases.from_tags
    assert policy_reads(read).bases
    with pytest.raises(InvalidPolicy, match=r"spec\.slimmerBases\.alternatives\.0\.candidates: .* is not a concrete"):
        ImagePolicy.from_resource(
            "bad",
            {
                "rules": {"maxLayers": 3},
                "slimmerBases": {"alternatives": [{"base": "*/node:*", "candidates": ["gcr.io/d/*"]}]},
            },
        )
