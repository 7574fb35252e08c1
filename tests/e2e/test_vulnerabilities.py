"""Scan results from Trivy Operator's VulnerabilityReports decide vulnerability rules, by digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster import apply, deployment, image_policy, namespace, violations, wait_for, wait_for_status

from slimguard_testbed import ControlPlane
from slimguard_testbed.operator_runner import InProcessOperator

TRIVY_CRD = Path(__file__).parent / "crds" / "aquasecurity.github.io_vulnerabilityreports.yaml"
NS = "audit-vulns"


@pytest.fixture(scope="module")
def trivy_crd(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "-f", str(TRIVY_CRD))
    control_plane.kubectl("wait", "--for=condition=Established", "crd/vulnerabilityreports.aquasecurity.github.io")


def current_replicaset(plane: ControlPlane, name: str) -> str:
    return wait_for(
        f"the ReplicaSet of {name}",
        lambda: plane.kubectl(
            "get", "rs", "-n", NS, "-l", f"app={name}", "-o", "jsonpath={.items[0].metadata.name}", check=False
        ).stdout.strip(),
    )


def report(
    name: str,
    replicaset: str,
    digest: str,
    *,
    critical: int,
    updated: datetime,
    vulnerabilities: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "aquasecurity.github.io/v1alpha1",
        "kind": "VulnerabilityReport",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                "trivy-operator.resource.kind": "ReplicaSet",
                "trivy-operator.resource.name": replicaset,
                "trivy-operator.resource.namespace": NS,
                "trivy-operator.container.name": "api",
            },
        },
        "report": {
            "updateTimestamp": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "artifact": {"repository": "shop/api", "tag": "1.0-slim", "digest": digest},
            "registry": {"server": "127.0.0.1"},
            "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.50.0"},
            "summary": {"criticalCount": critical, "highCount": 0, "mediumCount": 1, "lowCount": 4, "unknownCount": 0},
            "vulnerabilities": vulnerabilities or [],
        },
    }


def critical(cve: str, fixed: str) -> dict[str, Any]:
    return {
        "vulnerabilityID": cve,
        "resource": "openssl",
        "installedVersion": "3.0.1",
        "fixedVersion": fixed,
        "severity": "CRITICAL",
        "title": "a critical flaw",
    }


def test_critical_findings_fail_max_critical_and_a_newer_clean_report_passes(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any, trivy_crd: None
) -> None:
    slim = fixture_images.slim_app
    apply(control_plane, namespace(NS), deployment("api", NS, slim.ref))
    replicaset = current_replicaset(control_plane, "api")
    now = datetime.now(UTC)
    three = [critical(f"CVE-2026-000{n}", "3.0.2") for n in range(3)]
    apply(
        control_plane,
        report(
            "replicaset-api-api",
            replicaset,
            slim.digest,
            critical=3,
            updated=now - timedelta(hours=1),
            vulnerabilities=three,
        ),
    )
    apply(control_plane, image_policy("no-criticals", {"vulnerabilities": {"maxCritical": 0}}, namespaces=[NS]))

    found = wait_for_status(control_plane, "deployment", "api", NS, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "vulnerabilities.maxCritical"
    assert "has 3 critical vulnerabilities" in finding["message"]
    assert 'ImagePolicy "no-criticals" allows 0' in finding["message"]

    apply(control_plane, report("replicaset-api-api", replicaset, slim.digest, critical=0, updated=now))
    wait_for_status(control_plane, "deployment", "api", NS, "compliant")
    control_plane.kubectl("delete", "imagepolicy", "no-criticals")


def test_ignore_unfixed_counts_only_findings_with_a_fix(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any, trivy_crd: None
) -> None:
    slim = fixture_images.slim_app
    apply(control_plane, namespace(NS), deployment("unfixed", NS, slim.ref))
    replicaset = current_replicaset(control_plane, "unfixed")
    unfixed = [critical("CVE-2026-1111", ""), critical("CVE-2026-2222", "")]
    apply(
        control_plane,
        report(
            "replicaset-unfixed-api",
            replicaset,
            slim.digest,
            critical=2,
            updated=datetime.now(UTC),
            vulnerabilities=unfixed,
        ),
    )
    apply(control_plane, image_policy("fixable-criticals", {"vulnerabilities": {"maxCritical": 0}}, namespaces=[NS]))
    wait_for_status(control_plane, "deployment", "unfixed", NS, "noncompliant")
    apply(
        control_plane,
        image_policy(
            "fixable-criticals", {"vulnerabilities": {"maxCritical": 0, "ignoreUnfixed": True}}, namespaces=[NS]
        ),
    )
    wait_for_status(control_plane, "deployment", "unfixed", NS, "compliant")
    control_plane.kubectl("delete", "imagepolicy", "fixable-criticals")


def test_a_report_for_an_older_digest_is_stale_and_not_used(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any, trivy_crd: None
) -> None:
    slim = fixture_images.slim_app
    apply(control_plane, namespace(NS), deployment("rebuilt", NS, slim.ref))
    replicaset = current_replicaset(control_plane, "rebuilt")
    old_digest = "sha256:" + "0" * 64
    apply(
        control_plane, report("replicaset-rebuilt-api", replicaset, old_digest, critical=0, updated=datetime.now(UTC))
    )
    apply(
        control_plane,
        image_policy(
            "scanned-only", {"vulnerabilities": {"maxCritical": 0, "onMissingReport": "Deny"}}, namespaces=[NS]
        ),
    )
    found = wait_for_status(control_plane, "deployment", "rebuilt", NS, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "vulnerabilities.onMissingReport"
    assert f"is for another digest ({old_digest}), so it is stale" in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "scanned-only")
