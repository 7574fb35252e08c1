"""Reports at scale (issue 24), against a real apiserver: VulnerabilityReports written through Trivy Operator's own
CRD are listed in pages and followed by watch, each kept as the record evaluation reads; none is listed while no
policy reads them, and a vulnerability rule added while a component runs starts their watch and decides (the
webhook's admission, the controller's verdict), a replica started meanwhile serving only once they are listed.
ImageReports are watched as metadata, and one is read by name when its digest is first reviewed.

A control plane of this module's own audits every GET, LIST and WATCH of both kinds, so what each component asked
for is counted from the apiserver's audit log, not from slimguard's own word.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import WEBHOOK_TEMPLATE, apply, deployment, image_policy, namespace, pod, wait_for, wait_for_status

from slimguard.controller.settings import ControllerSettings
from slimguard.core.facts.image_facts import ImageFacts, Layer, PlatformImage
from slimguard.core.facts.image_report import report_body
from slimguard.core.facts.vulnerabilities import SeverityCounts, VulnerabilityReport
from slimguard.core.model.platform import Platform
from slimguard.engine.report_feed import VulnerabilityReportFeed
from slimguard.engine.view import ClusterView
from slimguard.kube.informer import KindWatch
from slimguard.kube.login import connection_info
from slimguard.registry.guard import AddressPolicy
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.controlplane import AuditedRead
from slimguard_testbed.images import FixtureImage, push_image
from slimguard_testbed.install import NAMESPACE, install_controller_rbac, install_rbac
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.trivy import realistic_vulnerabilities, vulnerability, vulnerability_report
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kustomize" / "base"
TRIVY_CRD = Path(__file__).parent / "crds" / "aquasecurity.github.io_vulnerabilityreports.yaml"
VULNS = "vulnerabilityreports.aquasecurity.github.io"
IMAGE_REPORTS = "imagereports.slimguard.dev"
WEBHOOK_USER = f"system:serviceaccount:{NAMESPACE}:slimguard-webhook"
CONTROLLER_USER = f"system:serviceaccount:{NAMESPACE}:slimguard-controller"
DENIED = 'admission webhook "images.slimguard.dev" denied the request'
SCANNED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[ControlPlane]:
    with ControlPlane(
        workdir=tmp_path_factory.mktemp("reports-plane"), ca=testbed_ca, audit_reads=(VULNS, IMAGE_REPORTS)
    ) as own:
        own.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        own.kubectl("apply", "--server-side", "-f", str(TRIVY_CRD))
        own.wait_established("imagepolicies.slimguard.dev", "imagereports.slimguard.dev", VULNS)
        yield own


def trivy_report(ns: str, owner: str, *, findings: int = 25, digest: str | None = None, criticals: int = 0) -> Any:
    """The report Trivy Operator files for container "api" of ReplicaSet ``owner``: a realistic list of findings,
    and ``criticals`` more of severity CRITICAL."""
    found = realistic_vulnerabilities(findings, seed=f"{ns}/{owner}")
    found += [vulnerability(f"CVE-2026-{9000 + n}", "CRITICAL", fixed="9.9") for n in range(criticals)]
    return vulnerability_report(
        namespace=ns,
        kind="ReplicaSet",
        name=owner,
        container="api",
        image=f"registry.example/{ns}/{owner}:1.0",
        digest=digest or "sha256:" + hashlib.sha256(f"{ns}/{owner}".encode()).hexdigest(),
        updated=SCANNED,
        vulnerabilities=found,
    )


def lists(reads: list[AuditedRead]) -> list[AuditedRead]:
    return [read for read in reads if read.verb == "list"]


def watches(reads: list[AuditedRead]) -> list[AuditedRead]:
    return [read for read in reads if read.verb == "watch" and read.stage == "ResponseStarted"]


def scans_policy(name: str, namespaces: list[str]) -> dict[str, Any]:
    return image_policy(name, {"vulnerabilities": {"maxCritical": 0}}, namespaces=namespaces, mode="Enforce")


async def in_thread(call: Any) -> Any:
    return await asyncio.to_thread(call)


async def until(what: str, probe: Any) -> None:
    """A deadline for waiting, never a performance claim."""
    deadline = asyncio.get_running_loop().time() + 60
    while not probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_reports_written_through_the_crd_are_listed_in_pages_kept_as_records_and_followed_by_watch(
    plane: ControlPlane,
) -> None:
    ns = "reports-paged"
    bodies = [trivy_report(ns, f"app-{n}-5d9c8b7f4", criticals=n % 3) for n in range(7)]
    await in_thread(lambda: apply(plane, namespace(ns), *bodies))
    view = ClusterView()
    # As the admin: the components' own ServiceAccounts are the other tests', whose reads they count.
    credentials = partial(connection_info, str(plane.admin_kubeconfig))
    feed = VulnerabilityReportFeed(view, credentials, page_size=3, component="webhook")
    try:
        view.observe_policy(
            {"metadata": {"name": "scans", "generation": 1}, "spec": scans_policy("scans", [ns])["spec"]}
        )
        feed.follow_policies()
        await asyncio.wait_for(feed.wait_listed(), timeout=60)
        assert not view.reports_pending
        for body in bodies:
            record = view.reports[(ns, body["metadata"]["name"])]
            assert isinstance(record, VulnerabilityReport)
            summary = body["report"]["summary"]
            assert record.summary == SeverityCounts(
                summary["criticalCount"], summary["highCount"], summary["mediumCount"], summary["lowCount"]
            )
            assert record.digest == body["report"]["artifact"]["digest"]
        watch = feed.watch
        assert watch is not None
        informer = watch.informer
        assert informer.pages >= 3, "seven reports, in pages of 3"

        paged = [read for read in lists(plane.audited_reads(VULNS)) if read.query.get("limit") == "3"]
        assert len(paged) == informer.pages, "the apiserver saw each page the informer counted"
        assert sum("continue" in read.query for read in paged) == len(paged) - 1
        await until("the WATCH that follows the LIST", lambda: watches(plane.audited_reads(VULNS)))

        # A rescan changes a report in place; a deleted workload's report goes: both by watch, no LIST again.
        rescanned = trivy_report(ns, "app-1-5d9c8b7f4", criticals=4)
        key = (ns, "replicaset-app-1-5d9c8b7f4-api")
        rescan = rescanned["report"]["summary"]
        counts = SeverityCounts(rescan["criticalCount"], rescan["highCount"], rescan["mediumCount"], rescan["lowCount"])
        assert view.reports[key].summary != counts
        await in_thread(lambda: apply(plane, rescanned))
        await until("the rescan by watch", lambda: view.reports[key].summary == counts)
        await in_thread(lambda: plane.kubectl("delete", "vulnerabilityreport", "-n", ns, key[1]))
        await until("the deletion by watch", lambda: key not in view.reports)
        assert informer.lists == 1

        view.observe_policy({"metadata": {"name": "scans"}}, deleted=True)
        feed.follow_policies()
        assert view.reports == {}, "no policy reads them: no report is held"
        assert feed.watch is None
    finally:
        await feed.stop()
        await in_thread(lambda: plane.kubectl("delete", "namespace", ns, "--wait=false"))


async def test_a_report_kind_whose_crd_is_not_installed_counts_as_listed_and_empty(plane: ControlPlane) -> None:
    """Trivy Operator not installed: a policy's vulnerability rule finds no report (onMissingReport decides), rather
    than waiting for a LIST that cannot happen."""
    seen: list[Any] = []
    absent = KindWatch(
        "ConfigAuditReport",
        ("aquasecurity.github.io", "v1alpha1", "configauditreports"),
        partial(connection_info, str(plane.admin_kubeconfig)),
        lambda kind, body, deleted: seen.append(body),
    )
    absent.start()
    try:
        await asyncio.wait_for(absent.wait_listed(), timeout=30)
        assert absent.running, "it asks again later, in case the CRD is installed"
        assert seen == []
    finally:
        await absent.stop()
    assert not absent.running


@pytest.fixture(scope="module")
def image(registry: Registry) -> FixtureImage:
    """The webhook test's image (a report speaks for its digest in every namespace: no other test uses it)."""
    return push_image(registry.endpoint, "shop/report-watches/api", "1.0", [{"/app/api.txt": b"report watches"}])


