"""Scan results from Trivy Operator's VulnerabilityReports decide vulnerability rules, by digest."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import annotations, apply, deployment, get, image_policy, namespace, violations, wait_for, wait_for_status

from slimguard_testbed import ControlPlane, Registry
from slimguard_testbed.images import FixtureImage, push_image
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.trivy import vulnerability, vulnerability_report
from slimguard_testbed.webhook import WebhookReplicas

TRIVY_CRD = Path(__file__).parent / "crds" / "aquasecurity.github.io_vulnerabilityreports.yaml"
NS = "audit-vulns"


@pytest.fixture(scope="module")
def trivy_crd(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "-f", str(TRIVY_CRD))
    control_plane.wait_established("vulnerabilityreports.aquasecurity.github.io")


@pytest.fixture
def image(registry: Registry, request: pytest.FixtureRequest) -> FixtureImage:
    """An image of this test's own: reports speak for a digest cluster-wide, so tests must not share one."""
    name = request.node.originalname.removeprefix("test_")
    return push_image(registry.endpoint, f"shop/vulns/{name}", "1.0", [{"/app/test.txt": name.encode()}])


def current_replicaset(plane: ControlPlane, name: str, namespace: str = NS) -> tuple[str, str]:
    """(name, uid) of the Deployment's ReplicaSet: Trivy Operator files the Deployment's reports under it."""
    found = wait_for(
        f"the ReplicaSet of {name}",
        lambda: plane.kubectl(
            "get",
            "rs",
            "-n",
            namespace,
            "-l",
            f"app={name}",
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].metadata.uid}",
            check=False,
        ).stdout.strip(),
    )
    replicaset, uid = found.split()
    return replicaset, uid


def replicaset_report(
    plane: ControlPlane,
    deployment_name: str,
    image: str,
    digest: str,
    *,
    updated: datetime,
    vulnerabilities: Sequence[dict[str, Any]] = (),
    namespace: str = NS,
) -> dict[str, Any]:
    """The report Trivy Operator files for container "api" of the Deployment, under its current ReplicaSet."""
    replicaset, uid = current_replicaset(plane, deployment_name, namespace)
    return vulnerability_report(
        namespace=namespace,
        kind="ReplicaSet",
        name=replicaset,
        container="api",
        image=image,
        digest=digest,
        updated=updated,
        vulnerabilities=vulnerabilities,
        owner_uid=uid,
    )


def critical(cve: str, fixed: str) -> dict[str, Any]:
    return vulnerability(cve, "CRITICAL", fixed=fixed, title="a critical flaw")


