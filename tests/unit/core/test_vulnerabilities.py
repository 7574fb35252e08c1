"""Trivy Operator's VulnerabilityReports: what they count, and which one speaks for a running container."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slimguard.core.vulnerabilities import SeverityCounts, VulnerabilityReport, select_report

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