def dry_run(plane: ControlPlane, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(document), check=False)


def test_the_webhook_lists_no_report_until_a_rule_reads_them_then_pages_them_and_decides_admission(
    plane: ControlPlane, registry: Registry, image: FixtureImage, testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    ns = "reports-admission"
    apply(
        plane,
        namespace(ns),
        trivy_report(ns, "scanned-5d9c8b7f4", findings=0, digest=image.digest, criticals=2),
        *(trivy_report(ns, f"other-{n}-5d9c8b7f4") for n in range(4)),
        image_policy("sizes-only", {"maxLayers": 100}, namespaces=[ns], mode="Enforce"),
    )
    replicas = WebhookReplicas(
        kubeconfig=str(install_rbac(plane, BASE, "webhook")),
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=1,
        timeout_seconds=10,
        extra_args=("--report-page-size", "2"),
    )
    app = deployment("app", ns, image.ref)
    with replicas:
        register(
            plane,
            webhook_configuration(WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name="reports"),
        )
        try:
            # The webhook decides with the size policy (an image it cannot read is admitted with its warning) ...
            probe = pod("probe", ns, "127.0.0.1:1/never/pushed:1")
            wait_for("the webhook to see the policy", lambda: "slimguard" in dry_run(plane, probe).stderr, timeout=60)
            assert dry_run(plane, app).returncode == 0
            # ... and no policy reads VulnerabilityReports: it has not asked for one.
            assert plane.audited_reads(VULNS, user=WEBHOOK_USER) == []

            apply(plane, scans_policy("no-criticals", [ns]))
            denied = wait_for(
                "the rule added at run time to deny",
                lambda: (answer := dry_run(plane, app)).returncode != 0 and DENIED in answer.stderr and answer,
                timeout=60,
            )
            assert "has 2 critical vulnerabilities" in denied.stderr
            reads = plane.audited_reads(VULNS, user=WEBHOOK_USER)
            pages = lists(reads)
            assert {read.query.get("limit") for read in pages} == {"2"}
            assert len(pages) >= 3, "five reports in pages of 2"
            assert sum("continue" in read.query for read in pages) == len(pages) - 1, "one LIST, in pages"
            assert len(watches(reads)) == 1
            assert watches(reads)[0].query.get("allowWatchBookmarks") == "true"

            # A replica started while a policy reads the reports serves only once it has listed them: its very
            # first review is decided by them (not left to onUnknown, which would admit).
            assert replicas.terminate(0) == 0
            replicas.start_replica()
            again = dry_run(plane, app)
            assert again.returncode != 0
            assert DENIED in again.stderr

            # The rule gone, the watch goes with it: the apiserver sees the watch end, and no LIST follows.
            def ended() -> int:
                reads = plane.audited_reads(VULNS, user=WEBHOOK_USER)
                return sum(read.verb == "watch" and read.stage == "ResponseComplete" for read in reads)

            before, ended_before = len(lists(plane.audited_reads(VULNS, user=WEBHOOK_USER))), ended()
            plane.kubectl("delete", "imagepolicy", "no-criticals")
            wait_for("the rule's removal to admit", lambda: dry_run(plane, app).returncode == 0, timeout=60)
            wait_for("the watch to end", lambda: ended() > ended_before, timeout=30)
            assert len(lists(plane.audited_reads(VULNS, user=WEBHOOK_USER))) == before
        finally:
            plane.kubectl("delete", "validatingwebhookconfiguration", "reports", "--ignore-not-found")
            plane.kubectl("delete", "imagepolicy", "sizes-only", "no-criticals", "--ignore-not-found")


def test_the_controller_lists_no_report_until_a_rule_reads_them_then_judges_by_them(
    plane: ControlPlane, registry: Registry
) -> None:
    ns = "reports-audit"
    # An image of its own: a report speaks for its digest in every namespace, so tests must not share one.
    image = push_image(registry.endpoint, "shop/report-watches/audited", "1.0", [{"/app/audit.txt": b"audited"}])
    apply(
        plane,
        namespace(ns),
        trivy_report(ns, "scanned-6f7d8c9b5", findings=0, digest=image.digest, criticals=1),
        image_policy("sizes-audit", {"maxLayers": 100}, namespaces=[ns]),
        deployment("app", ns, image.ref, replicas=0),
    )
    settings = ControllerSettings(
        kubeconfig=str(install_controller_rbac(plane, BASE)),
        registry=RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), ca_files=(str(registry.ca_file),)),
        policy_reports=None,
        report_page_size=2,
    )
    with InProcessOperator(settings):
        try:
            wait_for_status(plane, "deployment", "app", ns, "compliant")
            assert plane.audited_reads(VULNS, user=CONTROLLER_USER) == []

            apply(plane, image_policy("scans-audit", {"vulnerabilities": {"maxCritical": 0}}, namespaces=[ns]))
            wait_for_status(plane, "deployment", "app", ns, "noncompliant")
            pages = lists(plane.audited_reads(VULNS, user=CONTROLLER_USER))
            assert pages, "the rule started the watch"
            assert {read.query.get("limit") for read in pages} == {"2"}
        finally:
            plane.kubectl("delete", "imagepolicy", "sizes-audit", "scans-audit", "--ignore-not-found")


