"""The test bed's VulnerabilityReports are named, labelled and hashed as Trivy Operator v0.32.0 does it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slimguard_testbed.trivy import compute_hash, report_name, vulnerability, vulnerability_report

UPDATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [  # the values trivy-operator's own tests expect (pkg/configauditreport/{builder,io}_test.go at v0.32.0)
        ("system:controller:node-controller", "6f69bb5b79"),
        ("system:controller:token-cleaner", "868458b9d6"),
        ("system:controller:cloud-provider", "79f88497"),
    ],
)
def test_the_name_hash_is_trivy_operators(name: str, expected: str) -> None:
    assert compute_hash(name) == expected


def test_a_short_owner_is_named_in_a_label_and_the_report_after_it() -> None:
    report = vulnerability_report(
        namespace="shop",
        kind="ReplicaSet",
        name="api-5d9c8b7f4",
        container="api",
        image="127.0.0.1:5000/shop/api:1.0",
        digest="sha256:" + "a" * 64,
        updated=UPDATED,
        vulnerabilities=[vulnerability("CVE-2026-0001", "CRITICAL"), vulnerability("CVE-2026-0002", "LOW")],
        owner_uid="uid-1",
    )
    metadata = report["metadata"]
    assert metadata["name"] == "replicaset-api-5d9c8b7f4-api"
    assert metadata["labels"]["trivy-operator.resource.name"] == "api-5d9c8b7f4"
    assert "annotations" not in metadata
    assert metadata["ownerReferences"][0]["blockOwnerDeletion"] is False
    data = report["report"]
    assert data["registry"] == {"server": "127.0.0.1:5000"}
    assert data["artifact"] == {"repository": "shop/api", "tag": "1.0", "digest": "sha256:" + "a" * 64}
    assert data["updateTimestamp"] == "2026-03-01T12:00:00Z"
    assert (data["summary"]["criticalCount"], data["summary"]["lowCount"], data["summary"]["highCount"]) == (1, 1, 0)


def test_a_name_that_is_no_label_value_goes_to_an_annotation_and_its_hash_to_a_label() -> None:
    owner = "a" * 59 + "-5d9c8b7f4c"  # a 59-character Deployment's ReplicaSet: 70 characters
    report = vulnerability_report(
        namespace="shop",
        kind="ReplicaSet",
        name=owner,
        container="api",
        image="127.0.0.1:5000/shop/api:1.0",
        digest=None,
        updated=UPDATED,
    )
    metadata = report["metadata"]
    assert "trivy-operator.resource.name" not in metadata["labels"]
    assert metadata["labels"]["trivy-operator.resource.name-hash"] == compute_hash(owner)
    assert metadata["annotations"] == {"trivy-operator.resource.name": owner}
    assert metadata["name"] == report_name("ReplicaSet", owner, "api") == f"replicaset-{compute_hash(owner + '-api')}"
    assert "digest" not in report["report"]["artifact"]
