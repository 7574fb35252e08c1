"""requireCurrentBase: an image built on a base its tag no longer points to is flagged, per platform manifest."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core.builders import (
    AMD64,
    APP,
    ARM64,
    NOW,
    digest,
    facts,
    layers,
    platform_image,
    policy,
    verdict,
    vulnerability_report,
)
from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.rules.current_base import versions_to_read
from slimguard.core.evaluation.verdict import FindingKind, Status
from slimguard.core.facts.image_facts import BaseImage, BaseImageMethod
from slimguard.core.facts.vulnerabilities import DigestReports

BASE = "registry.example.com/base/node:20-bookworm"
REPO = "registry.example.com/base/node"
CURRENT = policy("fresh", rules={"requireCurrentBase": True})

base_v1 = facts(platform_image(*layers("base-v1", 2), seed="base-v1"), seed="base-v1")
base_v2 = facts(platform_image(*layers("base-v1", 2), *layers("base-v2", 1), seed="base-v2"), seed="base-v2")


def _app_on(base_facts: object, *, annotate: bool = True, created_days_ago: int = 12) -> dict[str, object]:
    base_image = base_facts.platforms[0]  # type: ignore[attr-defined]
    annotation = BaseImage(BASE, BaseImageMethod.ANNOTATION, digest=base_facts.digest) if annotate else None  # type: ignore[attr-defined]
    image = platform_image(*base_image.layers, *layers("app", 1), base=annotation, seed="app")
    return {APP: facts(replace(image, created=NOW - timedelta(days=created_days_ago)))}


def test_an_image_built_on_the_base_its_tag_points_to_passes() -> None:
    versions = {BASE: base_v1, f"{REPO}@{base_v1.digest}": base_v1}
    assert verdict(CURRENT, facts_by_image=_app_on(base_v1), base_versions=versions).status is Status.COMPLIANT


def test_an_image_built_on_a_base_that_moved_is_flagged_with_its_age_and_a_rebuild_hint() -> None:
    versions = {BASE: base_v2, f"{REPO}@{base_v1.digest}": base_v1}
    result = verdict(CURRENT, facts_by_image=_app_on(base_v1), base_versions=versions)
    (finding,) = result.violations
    assert finding.rule == "requireCurrentBase"
    assert finding.actual == base_v1.digest
    assert finding.limit == base_v2.digest
    assert f"is built on {BASE}@{base_v1.digest} (linux/amd64, by its OCI base-image annotations)" in finding.message
    assert f"but {BASE} now points to {base_v2.digest}" in finding.message
    assert "Built 12 days ago; node:20-bookworm has moved since: rebuild to pick up its fixes." in finding.message


def test_a_multi_arch_base_whose_index_moved_but_not_the_platform_manifest_is_current() -> None:
    amd64 = platform_image(*layers("base-amd64", 2), seed="base")
    arm_then = platform_image(*layers("base-arm-1", 2), platform=ARM64, seed="base")
    arm_now = platform_image(*layers("base-arm-2", 2), platform=ARM64, seed="base")
    then, now = facts(amd64, arm_then, seed="then"), facts(amd64, arm_now, seed="now")
    assert then.digest != now.digest
    versions = {BASE: now, f"{REPO}@{then.digest}": then}
    app = {APP: facts(platform_image(*amd64.layers, *layers("app", 1), base=_annotation(then.digest)))}
    assert verdict(CURRENT, facts_by_image=app, base_versions=versions).status is Status.COMPLIANT
    both = policy("fresh", rules={"requireCurrentBase": True, "platforms": ["linux/amd64", "linux/arm64"]})
    arm_app = platform_image(*arm_then.layers, *layers("app-arm", 1), platform=ARM64, base=_annotation(then.digest))
    multi = {APP: facts(app[APP].platforms[0], arm_app)}
    (finding,) = verdict(both, facts_by_image=multi, base_versions=versions).violations
    assert "(linux/arm64/v8, by its OCI base-image annotations)" in finding.message
    assert finding.actual == arm_then.manifest_digest
    assert finding.limit == arm_now.manifest_digest


def _annotation(base_digest: str) -> BaseImage:
    return BaseImage(BASE, BaseImageMethod.ANNOTATION, digest=base_digest)


def test_a_base_that_cannot_be_read_leaves_the_rule_undecided_as_an_error() -> None:
    versions = {BASE: InspectionError("registry.example.com is unreachable", reason="RegistryUnreachable")}
    result = verdict(CURRENT, facts_by_image=_app_on(base_v1), base_versions=versions)
    (finding,) = result.findings
    assert finding.kind is FindingKind.ERROR
    assert finding.reason == "BaseImageUnreadable"
    assert "registry.example.com is unreachable" in finding.message


def test_an_earlier_version_of_a_known_base_seen_before_is_found_by_its_layers() -> None:
    app = _app_on(base_v1, annotate=False)
    # The tag moved: the app no longer starts with the base's current layers, but with those of v1.
    result = verdict(CURRENT, facts_by_image=app, base_candidates={BASE: base_v2}, base_history={BASE: (base_v1,)})
    (finding,) = result.violations
    assert "found by 2 shared layers with a version slimguard read before" in finding.message
    assert finding.actual == base_v1.platforms[0].manifest_digest
    current = verdict(CURRENT, facts_by_image=app, base_candidates={BASE: base_v1}, base_history={BASE: (base_v2,)})
    assert current.status is Status.COMPLIANT


def test_trivy_reports_for_both_versions_say_what_a_rebuild_would_fix() -> None:
    reports = {}
    for version, (critical, high) in ((base_v1, (3, 10)), (base_v2, (0, 2))):
        group = DigestReports()
        group.add(("ns", version.digest), vulnerability_report(critical=critical, high=high))
        reports[version.platforms[0].manifest_digest] = (group,)
    versions = {BASE: base_v2, f"{REPO}@{base_v1.digest}": base_v1}
    (finding,) = verdict(
        CURRENT, facts_by_image=_app_on(base_v1), base_versions=versions, digest_reports=reports
    ).violations
    assert finding.message.endswith(
        "Trivy Operator counts 3 critical and 10 high vulnerabilities in the base it was built on, 0 and 2 in "
        "the current one (-3 critical, -8 high on a rebuild)."
    )


def test_the_annotated_base_is_read_by_tag_and_by_digest_for_the_policies_that_require_it() -> None:
    wanted = versions_to_read({APP: (CURRENT,)}, _app_on(base_v1))  # type: ignore[arg-type]
    assert set(wanted) == {BASE, f"{REPO}@{base_v1.digest}"}
    assert wanted[BASE].platforms == frozenset({AMD64})
    assert versions_to_read({APP: (policy("other"),)}, _app_on(base_v1)) == {}  # type: ignore[arg-type]
    assert digest("x") not in wanted