def many_layers(image: FixtureImage, count: int) -> dict[str, Any]:
    """An ImageReport for ``image``'s digest saying it has ``count`` layers (the registry says 1): a decision that
    counts them was made from the report."""
    layers = tuple(
        Layer(digest="sha256:" + hashlib.sha256(f"layer {n}".encode()).hexdigest(), size=1024, media_type=LAYER)
        for n in range(count)
    )
    platform = PlatformImage(
        platform=Platform("linux", "amd64"),
        manifest_digest=image.digest,
        config_digest="sha256:" + hashlib.sha256(b"config").hexdigest(),
        config_size=512,
        layers=layers,
    )
    return report_body(ImageFacts(digest=image.digest, media_type=image.media_type, platforms=(platform,)), [image.ref])


def test_the_webhook_watches_image_reports_as_metadata_and_reads_one_by_name_when_its_digest_is_reviewed(
    plane: ControlPlane, registry: Registry, testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    ns = "reports-held"
    image = push_image(registry.endpoint, "shop/report-watches/layered", "1.0", [{"/app/one.txt": b"one layer"}])
    report = many_layers(image, 120)
    apply(plane, namespace(ns), report, image_policy("layers", {"maxLayers": 100}, namespaces=[ns], mode="Enforce"))
    name = report["metadata"]["name"]
    replicas = WebhookReplicas(
        kubeconfig=str(install_rbac(plane, BASE, "webhook")),
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=1,
        timeout_seconds=10,
    )
    app = deployment("layered", ns, image.pinned)
    earlier = len(plane.audited_reads(IMAGE_REPORTS, user=WEBHOOK_USER))  # other tests' replicas, same account
    with replicas:
        register(
            plane,
            webhook_configuration(WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name="held"),
        )
        try:
            probe = pod("probe", ns, "127.0.0.1:1/never/pushed:1")
            wait_for("the webhook to see the policy", lambda: "slimguard" in dry_run(plane, probe).stderr, timeout=60)
            reads = plane.audited_reads(IMAGE_REPORTS, user=WEBHOOK_USER)[earlier:]
            assert [read.verb for read in reads if read.verb != "watch"] == ["list"], "listed (as metadata), no GET"

            denied = dry_run(plane, app)
            assert denied.returncode != 0
            assert DENIED in denied.stderr
            assert "has 120 layers" in denied.stderr, "decided from the report, which says so"
            again = dry_run(plane, deployment("layered-again", ns, image.pinned))
            assert "has 120 layers" in again.stderr
            gets = [
                read for read in plane.audited_reads(IMAGE_REPORTS, user=WEBHOOK_USER)[earlier:] if read.verb == "get"
            ]
            assert [read.uri.split("?")[0].rsplit("/", 1)[-1] for read in gets] == [name], "read once, then held"
        finally:
            plane.kubectl("delete", "validatingwebhookconfiguration", "held", "--ignore-not-found")
            plane.kubectl("delete", "imagepolicy", "layers", "--ignore-not-found")
