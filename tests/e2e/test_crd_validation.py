"""The ImagePolicy CRD as the real kube-apiserver enforces it.

A bad policy must be refused at `kubectl apply` with a message that says what is wrong, before slimguard
ever sees it; a good one must be stored exactly as written, with the documented defaults filled in.
The CRDs come from `crds/`, the folder the install uses: one source of truth.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from slimguard_testbed.controlplane import ControlPlane
from slimguard_testbed.trivy import vulnerability, vulnerability_report

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
TEST_CRDS = Path(__file__).parent / "crds"
INVALID_POLICIES = Path(__file__).parent / "fixtures" / "invalid-policies"
POLICIES = REPO / "policies"
IMAGEPOLICY_CRD = "customresourcedefinition/imagepolicies.slimguard.dev"
EXPECT_PREFIX = "# expect: "

# Every field of the design set, so a field the schema forgot (and the apiserver would prune) shows up.
FULL_POLICY: dict[str, Any] = {
    "apiVersion": "slimguard.dev/v1alpha1",
    "kind": "ImagePolicy",
    "metadata": {"name": "crd-test-full"},
    "spec": {
        "mode": "Enforce",
        "onUnknown": "Deny",
        "match": {
            "namespaces": ["team-*", "shop-?"],
            "namespaceSelector": {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}],
            },
            "kinds": ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"],
            "selector": {
                "matchLabels": {"app.kubernetes.io/part-of": "shop"},
                "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}],
            },
            "images": ["registry.example.com/team/*"],
        },
        "exclude": {
            "namespaces": ["team-sandbox"],
            "namespaceSelector": {"matchLabels": {"sandbox": "true"}},
            "kinds": ["Job"],
            "selector": {"matchExpressions": [{"key": "slimguard.dev/skip", "operator": "Exists"}]},
            "images": ["registry.example.com/team/debug-*"],
        },
        "rules": {
            "maxCompressedSize": "200Mi",
            "maxUncompressedSize": 629145600,
            "maxLayers": 20,
            "allowedBaseImages": ["*/node:*-alpine", "gcr.io/distroless/*"],
            "deniedBaseImages": ["*/debian:*"],
            "requireNonRootUser": True,
            "requireDigest": True,
            "requireCurrentBase": True,
            "platforms": ["linux/amd64", "linux/arm64/v8"],
            "vulnerabilities": {
                "maxCritical": 0,
                "maxHigh": 5,
                "maxMedium": 50,
                "ignoreUnfixed": True,
                "maxReportAge": "1d12h",
                "onMissingReport": "Deny",
            },
        },
        "knownBaseImages": ["docker.io/library/debian:bookworm", "docker.io/library/node:20-bookworm"],
        "slimmerBases": {
            "fromTags": True,
            "alternatives": [{"base": "*/node:20-bookworm", "candidates": ["gcr.io/distroless/nodejs20-debian12"]}],
        },
        "exemptions": [
            {
                "images": ["*/legacy/*"],
                "workloads": [{"namespace": "legacy-*", "kind": "Deployment", "name": "old-*"}],
                "reason": "migrating to distroless by Q3",
                "expires": "2027-01-01T00:00:00Z",
            },
            {"workloads": [{"name": "batch-*"}], "reason": "nightly batch, owned by data team"},
        ],
    },
}


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with the install's CRDs (and Trivy Operator's VulnerabilityReport CRD) established."""
    control_plane.apply(CRDS)
    control_plane.apply(TEST_CRDS)
    control_plane.wait_established()
    return control_plane


def _dry_run_apply(cluster: ControlPlane, manifest: dict[str, Any] | str | Path) -> subprocess.CompletedProcess[str]:
    """`kubectl apply --validate=strict --dry-run=server`: full validation and defaulting, nothing stored."""
    args = ["apply", "--validate=strict", "--dry-run=server", "-o", "json", "-f"]
    if isinstance(manifest, Path):
        return cluster.kubectl(*args, str(manifest), check=False)
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    return cluster.kubectl(*args, "-", input=text, check=False)


