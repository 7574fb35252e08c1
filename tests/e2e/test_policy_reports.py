"""PolicyReports end to end: the upstream CRDs (Kyverno 1.19's wgpolicyk8s.io, OpenReports) on the real
apiserver accept what slimguard writes; one result per workload x policy x rule; no write while the verdict
holds; the report goes with its workload (the garbage collector, by its ownerReference).

The operator runs under a ServiceAccount token bound to the install's own ClusterRole (deploy/).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cluster import apply, deployment, get, image_policy, namespace, wait_for, wait_for_status
from prometheus_client import REGISTRY

from slimguard.controller.policy_reports import PolicyReports
from slimguard.core.model.workload import WorkloadKey
from slimguard.core.reports import policy_report as pr
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.policy_reports import PolicyReportWriter
from slimguard_testbed import ControlPlane
from slimguard_testbed.operator_runner import InProcessOperator

CRDS = Path(__file__).parent / "crds"
NS = "policy-reports"


def report_of(plane: ControlPlane, ns: str, name: str, plural: str = "policyreports.wgpolicyk8s.io") -> Any:
    uid = (get(plane, "deployment", name, ns) or {})["metadata"]["uid"]
    return get(plane, plural, pr.report_name(uid), ns)


def results_by_rule(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["policy"], r["rule"]): r for r in report["results"]}


def evaluations() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "slimguard_evaluations"
        for sample in metric.samples
        if sample.name == "slimguard_evaluations_total"
    )


@pytest.fixture(scope="module")
def reported(control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any) -> Iterator[None]:
    """A fat and a slim Deployment under an Audit size policy and a Warn layers policy."""
    apply(
        control_plane,
        namespace(NS),
        deployment("fat", NS, fixture_images.fat_app.ref),
        deployment("slim", NS, fixture_images.slim_app.ref),
        image_policy(
            "reports-size",
            {"maxCompressedSize": "200Mi", "requireNonRootUser": True, "platforms": ["linux/amd64"]},
            namespaces=[NS],
            mode="Audit",
        ),
        image_policy("reports-layers", {"maxLayers": 1}, namespaces=[NS], mode="Warn"),
    )
    wait_for_status(control_plane, "deployment", "fat", NS, "noncompliant")
    yield
    control_plane.kubectl("delete", "imagepolicy", "reports-size", "reports-layers", "--ignore-not-found")


@pytest.mark.usefixtures("reported")
def test_each_workload_gets_one_report_with_one_result_per_policy_and_rule(control_plane: ControlPlane) -> None:
    fat = wait_for("the fat Deployment's report", lambda: report_of(control_plane, NS, "fat"))
    uid = get(control_plane, "deployment", "fat", NS)["metadata"]["uid"]  # type: ignore[index]
    assert fat["scope"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "fat", "uid": uid}
    assert fat["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fat", "uid": uid}
    ]
    results = results_by_rule(fat)
    assert len(fat["results"]) == len(results) == 4
    assert {key: r["result"] for key, r in results.items()} == {
        ("reports-layers", "maxLayers"): "warn",
        ("reports-size", "maxCompressedSize"): "fail",
        ("reports-size", "platforms"): "pass",
        ("reports-size", "requireNonRootUser"): "fail",
    }
    assert {r["source"] for r in fat["results"]} == {"slimguard"}
    size = results["reports-size", "maxCompressedSize"]
    assert size["message"].startswith('container "api": image ')
    assert size["properties"]["limit"] == "200 MiB"
    assert set(size["timestamp"]) == {"seconds", "nanos"}
    assert fat["summary"] == {"pass": 1, "fail": 2, "warn": 1, "error": 0, "skip": 0}

    slim = wait_for("the slim Deployment's report", lambda: report_of(control_plane, NS, "slim"))
    assert {key: r["result"] for key, r in results_by_rule(slim).items()} == {
        ("reports-layers", "maxLayers"): "warn",
        ("reports-size", "maxCompressedSize"): "pass",
        ("reports-size", "platforms"): "pass",
        ("reports-size", "requireNonRootUser"): "pass",
    }
    header, row = control_plane.kubectl("get", "polr", "-n", NS, pr.report_name(uid)).stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "NAME", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "AGE"]
    assert row.split()[:8] == [pr.report_name(uid), "Deployment", "fat", "1", "2", "1", "0", "0"]


@pytest.mark.usefixtures("reported")
def test_an_unchanged_verdict_writes_nothing_and_a_changed_one_rewrites_the_results(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    before = wait_for("the fat Deployment's report", lambda: report_of(control_plane, NS, "fat"))
    counted = evaluations()
    # A new label is a new input: the workload is evaluated again, to the same verdict.
    control_plane.kubectl("label", "deployment", "fat", "-n", NS, "team=shop")
    key = WorkloadKey("Deployment", NS, "fat")

    def re_evaluated() -> bool:
        record = operator.controller.workloads.get(key)
        seen = record is not None and record.workload.labels.get("team") == "shop"
        return seen and operator.controller.idle and evaluations() > counted

    wait_for("the relabelled Deployment to be evaluated again", re_evaluated)
    after = report_of(control_plane, NS, "fat")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    changed_at = int(time.time())
    control_plane.kubectl("set", "image", "deployment/fat", "-n", NS, f"api={fixture_images.slim_app.ref}")

    def rewritten() -> Any:
        found = report_of(control_plane, NS, "fat")
        return found if found["summary"]["fail"] == 0 else None

    changed = wait_for("the report to say the image is slim now", rewritten)
    assert changed["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    old, new = results_by_rule(before), results_by_rule(changed)
    assert new["reports-size", "maxCompressedSize"]["result"] == "pass"
    # A result that changed is stamped anew; one that did not keeps its time.
    assert new["reports-size", "platforms"]["timestamp"] == old["reports-size", "platforms"]["timestamp"]
    assert new["reports-size", "maxCompressedSize"]["timestamp"]["seconds"] >= changed_at
    assert len(changed["results"]) == 4


@pytest.mark.usefixtures("reported")
def test_a_restarted_controller_reads_its_reports_back_and_rewrites_none_of_them(
    control_plane: ControlPlane, operator: InProcessOperator, operator_kubeconfig: str
) -> None:
    """What the apiserver stored is exactly what slimguard wrote: the upstream schema pruned nothing."""
    wait_for("the slim Deployment's report", lambda: report_of(control_plane, NS, "slim"))
    key = WorkloadKey("Deployment", NS, "slim")
    record = operator.controller.workloads[key]
    verdict = operator.controller.verdicts[key]
    policies = tuple(p for p in operator.controller.view.active_policies if p.name in verdict.policies)
    before = report_of(control_plane, NS, "slim")

    async def restart_and_update() -> int:
        kube = KubeGateway(load_api_client(operator_kubeconfig))
        fresh = PolicyReports(PolicyReportWriter(kube, pr.WGPOLICY))
        assert await fresh.start()
        writes = 0
        original = fresh.writer.write

        async def counting(body: dict[str, Any], *, exists: bool) -> None:
            nonlocal writes
            writes += 1
            await original(body, exists=exists)

        fresh.writer.write = counting  # type: ignore[method-assign]
        await fresh.update(record.workload, record.uid, verdict, policies)
        return writes

    assert asyncio.run(restart_and_update()) == 0
    assert report_of(control_plane, NS, "slim")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


@pytest.mark.usefixtures("reported")
def test_a_deleted_workload_takes_its_report_with_it(control_plane: ControlPlane) -> None:
    apply(control_plane, deployment("short-lived", NS, "127.0.0.1:1/shop/api:1.0"))
    report = wait_for("the short-lived Deployment's report", lambda: report_of(control_plane, NS, "short-lived"))
    assert {r["result"] for r in report["results"]} == {"error"}  # its registry is down
    assert {r["properties"]["reason"] for r in report["results"]} == {"RegistryUnreachable"}
    name = report["metadata"]["name"]
    control_plane.kubectl("delete", "deployment", "short-lived", "-n", NS)
    wait_for("the report to be collected", lambda: get(control_plane, "policyreports.wgpolicyk8s.io", name, NS) is None)


def test_a_policy_that_stops_applying_takes_its_results_and_the_last_one_the_report(
    control_plane: ControlPlane, operator: InProcessOperator
) -> None:
    ns = "policy-reports-scope"
    apply(
        control_plane,
        namespace(ns),
        deployment("api", ns, "127.0.0.1:1/shop/api:1.0"),
        image_policy("scope-digest", {"requireDigest": True}, namespaces=[ns]),
        image_policy("scope-layers", {"maxLayers": 10}, namespaces=[ns]),
    )

    def policies_reported(*names: str) -> Any:
        found = report_of(control_plane, ns, "api")
        return found if found and sorted({r["policy"] for r in found["results"]}) == list(names) else None

    both = wait_for("both policies' results", lambda: policies_reported("scope-digest", "scope-layers"))
    assert results_by_rule(both)["scope-digest", "requireDigest"]["result"] == "fail"  # decided without the registry
    control_plane.kubectl("delete", "imagepolicy", "scope-layers")
    wait_for("the deleted policy's results to go", lambda: policies_reported("scope-digest"))
    control_plane.kubectl("delete", "imagepolicy", "scope-digest")
    wait_for("the report to go", lambda: report_of(control_plane, ns, "api") is None)
    control_plane.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.mark.usefixtures("reported")
def test_without_the_report_crd_the_controller_writes_nothing_and_keeps_going(
    control_plane: ControlPlane, operator: InProcessOperator, operator_kubeconfig: str
) -> None:
    missing = pr.ReportApi("reports.example.com", "v1", "Report", "reports", report_level_source=False)
    key = WorkloadKey("Deployment", NS, "slim")
    wait_for("the slim Deployment's verdict", lambda: key in operator.controller.verdicts)
    record, verdict = operator.controller.workloads[key], operator.controller.verdicts[key]

    async def without_crd() -> tuple[bool, int]:
        reports = PolicyReports(PolicyReportWriter(KubeGateway(load_api_client(operator_kubeconfig)), missing))
        started = await reports.start()
        await reports.update(record.workload, record.uid, verdict, ())  # waits for the CRD: no call, no error
        return started, len(reports._written)

    assert asyncio.run(without_crd()) == (False, 0)


def test_the_openreports_crd_accepts_the_same_report_and_it_goes_with_its_workload(
    control_plane: ControlPlane, operator_kubeconfig: str
) -> None:
    """Kyverno 1.19 with --openreportsEnabled, and Policy Reporter, read openreports.io/v1alpha1 Reports."""
    for name in ("openreports.io_reports.yaml", "openreports.io_clusterreports.yaml"):
        control_plane.kubectl("apply", "--server-side", "-f", str(CRDS / name))
    control_plane.wait_established("reports.openreports.io", "clusterreports.openreports.io")
    ns = "policy-reports-open"
    apply(control_plane, namespace(ns), deployment("api", ns, "127.0.0.1:1/shop/api:1.0"))
    uid = get(control_plane, "deployment", "api", ns)["metadata"]["uid"]  # type: ignore[index]
    resource = pr.ResourceRef("apps/v1", "Deployment", ns, "api", uid)
    results = [
        {
            "source": pr.SOURCE,
            "policy": "slim",
            "rule": rule,
            "result": result,
            "message": f"{rule}: {result}",
            "scored": True,
            "properties": {"mode": "Enforce"},
        }
        for rule, result in (("maxCompressedSize", "fail"), ("maxLayers", "pass"), ("vulnerabilities", "error"))
    ]
    body = pr.report(api=pr.OPENREPORTS, resource=resource, results=results, previous=None, now=datetime.now(UTC))

    async def write() -> None:
        writer = PolicyReportWriter(KubeGateway(load_api_client(operator_kubeconfig)), pr.OPENREPORTS)
        await writer.write(body, exists=False)

    asyncio.run(write())
    stored = report_of(control_plane, ns, "api", "reports.openreports.io")
    assert pr.content_of(stored) == pr.content_of(json.loads(json.dumps(body)))
    assert stored["source"] == "slimguard"
    control_plane.kubectl("delete", "deployment", "api", "-n", ns)
    wait_for(
        "the Report to be collected",
        lambda: get(control_plane, "reports.openreports.io", pr.report_name(uid), ns) is None,
    )
    control_plane.kubectl("delete", "namespace", ns, "--wait=false")
