"""Trivy Operator's VulnerabilityReports: what they count, and which one speaks for a running container."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slimguard.core.facts.vulnerabilities import DigestReports, SeverityCounts, VulnerabilityReport, select_report

from .builders import NOW, digest, vulnerability_report

RUNNING = digest("running")
OLD = digest("old")


def test_a_report_is_read_from_its_labels_artifact_summary_and_timestamp() -> None:
    report = vulnerability_report(artifact_digest=RUNNING, critical=1, high=2, medium=3)
    assert (report.namespace, report.resource_kind, report.resource_name, report.container) == (
        "team-a",
        "ReplicaSet",
        "api-5d9c8b7f4",
        "app",
    )
    assert (report.repository, report.tag, report.digest) == ("team/app", "1.0", RUNNING)
    assert report.updated == NOW - timedelta(hours=1)
    assert report.summary == SeverityCounts(critical=1, high=2, medium=3)


def test_a_report_with_missing_parts_reads_as_empty_rather_than_failing() -> None:
    report = VulnerabilityReport.from_resource({"metadata": {"namespace": "n", "name": "r"}, "report": {}})
    assert (report.namespace, report.resource_kind, report.digest, report.updated) == ("n", "", None, None)
    assert report.summary == SeverityCounts()
    assert report.fixable is None


def test_an_unparseable_or_zoneless_timestamp_is_handled() -> None:
    garbled = VulnerabilityReport.from_resource({"report": {"updateTimestamp": "yesterday"}})
    assert garbled.updated is None
    zoneless = VulnerabilityReport.from_resource({"report": {"updateTimestamp": "2026-11-27T11:00:00"}})
    assert zoneless.updated == datetime(2026, 11, 27, 11, 0, tzinfo=UTC)


def test_ignoring_unfixed_counts_only_findings_with_a_fixed_version() -> None:
    report = vulnerability_report(
        critical=2,
        high=1,
        vulnerabilities=[
            {"severity": "CRITICAL", "fixedVersion": "1.2.4"},
            {"severity": "CRITICAL", "fixedVersion": ""},
            {"severity": "HIGH"},
            {"severity": "low", "fixedVersion": "2"},
            {"severity": "UNKNOWN", "fixedVersion": "2"},
        ],
    )
    assert report.counts(ignore_unfixed=False) == SeverityCounts(critical=2, high=1)
    assert report.counts(ignore_unfixed=True) == SeverityCounts(critical=1, low=1)


def test_without_the_vulnerability_list_ignoring_unfixed_falls_back_to_the_full_summary() -> None:
    report = vulnerability_report(critical=2)
    assert report.counts(ignore_unfixed=True) == SeverityCounts(critical=2)


def lookup(*reports: VulnerabilityReport, digests: frozenset[str] = frozenset({RUNNING})):  # type: ignore[no-untyped-def]
    return select_report(
        reports,
        namespace="team-a",
        resources=[("Deployment", "api"), ("ReplicaSet", "api-5d9c8b7f4")],
        container="app",
        digests=digests,
    )


def test_the_newest_report_for_the_container_of_the_workload_or_its_replicaset_is_used() -> None:
    older = vulnerability_report(artifact_digest=RUNNING, updated=NOW - timedelta(days=2))
    newer = vulnerability_report(artifact_digest=RUNNING, updated=NOW - timedelta(hours=1), critical=1)
    assert lookup(older, newer).report is newer


def test_reports_of_other_containers_namespaces_or_resources_are_not_used() -> None:
    found = lookup(
        vulnerability_report(container="sidecar"),
        vulnerability_report(namespace="team-b"),
        vulnerability_report(kind="ReplicaSet", name="web-1"),
    )
    assert found.report is None
    assert found.stale is None


def test_a_report_for_another_digest_is_stale_and_never_used() -> None:
    stale = vulnerability_report(artifact_digest=OLD)
    found = lookup(stale)
    assert found.report is None
    assert found.stale is stale


def test_a_current_report_wins_over_a_newer_stale_one() -> None:
    current = vulnerability_report(artifact_digest=RUNNING, updated=NOW - timedelta(days=1))
    stale = vulnerability_report(artifact_digest=OLD, updated=NOW)
    assert lookup(current, stale).report is current


def test_a_report_without_a_digest_cannot_be_proven_stale_and_is_used() -> None:
    undated = vulnerability_report(artifact_digest=None)
    assert lookup(undated).report is undated


def test_a_name_too_long_for_a_label_is_read_from_trivys_annotation() -> None:
    # Trivy Operator (pkg/kube/object.go, ObjectToObjectMeta) puts a name that is no valid label value in an
    # annotation, and only its hash in a label: a 59-character Deployment's ReplicaSet has 70 characters.
    owner = "a" * 59 + "-5d9c8b7f4c"
    report = VulnerabilityReport.from_resource(
        {
            "metadata": {
                "namespace": "team-a",
                "name": "replicaset-8dbfc447",
                "labels": {
                    "trivy-operator.resource.kind": "ReplicaSet",
                    "trivy-operator.resource.name-hash": "6d9b4c5b8f",
                    "trivy-operator.resource.namespace": "team-a",
                    "trivy-operator.container.name": "app",
                },
                "annotations": {"trivy-operator.resource.name": owner},
            },
            "report": {"artifact": {"digest": RUNNING}, "summary": {"criticalCount": 1}},
        }
    )
    assert (report.resource_kind, report.resource_name) == ("ReplicaSet", owner)
    found = select_report(
        [report], namespace="team-a", resources=[("ReplicaSet", owner)], container="app", digests=frozenset({RUNNING})
    )
    assert found.report is report


# --- reports by digest: any fresh report for the running digest speaks for it ------------------------------------


def filed(*reports: VulnerabilityReport) -> DigestReports:
    group = DigestReports()
    for report in reports:
        group.add((report.namespace, report.name), report)
    return group


def elsewhere(*, namespace: str = "team-b", name: str = "web-7c9d", **fields: object) -> VulnerabilityReport:
    """A report Trivy filed for another workload (in another namespace) that runs the same image."""
    return vulnerability_report(namespace=namespace, name=name, **fields)  # type: ignore[arg-type]


def shared_lookup(*groups: DigestReports, own: tuple[VulnerabilityReport, ...] = (), **options: object):  # type: ignore[no-untyped-def]
    return select_report(
        own,
        namespace="team-a",
        resources=[("Deployment", "api"), ("ReplicaSet", "api-5d9c8b7f4")],
        container="app",
        digests=frozenset({RUNNING}),
        shared=groups,
        **options,  # type: ignore[arg-type]
    )


def test_a_report_filed_for_another_workload_on_the_same_digest_speaks_for_it() -> None:
    other = elsewhere(artifact_digest=RUNNING, critical=2)
    assert shared_lookup(filed(other)).report is other


def test_where_fresh_reports_for_one_digest_disagree_the_worst_counts() -> None:
    own = vulnerability_report(artifact_digest=RUNNING, critical=0, high=9)
    worse = elsewhere(artifact_digest=RUNNING, critical=2)
    assert shared_lookup(filed(own, worse), own=(own,)).report is worse
    more_highs = elsewhere(name="b", artifact_digest=RUNNING, critical=2, high=1)
    assert shared_lookup(filed(own, worse, more_highs), own=(own,)).report is more_highs


def test_the_worst_report_is_the_worst_by_the_policys_way_of_counting() -> None:
    unfixed = elsewhere(
        name="unfixed",
        artifact_digest=RUNNING,
        critical=2,
        vulnerabilities=[{"severity": "CRITICAL"}, {"severity": "CRITICAL"}],
    )
    fixable = elsewhere(
        name="fixable",
        artifact_digest=RUNNING,
        critical=1,
        vulnerabilities=[{"severity": "CRITICAL", "fixedVersion": "2"}],
    )
    group = filed(unfixed, fixable)
    assert shared_lookup(group, ignore_unfixed=False).report is unfixed
    assert shared_lookup(group, ignore_unfixed=True).report is fixable


def test_on_a_tie_the_workloads_own_report_is_the_one_named() -> None:
    own = vulnerability_report(artifact_digest=RUNNING, critical=1, updated=NOW - timedelta(days=3))
    same = elsewhere(artifact_digest=RUNNING, critical=1)
    assert shared_lookup(filed(own, same), own=(own,)).report is own


def test_only_reports_within_the_age_limit_speak_for_a_digest() -> None:
    old_and_bad = elsewhere(name="old", artifact_digest=RUNNING, critical=5, updated=NOW - timedelta(days=10))
    fresh = elsewhere(name="fresh", artifact_digest=RUNNING, critical=1, updated=NOW - timedelta(hours=1))
    group = filed(old_and_bad, fresh)
    assert shared_lookup(group).report is old_and_bad  # no age limit: every report speaks
    assert shared_lookup(group, fresh_since=NOW - timedelta(days=7)).report is fresh
    nothing_fresh = shared_lookup(filed(old_and_bad), fresh_since=NOW - timedelta(days=7))
    assert nothing_fresh.report is None
    assert nothing_fresh.too_old is old_and_bad


def test_the_own_report_too_old_is_named_as_the_newest_when_nothing_is_fresh() -> None:
    own = vulnerability_report(artifact_digest=RUNNING, updated=NOW - timedelta(days=8))
    older = elsewhere(artifact_digest=RUNNING, updated=NOW - timedelta(days=9))
    found = shared_lookup(filed(own, older), own=(own,), fresh_since=NOW - timedelta(days=7))
    assert (found.report, found.too_old) == (None, own)


def test_a_stale_own_report_is_still_told_apart_when_no_report_speaks_for_the_digest() -> None:
    stale = vulnerability_report(artifact_digest=OLD)
    found = shared_lookup(filed(), own=(stale,))
    assert (found.report, found.stale) == (None, stale)


def test_a_digests_reports_are_replaced_and_removed_by_key() -> None:
    first = elsewhere(artifact_digest=RUNNING, critical=3)
    group = filed(first)
    rescanned = elsewhere(artifact_digest=RUNNING, critical=0)
    group.add(("team-b", first.name), rescanned)  # the same report, written again by Trivy
    assert len(group) == 1
    assert group.worst(ignore_unfixed=False, fresh_since=None) is rescanned
    group.discard(("team-b", first.name))
    assert len(group) == 0
    assert group.worst(ignore_unfixed=False, fresh_since=None) is None
    group.discard(("team-b", "never-added"))  # a deletion seen twice is harmless