def _expectation(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith(EXPECT_PREFIX) and line[len(EXPECT_PREFIX) :].strip():
            return line[len(EXPECT_PREFIX) :].strip()
    raise AssertionError(f"{path.name} has no '{EXPECT_PREFIX}<part of the apiserver's error>' line")


def _invalid_policies() -> list[Path]:
    return sorted(INVALID_POLICIES.glob("*.yaml"))


def test_there_are_enough_invalid_policy_fixtures() -> None:
    fixtures = _invalid_policies()
    assert len(fixtures) >= 12
    for fixture in fixtures:
        _expectation(fixture)
        assert yaml.safe_load(fixture.read_text())["kind"] == "ImagePolicy", fixture.name


@pytest.mark.parametrize("fixture", _invalid_policies(), ids=lambda path: path.stem)
def test_invalid_policy_is_rejected_with_a_readable_message(cluster: ControlPlane, fixture: Path) -> None:
    result = _dry_run_apply(cluster, fixture)
    assert result.returncode != 0, f"the apiserver accepted {fixture.name}:\n{result.stdout}"
    assert _expectation(fixture) in result.stderr


def test_full_policy_is_accepted_and_stored_as_written(cluster: ControlPlane) -> None:
    result = _dry_run_apply(cluster, FULL_POLICY)
    assert result.returncode == 0, result.stderr
    # Equal, not merely accepted: a field missing from the schema would have been pruned silently.
    assert json.loads(result.stdout)["spec"] == FULL_POLICY["spec"]


def test_defaults_are_applied(cluster: ControlPlane) -> None:
    policy = {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": "crd-test-defaults"},
        "spec": {"rules": {"maxCompressedSize": "200Mi", "vulnerabilities": {"maxCritical": 0}}},
    }
    result = _dry_run_apply(cluster, policy)
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert spec["mode"] == "Audit"
    assert spec["onUnknown"] == "Allow"
    assert spec["rules"]["vulnerabilities"]["onMissingReport"] == "Allow"
    # platforms' default ([linux/amd64]) is applied by slimguard, not stored: an explicit list stays visible.
    assert "platforms" not in spec["rules"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("maxCompressedSize", 1),
        ("maxCompressedSize", "1.5Gi"),
        ("maxCompressedSize", "500M"),
        ("maxUncompressedSize", "1e9"),
        ("maxLayers", 1),
        ("platforms", ["linux/arm/v7", "windows/amd64", "linux/ppc64le"]),
        ("requireNonRootUser", True),
        ("deniedBaseImages", ["docker.io/library/debian:?ookworm*"]),
    ],
)
def test_edge_values_that_are_valid_are_accepted(cluster: ControlPlane, field: str, value: Any) -> None:
    policy = {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": "crd-test-edge"},
        "spec": {"rules": {field: value}},
    }
    result = _dry_run_apply(cluster, policy)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def stored_policy(cluster: ControlPlane) -> Iterator[str]:
    """A real (not dry-run) policy that matches no namespace, so a running operator would ignore it."""
    name = "crd-test-stored"
    policy = {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": name},
        "spec": {"match": {"namespaces": ["slimguard-crd-test-matches-nothing-*"]}, "rules": {"maxLayers": 30}},
        "status": {"matchedWorkloads": 99},
    }
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(policy))
    yield name
    cluster.kubectl("delete", "imagepolicy", name, "--ignore-not-found", "--wait=false")


