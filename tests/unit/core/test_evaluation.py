"""Evaluation: every rule passing and failing, with the messages users read, across policies and exemptions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import Finding, FindingKind, Status, Verdict
from slimguard.core.facts.bases import detect_bases
from slimguard.core.facts.image_facts import ImageFacts
from slimguard.core.facts.vulnerabilities import DigestReports
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy, Mode
from slimguard.core.model.workload import ContainerType

from .builders import (
    AMD64,
    APP,
    ARM64,
    NOW,
    MiB,
    annotated,
    container,
    digest,
    facts,
    layer,
    layers,
    platform_image,
    policy,
    verdict,
    vulnerability_report,
    workload,
)

SUBJECT = f'container "app": image {APP}'
SLIM_HINT = "Use a multi-stage build with a slim, alpine or distroless final stage."


def rules(**given: Any) -> ImagePolicy:
    """A policy named "slim" with exactly these rules (camelCase, as in YAML)."""
    return policy("slim", rules=given)


def only(result: Verdict) -> Finding:
    assert len(result.findings) == 1, result.findings
    return result.findings[0]


def of(image: ImageFacts) -> dict[str, ImageFacts]:
    return {APP: image}


# --- maxCompressedSize -------------------------------------------------------------------------------------------


def test_a_fat_image_breaks_the_compressed_size_limit_with_a_message_naming_container_image_limit_and_actual() -> None:
    steps = (
        ("/bin/sh -c #(nop) ADD file:4a1b2c in / ", 30 * MiB),
        ("RUN /bin/sh -c apt-get update && apt-get install -y build-essential curl nodejs # buildkit", 212 * MiB),
        ('/bin/sh -c #(nop)  CMD ["bash"]', 0),
        ("COPY . /app # buildkit", 58 * MiB),
    )
    fat = facts(platform_image(*(replace(layer(f"s{n}", size), created_by=by) for n, (by, size) in enumerate(steps))))
    finding = only(verdict(rules(maxCompressedSize="200Mi"), facts_by_image=of(fat)))
    # The three largest layers, each with the instruction that made it, as the Dockerfile says it.
    assert finding.message == (
        f'{SUBJECT} is 300 MiB compressed (linux/amd64); ImagePolicy "slim" allows 200 MiB. Largest layers: '
        "layer 2/4 adds 212 MiB: RUN apt-get update && apt-get install -y build-essential curl nodejs; "
        "layer 4/4 adds 58 MiB: COPY . /app; layer 1/4 adds 30 MiB: ADD file:4a1b2c in /. "
        f"{SLIM_HINT}"
    )
    assert (finding.policy, finding.container, finding.image, finding.rule) == ("slim", "app", APP, "maxCompressedSize")
    assert (finding.limit, finding.actual, finding.kind) == ("200 MiB", "300 MiB", FindingKind.VIOLATION)


def test_an_image_exactly_at_the_compressed_limit_is_compliant() -> None:
    exact = facts(platform_image(*layers("ok", 2, 100 * MiB)))
    assert verdict(rules(maxCompressedSize="200Mi"), facts_by_image=of(exact)).status is Status.COMPLIANT


def test_the_config_blob_counts_and_an_excess_hidden_by_rounding_is_shown_in_bytes() -> None:
    over = facts(platform_image(*layers("edge", 2, 100 * MiB), config_size=1))
    finding = only(verdict(rules(maxCompressedSize="200Mi"), facts_by_image=of(over)))
    assert finding.message == (
        f"{SUBJECT} is 200 MiB (209715201 bytes) compressed (linux/amd64); "
        f'ImagePolicy "slim" allows 200 MiB (209715200 bytes). Largest layers: layer 1/2 adds 100 MiB: '
        f"(no build history); layer 2/2 adds 100 MiB: (no build history). {SLIM_HINT}"
    )


def test_each_required_platform_is_sized_on_its_own() -> None:
    index = facts(
        platform_image(*layers("amd", 1, 50 * MiB), platform=AMD64),
        platform_image(*layers("arm", 1, 250 * MiB), platform=ARM64),
    )
    finding = only(
        verdict(rules(maxCompressedSize="200Mi", platforms=["linux/amd64", "linux/arm64"]), facts_by_image=of(index))
    )
    assert "is 250 MiB compressed (linux/arm64/v8)" in finding.message


# --- maxUncompressedSize -----------------------------------------------------------------------------------------


def test_an_image_too_big_on_disk_breaks_the_uncompressed_limit() -> None:
    big = facts(platform_image(*layers("big", 4, 100 * MiB)))  # 800 MiB once unpacked
    finding = only(verdict(rules(maxUncompressedSize="600Mi"), facts_by_image=of(big)))
    assert finding.message == (
        f'{SUBJECT} is 800 MiB uncompressed (linux/amd64); ImagePolicy "slim" allows 600 MiB. Largest layers: '
        "layer 1/4 adds 200 MiB: (no build history); layer 2/4 adds 200 MiB: (no build history); "
        f"layer 3/4 adds 200 MiB: (no build history). {SLIM_HINT}"
    )
    assert finding.rule == "maxUncompressedSize"


def test_an_estimated_uncompressed_size_says_so() -> None:
    big = facts(platform_image(*layers("big", 4, 100 * MiB, estimated=True)))
    assert (
        "is 800 MiB uncompressed (estimated) (linux/amd64)"
        in only(verdict(rules(maxUncompressedSize="600Mi"), facts_by_image=of(big))).message
    )


def test_an_exact_uncompressed_size_is_not_called_an_estimate() -> None:
    big = facts(platform_image(*layers("big", 4, 100 * MiB, estimated=False)))
    message = only(verdict(rules(maxUncompressedSize="600Mi"), facts_by_image=of(big))).message
    assert "is 800 MiB uncompressed (linux/amd64)" in message
    assert "estimated" not in message


def test_an_image_within_the_uncompressed_limit_is_compliant() -> None:
    small = facts(platform_image(*layers("small", 3, 100 * MiB)))
    assert verdict(rules(maxUncompressedSize="600Mi"), facts_by_image=of(small)).status is Status.COMPLIANT


def test_an_unknown_uncompressed_size_is_an_error_never_compliant() -> None:
    unknown = facts(platform_image(layer("a"), layer("b", uncompressed=None)))
    result = verdict(rules(maxUncompressedSize="600Mi"), facts_by_image=of(unknown))
    finding = only(result)
    assert (finding.kind, finding.rule, result.status) == (FindingKind.ERROR, "maxUncompressedSize", Status.ERROR)
    assert finding.message == f"{SUBJECT} has layers whose uncompressed size is unknown (linux/amd64)"


# --- maxLayers ---------------------------------------------------------------------------------------------------


def test_too_many_layers_breaks_max_layers_and_at_the_limit_is_fine() -> None:
    many = facts(platform_image(*layers("many", 21)))
    finding = only(verdict(rules(maxLayers=20), facts_by_image=of(many)))
    assert finding.message == (
        f'{SUBJECT} has 21 layers (linux/amd64); ImagePolicy "slim" allows 20. Largest layers: '
        "layer 1/21 adds 1 MiB: (no build history); layer 2/21 adds 1 MiB: (no build history); "
        "layer 3/21 adds 1 MiB: (no build history). "
        "Combine RUN steps, or copy the result of a build stage in one COPY."
    )
    assert (finding.limit, finding.actual) == ("20", "21")
    twenty = facts(platform_image(*layers("twenty", 20)))
    assert verdict(rules(maxLayers=20), facts_by_image=of(twenty)).status is Status.COMPLIANT


# --- allowedBaseImages / deniedBaseImages ------------------------------------------------------------------------

DEBIAN = layers("debian", 1)
NODE = (*DEBIAN, *layers("node", 2))
ALPINE = layers("alpine", 1)
BASES = {
    "debian:bookworm": facts(platform_image(*DEBIAN, seed="debian"), seed="debian"),
    "node:20": facts(platform_image(*NODE, seed="node"), seed="node"),
    "node:20-alpine": facts(platform_image(*ALPINE, *layers("node-alpine", 2), seed="na"), seed="na"),
}


def built_on(base_layers: tuple[Any, ...], *, base: str | None = None) -> dict[str, ImageFacts]:
    image = platform_image(*base_layers, *layers("app", 2), base=annotated(base) if base else None)
    return of(facts(image))


def test_a_base_denied_by_its_annotation_is_a_violation_naming_base_method_globs_and_a_fix() -> None:
    result = verdict(
        rules(allowedBaseImages=["*/node:*-alpine"], deniedBaseImages=["*/debian:*"]),
        facts_by_image=built_on(DEBIAN, base="docker.io/library/debian:bookworm"),
    )
    finding = only(result)
    assert finding.message == (
        f"{SUBJECT} is built on docker.io/library/debian:bookworm (found by its OCI base-image annotation), "
        'which ImagePolicy "slim" denies (*/debian:*). Rebuild FROM an allowed base such as */node:*-alpine.'
    )
    assert (finding.rule, finding.limit, finding.actual) == (
        "deniedBaseImages",
        "*/debian:*",
        "docker.io/library/debian:bookworm",
    )


def test_a_base_denied_by_shared_layers_names_how_many_layers_it_shares() -> None:
    result = verdict(rules(deniedBaseImages=["*/debian:*"]), facts_by_image=built_on(DEBIAN), base_candidates=BASES)
    assert only(result).message == (
        f"{SUBJECT} is built on debian:bookworm (found by 1 shared layer), "
        'which ImagePolicy "slim" denies (*/debian:*). Rebuild FROM an allowed base.'
    )


def test_the_longest_shared_layer_prefix_names_the_base() -> None:
    result = verdict(rules(allowedBaseImages=["*/alpine:*"]), facts_by_image=built_on(NODE), base_candidates=BASES)
    assert only(result).message == (
        f"{SUBJECT} is built on node:20 (found by 3 shared layers), which is not a base "
        'ImagePolicy "slim" allows (*/alpine:*). Rebuild FROM an allowed base such as */alpine:*.'
    )
    assert (
        verdict(rules(allowedBaseImages=["*/node:*"]), facts_by_image=built_on(NODE), base_candidates=BASES).status
        is Status.COMPLIANT
    )


def test_running_a_denied_base_image_itself_is_a_violation() -> None:
    image = "debian:bookworm"
    result = verdict(
        rules(allowedBaseImages=["gcr.io/distroless/*"], deniedBaseImages=["*/debian:*"]),
        workload(image),
        {image: BASES["debian:bookworm"]},
        base_candidates=BASES,
    )
    finding = only(result)
    assert finding.message == (
        f'container "app": image {image} is a base image ImagePolicy "slim" denies (*/debian:*). '
        "Build your own image FROM an allowed base such as gcr.io/distroless/*."
    )
    assert finding.actual == "docker.io/library/debian:bookworm"


def test_running_an_allowed_base_image_itself_is_compliant_though_its_own_base_is_unknown() -> None:
    image = "node:20-alpine"
    result = verdict(rules(allowedBaseImages=["*/node:*-alpine"]), workload(image), {image: BASES[image]})
    assert result.status is Status.COMPLIANT


def test_an_unknown_base_breaks_an_allow_list_and_the_message_says_how_to_make_it_known() -> None:
    finding = only(
        verdict(rules(allowedBaseImages=["*/node:*-alpine", "gcr.io/distroless/*"]), facts_by_image=built_on(()))
    )
    assert finding.message == (
        f"{SUBJECT} has a base image slimguard could not determine (no org.opencontainers.image.base.name "
        'annotation, and no known base image shares its layers); ImagePolicy "slim" allows only '
        "*/node:*-alpine, gcr.io/distroless/*. Build with the OCI base-image annotations, or list the base in "
        "spec.knownBaseImages."
    )
    assert (finding.rule, finding.actual) == ("allowedBaseImages", "unknown")


def test_an_unknown_base_passes_a_deny_list_alone() -> None:
    assert verdict(rules(deniedBaseImages=["*/debian:*"]), facts_by_image=built_on(())).status is Status.COMPLIANT


def test_an_annotated_base_on_the_allow_list_is_compliant_and_one_off_it_is_not() -> None:
    allow = rules(allowedBaseImages=["*/node:*-alpine"])
    assert verdict(allow, facts_by_image=built_on((), base="node:20-alpine")).status is Status.COMPLIANT
    finding = only(verdict(allow, facts_by_image=built_on((), base="docker.io/library/node:20")))
    assert finding.message == (
        f"{SUBJECT} is built on docker.io/library/node:20 (found by its OCI base-image annotation), which is not "
        'a base ImagePolicy "slim" allows (*/node:*-alpine). Rebuild FROM an allowed base such as */node:*-alpine.'
    )


def test_an_annotation_on_the_index_speaks_for_every_platform_image() -> None:
    index = facts(platform_image(platform=AMD64), platform_image(platform=ARM64), base=annotated("node:20-alpine"))
    allow = rules(allowedBaseImages=["*/node:*-alpine"], platforms=["linux/amd64", "linux/arm64"])
    assert verdict(allow, facts_by_image=of(index)).status is Status.COMPLIANT


def test_layers_betraying_a_denied_base_count_even_when_the_annotation_claims_an_allowed_one() -> None:
    result = verdict(
        rules(allowedBaseImages=["*/node:*-alpine"], deniedBaseImages=["*/debian:*"]),
        facts_by_image=built_on(DEBIAN, base="node:20-alpine"),
        base_candidates=BASES,
    )
    assert [f.rule for f in result.findings] == ["deniedBaseImages"]
    assert "is built on debian:bookworm (found by 1 shared layer)" in result.findings[0].message


def test_a_denied_base_is_reported_once_as_denied_not_again_as_not_allowed() -> None:
    result = verdict(
        rules(allowedBaseImages=["gcr.io/distroless/*"], deniedBaseImages=["*/debian:*"]),
        facts_by_image=built_on(DEBIAN),
        base_candidates=BASES,
    )
    assert [f.rule for f in result.findings] == ["deniedBaseImages"]


UNREADABLE = InspectionError("registry 127.0.0.1:1 is unreachable", reason="RegistryUnreachable")


def test_a_deny_list_whose_known_base_cannot_be_read_is_an_error_not_compliant() -> None:
    result = verdict(
        rules(deniedBaseImages=["*/debian:*"]),
        facts_by_image=built_on(DEBIAN),
        base_candidates={"debian:bookworm": UNREADABLE},
    )
    assert result.status is Status.ERROR
    finding = only(result)
    assert (finding.kind, finding.rule) == (FindingKind.ERROR, "deniedBaseImages")
    assert finding.message == (
        f'{SUBJECT} cannot be checked against deniedBaseImages of ImagePolicy "slim": the base image '
        "debian:bookworm, which slimguard compares layers with, could not be read (registry 127.0.0.1:1 is "
        "unreachable). It is checked again when the registry answers; correct spec.knownBaseImages if the "
        "reference is wrong."
    )


def test_an_allow_list_whose_known_base_cannot_be_read_is_an_error_not_an_unknown_base() -> None:
    finding = only(
        verdict(
            rules(allowedBaseImages=["*/node:*-alpine"]),
            facts_by_image=built_on(ALPINE),
            base_candidates={**BASES, "node:20-alpine": UNREADABLE},
        )
    )
    assert (finding.kind, finding.rule) == (FindingKind.ERROR, "allowedBaseImages")
    assert "node:20-alpine, which slimguard compares layers with, could not be read" in finding.message


def test_several_unreadable_bases_are_named_with_each_reason_in_one_error() -> None:
    gone = InspectionError("manifest unknown", reason="NotFound")
    finding = only(
        verdict(
            rules(deniedBaseImages=["*/debian:*"]),
            facts_by_image=built_on(DEBIAN),
            base_candidates={"debian:bookworm": UNREADABLE, "node:20": gone},
        )
    )
    assert (
        "the base images debian:bookworm, node:20, which slimguard compares layers with, could not be read "
        "(debian:bookworm: registry 127.0.0.1:1 is unreachable; node:20: manifest unknown)"
    ) in finding.message


def test_a_denied_base_found_while_another_candidate_cannot_be_read_is_still_a_violation() -> None:
    result = verdict(
        rules(allowedBaseImages=["*/node:*-alpine"], deniedBaseImages=["*/debian:*"]),
        facts_by_image=built_on(DEBIAN),
        base_candidates={**BASES, "node:20-alpine": UNREADABLE},
    )
    assert [(f.kind, f.rule) for f in result.findings] == [(FindingKind.VIOLATION, "deniedBaseImages")]


def test_an_unreadable_candidate_does_not_matter_to_an_image_that_is_an_allowed_base_itself() -> None:
    image = "docker.io/library/node:20-alpine"
    result = verdict(
        rules(allowedBaseImages=["*/node:*-alpine"]),
        workload(image),
        {image: facts()},
        base_candidates={"node:20-alpine": UNREADABLE},
    )
    assert result.status is Status.COMPLIANT


def test_a_base_found_both_by_annotation_and_by_layers_is_reported_once_naming_both() -> None:
    result = verdict(
        rules(deniedBaseImages=["*/debian:*"]),
        facts_by_image=built_on(DEBIAN, base="debian:bookworm"),
        base_candidates=BASES,
    )
    finding = only(result)
    assert finding.message.startswith(
        f"{SUBJECT} is built on debian:bookworm (found by its OCI base-image annotation and by 1 shared layer), "
    )


def test_two_different_denied_bases_are_one_finding_naming_both() -> None:
    result = verdict(
        rules(deniedBaseImages=["*/debian:*", "*/node:*"]),
        facts_by_image=built_on(DEBIAN, base="node:20"),
        base_candidates={"debian:bookworm": BASES["debian:bookworm"]},
    )
    finding = only(result)
    assert finding.message.startswith(
        f"{SUBJECT} is built on node:20 (found by its OCI base-image annotation) and debian:bookworm "
        "(found by 1 shared layer), which ImagePolicy"
    )


def test_a_candidate_that_is_the_image_itself_is_not_taken_for_its_base() -> None:
    image = platform_image(*NODE, seed="node")
    assert detect_bases(facts(image), image, {"node:20": BASES["node:20"]}) == ()


def test_an_unparseable_base_annotation_matches_no_glob() -> None:
    finding = only(verdict(rules(allowedBaseImages=["*/node:*"]), facts_by_image=built_on((), base="Not A Reference")))
    assert finding.rule == "allowedBaseImages"


# --- requireNonRootUser ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["", "root", "0", "0:0", "root:root", "0:1000", " 0 ", "00"])
def test_an_image_running_as_root_breaks_require_non_root_user(user: str) -> None:
    image = facts(platform_image(user=user))
    finding = only(verdict(rules(requireNonRootUser=True), facts_by_image=of(image)))
    assert finding.rule == "requireNonRootUser"
    assert finding.message.endswith(
        'ImagePolicy "slim" requires a non-root user. '
        "Add USER 10001 to the final stage, or set securityContext.runAsNonRoot with a runAsUser."
    )


def test_the_root_user_message_says_what_the_image_runs_as() -> None:
    assert only(
        verdict(rules(requireNonRootUser=True), facts_by_image=of(facts(platform_image(user="0:0"))))
    ).message.startswith(f"{SUBJECT} runs as '0:0' (root); ")
    assert only(
        verdict(rules(requireNonRootUser=True), facts_by_image=of(facts(platform_image(user=""))))
    ).message.startswith(f"{SUBJECT} has no USER, so it runs as root; ")


@pytest.mark.parametrize("user", ["10001", "1000:1000", "nobody", "app:app", "65532"])
def test_an_image_with_a_non_root_user_is_compliant(user: str) -> None:
    image = facts(platform_image(user=user))
    assert verdict(rules(requireNonRootUser=True), facts_by_image=of(image)).status is Status.COMPLIANT


@pytest.mark.parametrize(
    ("run_as_user", "run_as_non_root", "status"),
    [
        (10001, None, Status.COMPLIANT),
        (None, True, Status.COMPLIANT),
        (0, None, Status.NONCOMPLIANT),
        (None, False, Status.NONCOMPLIANT),
    ],
)
def test_the_pod_security_context_can_override_a_root_image(
    run_as_user: int | None, run_as_non_root: bool | None, status: Status
) -> None:
    subject = workload(container(run_as_user=run_as_user, run_as_non_root=run_as_non_root))
    root = of(facts(platform_image(user="root")))
    assert verdict(rules(requireNonRootUser=True), subject, root).status is status


# --- requireDigest -----------------------------------------------------------------------------------------------


def test_a_tag_reference_breaks_require_digest_and_is_shown_how_to_pin() -> None:
    finding = only(verdict(rules(requireDigest=True), facts_by_image={}))
    assert finding.message == (
        f'{SUBJECT} is referenced by tag; ImagePolicy "slim" requires a digest. '
        "Pin it as registry.example.com/team/app@sha256:<digest>."
    )
    assert (finding.limit, finding.actual) == ("digest", "tag")


def test_a_digest_reference_satisfies_require_digest_without_any_facts() -> None:
    pinned = f"registry.example.com/team/app:1.0@{digest('x')}"
    result = verdict(rules(requireDigest=True), workload(pinned), {})
    assert (result.status, result.pending_images) == (Status.COMPLIANT, ())


def test_a_tag_reference_breaks_require_digest_even_before_the_facts_arrive() -> None:
    result = verdict(rules(requireDigest=True, maxLayers=10), facts_by_image={})
    assert [f.rule for f in result.findings] == ["requireDigest"]
    assert result.pending_images == (APP,)
    assert result.status is Status.NONCOMPLIANT


# --- platforms ---------------------------------------------------------------------------------------------------


def test_an_arm64_only_image_breaks_the_default_amd64_platform_rule() -> None:
    arm_only = facts(platform_image(platform=ARM64))
    finding = only(verdict(rules(maxLayers=10), facts_by_image=of(arm_only)))
    assert finding.message == (
        f'{SUBJECT} has no linux/amd64 image (it has linux/arm64/v8); ImagePolicy "slim" requires linux/amd64. '
        "Build and push a linux/amd64 variant, e.g. with docker buildx --platform."
    )
    assert (finding.rule, finding.limit, finding.actual) == ("platforms", "linux/amd64", "linux/arm64/v8")


def test_a_missing_platform_lists_everything_the_index_offers() -> None:
    index = facts(platform_image(platform=AMD64), listed=(AMD64, Platform("linux", "s390x")))
    finding = only(verdict(rules(platforms=["linux/arm64"]), facts_by_image=of(index)))
    assert "has no linux/arm64 image (it has linux/amd64, linux/s390x)" in finding.message


@pytest.mark.parametrize(
    ("offered", "required", "status"),
    [
        (Platform("linux", "arm64"), "linux/arm64/v8", Status.COMPLIANT),
        (Platform("linux", "arm64", "v8"), "linux/arm64", Status.COMPLIANT),
        (Platform("linux", "arm", "v6"), "linux/arm/v7", Status.NONCOMPLIANT),
        (Platform("linux", "arm", "v7"), "linux/arm", Status.COMPLIANT),
    ],
)
def test_platform_variants_are_matched_as_container_runtimes_match_them(
    offered: Platform, required: str, status: Status
) -> None:
    image = facts(platform_image(platform=offered))
    assert verdict(rules(platforms=[required]), facts_by_image=of(image)).status is status


def test_every_required_platform_must_be_offered() -> None:
    index = facts(platform_image(platform=AMD64), platform_image(platform=ARM64))
    assert verdict(rules(platforms=["linux/amd64", "linux/arm64"]), facts_by_image=of(index)).status is Status.COMPLIANT
    finding = only(verdict(rules(platforms=["linux/amd64", "linux/ppc64le"]), facts_by_image=of(index)))
    assert finding.limit == "linux/ppc64le"


# --- vulnerabilities ---------------------------------------------------------------------------------------------

IMAGE = facts()
OWNED: dict[str, Any] = {"report_owners": (("ReplicaSet", "api-5d9c8b7f4"),)}


def vulns(
    *reports: Any,
    owners: dict[str, Any] | None = None,
    digest_reports: dict[str, tuple[DigestReports, ...]] | None = None,
    **limits: Any,
) -> Verdict:
    return verdict(
        rules(vulnerabilities=limits),
        facts_by_image=of(IMAGE),
        reports=list(reports),
        digest_reports=digest_reports or {},
        **(OWNED if owners is None else owners),
    )


def test_too_many_critical_vulnerabilities_is_a_violation_naming_the_report() -> None:
    report = vulnerability_report(artifact_digest=IMAGE.digest, critical=2, high=3)
    finding = only(vulns(report, maxCritical=0, maxHigh=5))
    assert finding.message == (
        f"{SUBJECT} has 2 critical vulnerabilities (VulnerabilityReport team-a/{report.name}); "
        'ImagePolicy "slim" allows 0. Rebuild on a patched or smaller base image.'
    )
    assert (finding.rule, finding.limit, finding.actual) == ("vulnerabilities.maxCritical", "0", "2")


def test_each_severity_over_its_limit_is_its_own_finding() -> None:
    report = vulnerability_report(artifact_digest=IMAGE.digest, critical=1, high=6, medium=51)
    result = vulns(report, maxCritical=0, maxHigh=5, maxMedium=50)
    assert [f.rule for f in result.findings] == [
        "vulnerabilities.maxCritical",
        "vulnerabilities.maxHigh",
        "vulnerabilities.maxMedium",
    ]
    assert vulns(report, maxCritical=1, maxHigh=6, maxMedium=51).status is Status.COMPLIANT


def test_ignore_unfixed_counts_only_fixable_vulnerabilities() -> None:
    report = vulnerability_report(
        artifact_digest=IMAGE.digest,
        critical=2,
        vulnerabilities=[{"severity": "CRITICAL", "fixedVersion": "1.1"}, {"severity": "CRITICAL"}],
    )
    assert "has 1 fixable critical vulnerability" in only(vulns(report, maxCritical=0, ignoreUnfixed=True)).message
    assert "has 2 critical vulnerabilities" in only(vulns(report, maxCritical=0)).message
    assert vulns(report, maxCritical=1, ignoreUnfixed=True).status is Status.COMPLIANT


def test_a_deployments_report_is_found_through_its_replicaset() -> None:
    report = vulnerability_report(kind="ReplicaSet", artifact_digest=IMAGE.digest, critical=1)
    assert vulns(report, maxCritical=0).status is Status.NONCOMPLIANT
    assert vulns(report, owners={}, maxCritical=0).status is Status.COMPLIANT  # not found, onMissingReport: Allow


def test_a_report_for_one_platform_manifest_of_an_index_speaks_for_the_image() -> None:
    index = facts(platform_image(platform=AMD64), platform_image(platform=ARM64))
    report = vulnerability_report(artifact_digest=index.platforms[0].manifest_digest, critical=1)
    result = verdict(rules(vulnerabilities={"maxCritical": 0}), facts_by_image=of(index), reports=[report], **OWNED)
    assert result.status is Status.NONCOMPLIANT


def test_a_missing_report_is_allowed_by_default_and_denied_when_asked() -> None:
    assert vulns(maxCritical=0).status is Status.COMPLIANT
    finding = only(vulns(maxCritical=0, onMissingReport="Deny"))
    assert finding.message == (
        f"{SUBJECT} cannot be vouched for: it has no VulnerabilityReport for digest {IMAGE.digest}; "
        'ImagePolicy "slim" requires a current scan (onMissingReport: Deny). Wait for Trivy Operator to scan it.'
    )
    assert finding.rule == "vulnerabilities.onMissingReport"


def test_while_the_reports_are_being_listed_the_rule_is_undecided_not_missing_nor_passed() -> None:
    """A policy with a vulnerabilities rule just added: the watch's first LIST may not have reached the report
    that counts. Neither "no report" (onMissingReport) nor the worst of part of them: an error, onUnknown decides."""
    report = vulnerability_report(artifact_digest=IMAGE.digest, critical=2)
    for limits in ({"maxCritical": 0}, {"maxCritical": 0, "onMissingReport": "Deny"}):
        result = verdict(
            rules(vulnerabilities=limits, maxCompressedSize="1Ki"),
            facts_by_image=of(IMAGE),
            reports=[report],
            reports_listed=False,
            **OWNED,
        )
        pending = [f for f in result.findings if f.rule == "vulnerabilities"]
        assert [(f.kind, f.reason) for f in pending] == [(FindingKind.ERROR, "ReportsPending")]
        assert "still listing them" in pending[0].message
        assert [f.rule for f in result.violations] == ["maxCompressedSize"], "the other rules are decided"
    assert only(vulns(report, maxCritical=0)).rule == "vulnerabilities.maxCritical", "once listed, decided"


def test_a_report_for_a_previous_digest_is_stale_and_never_counted() -> None:
    stale = vulnerability_report(artifact_digest=digest("previous build"), critical=9)
    assert vulns(stale, maxCritical=0).status is Status.COMPLIANT
    finding = only(vulns(stale, maxCritical=0, onMissingReport="Deny"))
    assert f"its only VulnerabilityReport team-a/{stale.name} is for another digest" in finding.message


def test_a_report_older_than_max_report_age_counts_as_missing() -> None:
    old = vulnerability_report(artifact_digest=IMAGE.digest, updated=NOW - timedelta(hours=169), critical=3)
    assert vulns(old, maxCritical=0, maxReportAge="168h").status is Status.COMPLIANT
    finding = only(vulns(old, maxCritical=0, maxReportAge="168h", onMissingReport="Deny"))
    assert f"its newest VulnerabilityReport team-a/{old.name} is older than 168h" in finding.message
    fresh = vulnerability_report(artifact_digest=IMAGE.digest, updated=NOW - timedelta(hours=167), critical=3)
    assert only(vulns(fresh, maxCritical=0, maxReportAge="168h")).rule == "vulnerabilities.maxCritical"


def test_a_report_without_a_timestamp_is_too_old_for_any_age_limit() -> None:
    undated = vulnerability_report(artifact_digest=IMAGE.digest, updated=None)
    assert only(vulns(undated, maxCritical=0, maxReportAge="7d", onMissingReport="Deny")).rule == (
        "vulnerabilities.onMissingReport"
    )


def filed_for_digest(*reports: Any) -> dict[str, tuple[DigestReports, ...]]:
    """The cluster's reports for IMAGE's digest, as the view indexes them, whoever they were filed for."""
    group = DigestReports()
    for report in reports:
        group.add((report.namespace, report.name), report)
    return {IMAGE.digest: (group,)}


def test_a_report_filed_for_another_workload_on_the_running_digest_counts_for_a_bare_pod() -> None:
    # Trivy files one report per workload; a new Pod on an image known to be vulnerable must not slip through.
    other = vulnerability_report(namespace="team-b", name="web-6f7d", artifact_digest=IMAGE.digest, critical=2)
    pod = workload(kind="Pod", name="debug")
    result = verdict(
        rules(vulnerabilities={"maxCritical": 0}),
        pod,
        facts_by_image=of(IMAGE),
        digest_reports=filed_for_digest(other),
    )
    assert only(result).message == (
        f"{SUBJECT} has 2 critical vulnerabilities (VulnerabilityReport team-b/{other.name}); "
        'ImagePolicy "slim" allows 0. Rebuild on a patched or smaller base image.'
    )
    assert result.scanned_digests == (IMAGE.digest,)


def test_a_second_deployment_on_a_digest_with_criticals_is_noncompliant_despite_its_own_clean_report() -> None:
    own = vulnerability_report(artifact_digest=IMAGE.digest, critical=0)
    other = vulnerability_report(namespace="team-b", name="web-6f7d", artifact_digest=IMAGE.digest, critical=2)
    result = vulns(own, maxCritical=0, digest_reports=filed_for_digest(own, other))
    assert only(result).actual == "2"


def test_a_report_for_the_digest_older_than_max_report_age_does_not_speak_for_it() -> None:
    old = vulnerability_report(
        namespace="team-b", name="web", artifact_digest=IMAGE.digest, critical=2, updated=NOW - timedelta(days=9)
    )
    assert vulns(maxCritical=0, maxReportAge="7d", digest_reports=filed_for_digest(old)).status is Status.COMPLIANT
    finding = only(
        vulns(maxCritical=0, maxReportAge="7d", onMissingReport="Deny", digest_reports=filed_for_digest(old))
    )
    assert f"its newest VulnerabilityReport team-b/{old.name} is older than 7d" in finding.message


def test_a_verdict_without_vulnerability_rules_names_no_scanned_digest() -> None:
    assert verdict(rules(maxLayers=100), facts_by_image=of(IMAGE)).scanned_digests == ()


# --- several policies, exemptions, errors, pending ---------------------------------------------------------------

FAT = of(facts(platform_image(*layers("fat", 3, 100 * MiB))))


def test_several_policies_each_name_their_own_findings_and_the_strictest_violated_mode_decides() -> None:
    audit = policy("a-size", rules={"maxCompressedSize": "200Mi"})
    warn = policy("b-layers", rules={"maxLayers": 1}, mode="Warn")
    enforce = policy("c-compliant", rules={"maxLayers": 50}, mode="Enforce")
    result = verdict([enforce, warn, audit], facts_by_image=FAT)
    assert result.policies == ("a-size", "b-layers", "c-compliant")
    assert [(f.policy, f.rule) for f in result.findings] == [("a-size", "maxCompressedSize"), ("b-layers", "maxLayers")]
    assert 'ImagePolicy "b-layers" allows 1' in result.for_policy("b-layers")[0].message
    assert result.mode is Mode.WARN


def test_an_exemption_waives_violations_and_keeps_them_on_record() -> None:
    exempt = policy(
        "slim",
        rules={"maxCompressedSize": "200Mi"},
        exemptions=[{"images": ["registry.example.com/team/*"], "reason": "migrating to distroless by Q3"}],
    )
    result = verdict(exempt, facts_by_image=FAT)
    assert result.findings == ()
    assert [f.rule for f in result.exempted] == ["maxCompressedSize"]
    assert result.status is Status.COMPLIANT


def test_an_expired_exemption_waives_nothing() -> None:
    expired = policy(
        "slim",
        rules={"maxCompressedSize": "200Mi"},
        exemptions=[{"images": ["*"], "reason": "r", "expires": (NOW - timedelta(seconds=1)).isoformat()}],
    )
    assert verdict(expired, facts_by_image=FAT).status is Status.NONCOMPLIANT


def test_an_exemption_in_one_policy_does_not_waive_another_policys_findings() -> None:
    lenient = policy("a", rules={"maxLayers": 1}, exemptions=[{"workloads": [{"name": "api"}], "reason": "r"}])
    strict = policy("b", rules={"maxLayers": 1})
    result = verdict([lenient, strict], facts_by_image=FAT)
    assert [f.policy for f in result.findings] == ["b"]
    assert [f.policy for f in result.exempted] == ["a"]


def test_an_exemption_does_not_hide_errors() -> None:
    exempt = policy("slim", rules={"maxLayers": 5}, exemptions=[{"images": ["*"], "reason": "r"}])
    result = verdict(exempt, facts_by_image={APP: InspectionError("401 Unauthorized from registry.example.com")})
    assert result.status is Status.ERROR
    assert only(result).kind is FindingKind.ERROR


def test_an_image_that_cannot_be_inspected_is_an_error_never_compliant() -> None:
    result = verdict(rules(maxLayers=5), facts_by_image={APP: InspectionError("registry.example.com: timed out")})
    finding = only(result)
    assert result.status is Status.ERROR
    assert (finding.rule, finding.kind) == ("inspection", FindingKind.ERROR)
    assert finding.message == f"{SUBJECT} could not be inspected: registry.example.com: timed out"


def test_an_inspection_error_does_not_hide_a_digest_violation() -> None:
    result = verdict(rules(maxLayers=5, requireDigest=True), facts_by_image={APP: InspectionError("down")})
    assert [f.kind for f in result.findings] == [FindingKind.VIOLATION, FindingKind.ERROR]
    assert result.status is Status.NONCOMPLIANT


def test_an_invalid_image_reference_is_an_error_naming_what_is_wrong() -> None:
    result = verdict(rules(maxLayers=5), workload("Registry.example.com/Team/App"), {})
    finding = only(result)
    assert (finding.rule, finding.kind, result.status) == ("reference", FindingKind.ERROR, Status.ERROR)
    assert "invalid repository 'Team/App'" in finding.message


def test_an_image_whose_facts_are_not_in_yet_is_pending() -> None:
    result = verdict(rules(maxLayers=5), workload(APP, "node:20-alpine"), {APP: facts()})
    assert result.status is Status.PENDING
    assert result.pending_images == ("node:20-alpine",)
    assert result.policies == ("slim",)


def test_a_workload_no_policy_applies_to_has_no_policies_and_nothing_to_inspect() -> None:
    elsewhere = policy(match={"namespaces": ["prod"]})
    subject = workload(namespace="team-a")
    result = verdict(elsewhere, subject, {})
    assert result.policies == ()
    assert not result.applies
    assert plan([elsewhere], subject, {}).policies == ()
    assert plan([elsewhere], subject, {}).needs == {}


def test_only_images_of_containers_some_policy_checks_are_inspected() -> None:
    team = policy("team", match={"images": ["registry.example.com/*"]})
    subject = workload(APP, "node:20")
    assert set(plan([team], subject, {}).needs) == {APP}
    assert [p.name for p in plan([team], subject, {}).policies] == ["team"]


def test_every_container_is_checked_init_and_ephemeral_included() -> None:
    subject = workload(
        container("registry.example.com/team/migrate:1", "migrate", type=ContainerType.INIT),
        container(APP, "app"),
        container("busybox:1.36", "debug", type=ContainerType.EPHEMERAL),
    )
    fat = facts(platform_image(*layers("fat", 1, 300 * MiB)))
    result = verdict(rules(maxCompressedSize="200Mi"), subject, dict.fromkeys(subject.images, fat))
    assert [f.container for f in result.findings] == ["migrate", "app", "debug"]


def test_an_error_carries_the_reason_the_facts_could_not_be_had_into_the_annotation() -> None:
    down = InspectionError("registry 127.0.0.1:1 is unreachable", reason="RegistryUnreachable")
    finding = only(verdict(rules(maxLayers=3), facts_by_image={APP: down}))
    assert (finding.kind, finding.reason) == (FindingKind.ERROR, "RegistryUnreachable")
    assert finding.as_dict()["reason"] == "RegistryUnreachable"
    unreadable_base = only(
        verdict(rules(deniedBaseImages=["*/debian:*"]), facts_by_image=built_on(DEBIAN), base_candidates={"x:1": down})
    )
    assert unreadable_base.reason == "BaseImageUnreadable"