def test_critical_findings_fail_max_critical_and_a_newer_clean_report_passes(
    control_plane: ControlPlane, operator: InProcessOperator, image: FixtureImage, trivy_crd: None
) -> None:
    apply(control_plane, namespace(NS), deployment("api", NS, image.ref))
    now = datetime.now(UTC)
    three = [critical(f"CVE-2026-000{n}", "3.0.2") for n in range(3)]
    apply(
        control_plane,
        replicaset_report(
            control_plane, "api", image.ref, image.digest, updated=now - timedelta(hours=1), vulnerabilities=three
        ),
    )
    apply(control_plane, image_policy("no-criticals", {"vulnerabilities": {"maxCritical": 0}}, namespaces=[NS]))

    found = wait_for_status(control_plane, "deployment", "api", NS, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "vulnerabilities.maxCritical"
    assert "has 3 critical vulnerabilities" in finding["message"]
    assert 'ImagePolicy "no-criticals" allows 0' in finding["message"]

    apply(control_plane, replicaset_report(control_plane, "api", image.ref, image.digest, updated=now))
    wait_for_status(control_plane, "deployment", "api", NS, "compliant")
    control_plane.kubectl("delete", "imagepolicy", "no-criticals")


def test_ignore_unfixed_counts_only_findings_with_a_fix(
    control_plane: ControlPlane, operator: InProcessOperator, image: FixtureImage, trivy_crd: None
) -> None:
    apply(control_plane, namespace(NS), deployment("unfixed", NS, image.ref))
    unfixed = [critical("CVE-2026-1111", ""), critical("CVE-2026-2222", "")]
    apply(
        control_plane,
        replicaset_report(
            control_plane, "unfixed", image.ref, image.digest, updated=datetime.now(UTC), vulnerabilities=unfixed
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
    control_plane: ControlPlane, operator: InProcessOperator, image: FixtureImage, trivy_crd: None
) -> None:
    apply(control_plane, namespace(NS), deployment("rebuilt", NS, image.ref))
    old_digest = "sha256:" + "0" * 64
    apply(control_plane, replicaset_report(control_plane, "rebuilt", image.ref, old_digest, updated=datetime.now(UTC)))
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


def test_the_report_of_a_deployment_whose_replicaset_name_is_no_label_value_is_found(
    control_plane: ControlPlane, operator: InProcessOperator, image: FixtureImage, trivy_crd: None
) -> None:
    # 59 characters make a ReplicaSet name of ~70: Trivy Operator then labels the report with the name's hash
    # and writes the name itself in an annotation (pkg/kube/object.go).
    name = "checkout-service-with-a-name-long-enough-to-need-a-hash-xyz"
    assert len(name) == 59
    apply(control_plane, namespace(NS), deployment(name, NS, image.ref))
    filed = replicaset_report(
        control_plane,
        name,
        image.ref,
        image.digest,
        updated=datetime.now(UTC),
        vulnerabilities=[critical("CVE-2026-3333", "1.1")],
    )
    assert "trivy-operator.resource.name-hash" in filed["metadata"]["labels"]
    apply(control_plane, filed)
    apply(
        control_plane,
        image_policy("long-names", {"vulnerabilities": {"maxCritical": 0, "onMissingReport": "Deny"}}, namespaces=[NS]),
    )
    found = wait_for_status(control_plane, "deployment", name, NS, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "vulnerabilities.maxCritical"
    assert f"(VulnerabilityReport {NS}/{filed['metadata']['name']})" in finding["message"]

    # Only the workload's own report, found through its owner, can tell that it is for another digest.
    old_digest = "sha256:" + "1" * 64
    apply(control_plane, replicaset_report(control_plane, name, image.ref, old_digest, updated=datetime.now(UTC)))

    def stale_finding() -> dict[str, str] | None:
        found = violations(annotations(control_plane, "deployment", name, NS))
        return found[0] if [f["rule"] for f in found] == ["vulnerabilities.onMissingReport"] else None

    finding = wait_for("the stale-report finding", stale_finding)
    assert f"is for another digest ({old_digest}), so it is stale" in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "long-names")


DENIED = 'admission webhook "images.slimguard.dev" denied the request'


def try_apply(plane: ControlPlane, document: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", *extra, "-f", "-", input=yaml.safe_dump(document), check=False)


def test_a_digest_with_criticals_is_denied_and_noncompliant_wherever_it_runs(
    control_plane: ControlPlane,
    operator: InProcessOperator,
    webhook: WebhookReplicas,
    image: FixtureImage,
    trivy_crd: None,
) -> None:
    # Trivy files one report per workload; the report speaks for its digest, wherever that runs.
    scanned, other, enforced = "vulns-scanned", "vulns-other", "vulns-enforced"
    apply(control_plane, namespace(scanned), namespace(other), namespace(enforced))
    apply(control_plane, deployment("first", scanned, image.ref), deployment("second", other, image.ref))
    apply(
        control_plane,
        image_policy("digest-audit", {"vulnerabilities": {"maxCritical": 0}}, namespaces=[scanned, other]),
    )
    wait_for_status(control_plane, "deployment", "second", other, "compliant")  # no report yet: Allow

    two = [critical("CVE-2026-4441", "1.1"), critical("CVE-2026-4442", "")]
    filed = replicaset_report(
        control_plane,
        "first",
        image.ref,
        image.digest,
        updated=datetime.now(UTC),
        vulnerabilities=two,
        namespace=scanned,
    )
    apply(control_plane, filed)
    found = wait_for_status(control_plane, "deployment", "second", other, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "vulnerabilities.maxCritical"
    assert (
        f"has 2 critical vulnerabilities (VulnerabilityReport {scanned}/{filed['metadata']['name']})"
        in (finding["message"])
    )

    apply(
        control_plane,
        image_policy("digest-enforce", {"vulnerabilities": {"maxCritical": 0}}, namespaces=[enforced], mode="Enforce"),
    )
    wait_for(
        "the webhook to know the policy and the report",
        lambda: DENIED in try_apply(control_plane, deployment("probe", enforced, image.ref), "--dry-run=server").stderr,
    )
    rejected = try_apply(control_plane, deployment("new", enforced, image.ref))
    assert rejected.returncode != 0
    assert DENIED in rejected.stderr
    assert f"slimguard denied Deployment {enforced}/new" in rejected.stderr
    assert f'container "api": image {image.ref} has 2 critical vulnerabilities' in rejected.stderr
    assert get(control_plane, "deployment", "new", enforced) is None

    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "namespace": enforced},
        "spec": {"containers": [{"name": "debug", "image": image.ref}]},
    }
    rejected = try_apply(control_plane, bare)
    assert rejected.returncode != 0
    assert f"slimguard denied Pod {enforced}/bare" in rejected.stderr
    assert f'container "debug": image {image.ref} has 2 critical vulnerabilities' in rejected.stderr
    assert get(control_plane, "pod", "bare", enforced) is None
    control_plane.kubectl("delete", "imagepolicy", "digest-audit", "digest-enforce")