def test_status_is_a_subresource_and_feeds_the_printer_columns(cluster: ControlPlane, stored_policy: str) -> None:
    stored = json.loads(cluster.kubectl("get", "imagepolicy", stored_policy, "-o", "json").stdout)
    assert "status" not in stored, "status written through the main resource: no status subresource"

    status = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Evaluating",
                "message": "policy is loaded and applied",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
        "matchedWorkloads": 12,
        "evaluated": 12,
        "compliant": 9,
        "noncompliant": 2,
        "errors": 1,
        "lastAuditTime": "2026-01-01T00:00:00Z",
        "worstOffenders": [
            {"namespace": "team-a", "kind": "Deployment", "name": "api", "violations": 3, "message": "too big"}
        ],
    }
    cluster.kubectl(
        "patch", "imagepolicy", stored_policy, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    stored = json.loads(cluster.kubectl("get", "imagepolicy", stored_policy, "-o", "json").stdout)
    assert stored["status"] == status

    # ENFORCING and ERRORS are default columns: NONCOMPLIANT 0 must not read as all clear while workloads are in
    # error, or while nothing from a registry could be read. No Enforcing condition yet here: an empty cell.
    columns = ["NAME", "MODE", "ENFORCING", "MATCHED", "NONCOMPLIANT", "ERRORS", "AGE"]
    table = cluster.kubectl("get", "imagepolicies", stored_policy).stdout.splitlines()
    assert table[0].split() == columns
    assert table[1].split()[:5] == [stored_policy, "Audit", "12", "2", "1"]
    # -o wide adds the platforms the last verdicts judged (status.judgedPlatforms, none yet here: an empty cell).
    wide = cluster.kubectl("get", "imagepolicies", stored_policy, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [*columns[:-1], "PLATFORMS", "AGE"]
    assert wide[1].split()[4] == "1"
    judged = json.dumps({"status": {"judgedPlatforms": ["linux/amd64", "linux/arm64/v8"]}})
    cluster.kubectl("patch", "imagepolicy", stored_policy, "--subresource=status", "--type=merge", "-p", judged)
    wide = cluster.kubectl("get", "imagepolicies", stored_policy, "-o", "wide").stdout.splitlines()
    assert wide[1].split()[5] == '["linux/amd64","linux/arm64/v8"]'
    enforcing = {
        "type": "Enforcing",
        "status": "False",
        "reason": "FactsUnavailable",
        "message": "nothing from registry 10.0.0.5:5000 is enforced: ...",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    conditions = json.dumps({"status": {"conditions": [*status["conditions"], enforcing]}})
    cluster.kubectl("patch", "imagepolicy", stored_policy, "--subresource=status", "--type=merge", "-p", conditions)
    table = cluster.kubectl("get", "imagepolicies", stored_policy).stdout.splitlines()
    assert table[1].split()[:6] == [stored_policy, "Audit", "False", "12", "2", "1"]


def test_an_update_to_a_value_the_model_cannot_hold_is_refused_and_the_stored_generation_stays(
    cluster: ControlPlane, stored_policy: str
) -> None:
    """The apiserver is the first gate: such an update never reaches slimguard, so what applies stays put."""
    before = json.loads(cluster.kubectl("get", "imagepolicy", stored_policy, "-o", "json").stdout)
    for rules, expected in (
        (
            {"vulnerabilities": {"maxCritical": 0, "maxReportAge": "99999999999999999999d"}},
            "maxReportAge must be at most 36500d (100 years)",
        ),
        ({"maxCompressedSize": "1e999999999"}, "maxCompressedSize must be a Kubernetes quantity"),
        ({"maxUncompressedSize": "9Ei"}, "maxUncompressedSize must be at most 8E"),
    ):
        result = cluster.kubectl(
            "patch", "imagepolicy", stored_policy, "--type=merge", "-p", json.dumps({"spec": {"rules": rules}}),
            check=False,
        )  # fmt: skip
        assert result.returncode != 0, f"the apiserver accepted {rules}"
        assert expected in result.stderr
    after = json.loads(cluster.kubectl("get", "imagepolicy", stored_policy, "-o", "json").stdout)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]


def test_status_is_validated_too(cluster: ControlPlane, stored_policy: str) -> None:
    result = cluster.kubectl(
        "patch", "imagepolicy", stored_policy, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"worstOffenders": [{"name": f"w{i}"} for i in range(11)]}}),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Too many: 11: must have at most 10 items" in result.stderr


