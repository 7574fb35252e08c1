"""``maxGrowth`` and ``maxGrowthBytes``: an image may grow over its baseline by so much, per platform, compressed;
beyond it the check fails naming the layers that grew. Without a baseline the rules do not apply."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.builders import AMD64, APP, ARM64, MiB, facts, layer, platform_image, policy, verdict
from slimguard.core.errors import InvalidPolicy
from slimguard.core.evaluation.verdict import FindingKind
from slimguard.core.facts.image_facts import Layer

OS = replace(layer("os", 50 * MiB), created_by="ADD rootfs.tar.gz / # buildkit")
APP_V1 = replace(layer("app-1", 50 * MiB), created_by="COPY . /app # buildkit")
APP_V2 = replace(layer("app-2", 52 * MiB), created_by="COPY . /app # buildkit")
GCC = replace(layer("gcc", 30 * MiB), created_by="RUN /bin/sh -c apt-get install -y gcc # buildkit")
BASELINE = facts(platform_image(OS, APP_V1))  # 100 MiB compressed


def built(*layers: Layer) -> dict:
    return {APP: facts(platform_image(*layers))}


def growth_findings(rules: dict, image: dict, baseline: object = BASELINE) -> list:
    found = verdict(policy(rules=rules), facts_by_image=image, baselines={} if baseline is None else {APP: baseline})
    return [f for f in found.findings if f.rule.startswith("maxGrowth")]


def test_growth_beyond_the_percentage_fails_naming_the_layer_added_and_its_instruction() -> None:
    (finding,) = growth_findings({"maxGrowth": "10%"}, built(OS, GCC, APP_V1))
    assert finding.kind is FindingKind.VIOLATION
    assert finding.rule == "maxGrowth"
    assert f"image {APP} grew 30.0% (30 MiB) compressed over its baseline (linux/amd64)" in finding.message
    assert "100 MiB → 130 MiB" in finding.message
    assert 'ImagePolicy "slim" allows 10% (10 MiB)' in finding.message
    assert "Layer responsible: layer 2/3 added +30 MiB: RUN apt-get install -y gcc." in finding.message
    assert (finding.limit, finding.actual) == ("10%", "30.0%")


def test_growth_beyond_the_bytes_fails_naming_every_layer_that_grew_largest_first() -> None:
    (finding,) = growth_findings({"maxGrowthBytes": "20Mi"}, built(OS, GCC, APP_V2))
    assert finding.rule == "maxGrowthBytes"
    assert "grew 32 MiB compressed" in finding.message
    assert (
        "Layers responsible: layer 2/3 added +30 MiB: RUN apt-get install -y gcc; "
        "layer 3/3 rebuilt +2 MiB: COPY . /app." in finding.message
    )
    assert finding.excess_bytes == 12 * MiB


def test_growth_within_the_allowance_passes() -> None:
    assert growth_findings({"maxGrowth": "10%", "maxGrowthBytes": "5Mi"}, built(OS, APP_V2)) == []


def test_an_unchanged_rebuild_and_a_shrink_pass_even_with_no_growth_allowed() -> None:
    assert growth_findings({"maxGrowth": "0%", "maxGrowthBytes": 0}, built(OS, APP_V1)) == []
    assert growth_findings({"maxGrowth": "0%"}, built(OS)) == []


def test_both_allowances_are_checked_each_on_its_own() -> None:
    findings = growth_findings({"maxGrowth": "50%", "maxGrowthBytes": "20Mi"}, built(OS, GCC, APP_V1))
    assert [f.rule for f in findings] == ["maxGrowthBytes"]


def test_without_a_baseline_the_rules_do_not_apply_nothing_fails_and_nothing_errs() -> None:
    assert growth_findings({"maxGrowth": "1%"}, built(OS, GCC, APP_V1), baseline=None) == []


def test_each_platform_is_compared_with_the_same_platform_of_the_baseline() -> None:
    baseline = facts(platform_image(OS, APP_V1, platform=AMD64), platform_image(OS, platform=ARM64, seed="arm"))
    image = {
        APP: facts(
            platform_image(OS, APP_V1, platform=AMD64),  # unchanged
            platform_image(OS, GCC, platform=ARM64, seed="arm"),  # +30 MiB over 50 MiB
        )
    }
    findings = growth_findings({"maxGrowth": "10%", "platforms": ["linux/amd64", "linux/arm64/v8"]}, image, baseline)
    assert [f.message.split("baseline (")[1].split(")")[0] for f in findings] == ["linux/arm64/v8"]


def test_a_platform_the_baseline_lacks_is_new_not_grown() -> None:
    image = {APP: facts(platform_image(OS, GCC, platform=ARM64, seed="arm"))}
    assert growth_findings({"maxGrowth": "1%", "platforms": ["linux/arm64/v8"]}, image) == []


def test_sizes_read_uncompressed_are_an_error_finding_not_a_guess() -> None:
    local = {APP: facts(replace(platform_image(OS, GCC, APP_V1), compressed_measured=False))}
    (finding,) = growth_findings({"maxGrowth": "10%"}, local)
    assert finding.kind is FindingKind.ERROR
    assert "--measure-compressed" in finding.message


@pytest.mark.parametrize("value", ["10", "ten%", "-5%", "10 %", "1e3%", 10])
def test_max_growth_is_a_percentage(value: object) -> None:
    with pytest.raises(InvalidPolicy, match="maxGrowth"):
        policy(rules={"maxGrowth": value})


@pytest.mark.parametrize("value", ["20m", "-1Mi", "lots", "9E"])
def test_max_growth_bytes_is_a_quantity_of_bytes(value: object) -> None:
    with pytest.raises(InvalidPolicy, match="maxGrowthBytes"):
        policy(rules={"maxGrowthBytes": value})


def test_a_growth_rule_alone_is_a_rule() -> None:
    assert policy(rules={"maxGrowth": "2.5%"}).spec.rules.growth_percent_limit == 2.5
    assert policy(rules={"maxGrowthBytes": "20Mi"}).spec.rules.growth_bytes_limit == 20 * MiB