def test_names_short_names_and_category(cluster: ControlPlane, stored_policy: str) -> None:
    for resource in ("imagepolicies", "imagepolicy", "imgpol", "imagepolicies.slimguard.dev", "slimguard"):
        listing = cluster.kubectl("get", resource, "-o", "name").stdout
        assert f"imagepolicy.slimguard.dev/{stored_policy}" in listing, resource
    # Why the design's second short name "ip" is not declared: the built-in IPAddress owns it, and wins.
    builtin = cluster.kubectl("api-resources", "--api-group=networking.k8s.io").stdout.splitlines()
    assert any(line.split()[:2] == ["ipaddresses", "ip"] for line in builtin)
    crd = json.loads(cluster.kubectl("get", IMAGEPOLICY_CRD, "-o", "json").stdout)
    assert crd["spec"]["scope"] == "Cluster"


def test_kubectl_explain_shows_field_descriptions(cluster: ControlPlane) -> None:
    rules = " ".join(cluster.kubectl("explain", "imagepolicy.spec.rules").stdout.split())  # unwrap lines
    assert "At least one rule must be set" in rules
    for field in ("maxCompressedSize", "allowedBaseImages", "platforms", "vulnerabilities"):
        assert field in rules
    size = " ".join(cluster.kubectl("explain", "imagepolicy.spec.rules.maxCompressedSize").stdout.split())
    assert "A Kubernetes quantity, e.g. 200Mi" in size
    exemptions = cluster.kubectl("explain", "imagepolicy.spec.exemptions").stdout
    assert any(line.split() == ["reason", "<string>", "-required-"] for line in exemptions.splitlines())


def test_shipped_policies_are_valid(cluster: ControlPlane) -> None:
    policies = sorted(POLICIES.glob("*.yaml"))
    assert policies, f"no policies in {POLICIES}"
    for path in policies:
        result = _dry_run_apply(cluster, path)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


@pytest.mark.parametrize("owner", ["api-5d4f8b7c9", "a" * 59 + "-5d4f8b7c9"], ids=["short-name", "long-name"])
def test_the_real_vulnerability_report_crd_takes_our_reports_and_refuses_what_trivy_never_writes(
    cluster: ControlPlane, owner: str
) -> None:
    """Trivy Operator's own CRD (tests/e2e/crds/) stores the test bed's reports unchanged, and refuses
    reports missing what the real one requires, so no e2e test can rest on a report Trivy could not write."""
    cluster.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: crd-test-reports}\n")
    report = vulnerability_report(
        namespace="crd-test-reports",
        kind="ReplicaSet",
        name=owner,
        container="api",
        image="127.0.0.1:5000/team/api:1.2.3",
        digest="sha256:" + "0" * 64,
        updated=datetime(2026, 1, 1, tzinfo=UTC),
        vulnerabilities=[vulnerability("CVE-2024-0001", "CRITICAL", fixed="3.0.15-1~deb12u1")],
    )
    result = _dry_run_apply(cluster, report)
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)
    assert stored["report"] == report["report"]
    assert stored["metadata"]["labels"] == report["metadata"]["labels"]

    without_os = copy.deepcopy(report)
    del without_os["report"]["os"]
    result = _dry_run_apply(cluster, without_os)
    assert result.returncode != 0, "the CRD accepted a report without report.os"
    assert "report.os: Required value" in result.stderr

    for required in ("publishedDate", "lastModifiedDate"):
        undated = copy.deepcopy(report)
        del undated["report"]["vulnerabilities"][0][required]
        result = _dry_run_apply(cluster, undated)
        assert result.returncode != 0, f"the CRD accepted a vulnerability without {required}"
        assert f"report.vulnerabilities[0].{required}: Required value" in result.stderr

    report["report"]["vulnerabilities"][0]["severity"] = "SEVERE"
    result = _dry_run_apply(cluster, report)
    assert result.returncode != 0
    assert 'Unsupported value: "SEVERE"' in result.stderr
