"""Reports at scale (issue 24): the memory of the controller and of a webhook replica, and the time to their first
decision after a restart, with thousands of Trivy Operator VulnerabilityReports and slimguard ImageReports.

Starts its own control plane and token-auth registry on 127.0.0.1, installs slimguard's CRDs and Trivy Operator's
VulnerabilityReport CRD (the v0.32.0 copy the e2e tests install, tests/e2e/crds/), and writes through them:

- N VulnerabilityReports as Trivy Operator v0.32 writes them (`slimguard_testbed.trivy`), across --namespaces, for
  ReplicaSets' containers, each with a realistic vulnerability list (--findings on average, ~40 KB for 100);
- N ImageReports, one per made-up digest, each a Debian-sized image's facts with its layers' contents (~40 KB);
- one small image pushed to the registry, a Deployment running it, and one more VulnerabilityReport, with
  criticals, for its digest;
- an Enforce ImagePolicy on the bench namespace: with --policy vulnerabilities (the default) `maxCritical: 0`, so
  the reports are read and decide; with --policy sizes a size rule only, so a cluster without a vulnerability rule
  is measured (the VulnerabilityReports are then not to be listed at all).

Then it runs `slimguard controller` (no leader election) and one `slimguard webhook` replica (registered with
failurePolicy Fail) as subprocesses under the install's own RBAC, twice each (a start, then a restart), and
measures for each start:

- the time from the process's start to its first decision: the controller's first evaluation
  (`slimguard_evaluations_total`), the webhook's first denial of a server-side dry-run create of a Deployment on the
  image (by the vulnerability rule, or the size rule with --policy sizes);
- its peak RSS (VmHWM) a few seconds (--settle) after that decision: the lists and the first decision included.

What runs is whatever `python -m slimguard.cli.main` imports under --python (default: this interpreter): to
measure another build, give another virtualenv's interpreter or set PYTHONPATH to another tree's `operator/`.
Targets are reported beside the measurements, never asserted: this is a benchmark, not a test.

    python -m bench.reports_scale --reports 50                # a quick look that it works
    python -m bench.reports_scale                             # 5,000 of each, 50 namespaces
    python -m bench.reports_scale --policy sizes --json /tmp/sizes.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common.apiserver import Apiserver
from bench.common.measure import counter_total, load_average, machine, memory_kib
from bench.common.processes import log, wait_serving, workdir
from bench.common.tables import met, table
from slimguard.core.facts.content import ContentFacts, FoundTool, PackageCount, PackageManager
from slimguard.core.facts.image_facts import ImageFacts, Layer, PlatformImage
from slimguard.core.facts.image_report import report_body
from slimguard.core.model.platform import Platform
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, TestbedError, free_port
from slimguard_testbed.images import FixtureImage, close_clients, push_image
from slimguard_testbed.install import install_controller_rbac, install_rbac
from slimguard_testbed.process import ManagedProcess
from slimguard_testbed.trivy import realistic_vulnerabilities, vulnerability, vulnerability_report
from slimguard_testbed.webhook import WebhookReplicas, webhook_configuration
from slimguard_testbed.workloads import deployment, image_policy, namespace

REPO = Path(__file__).resolve().parents[1]
TRIVY_CRD = REPO / "tests" / "e2e" / "crds" / "aquasecurity.github.io_vulnerabilityreports.yaml"
WEBHOOK_TEMPLATE = REPO / "deploy" / "kustomize" / "base" / "validatingwebhookconfiguration.yaml"
CONFIGURATIONS_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
VULNERABILITY_REPORTS = "/apis/aquasecurity.github.io/v1alpha1/namespaces/{namespace}/vulnerabilityreports"
IMAGE_REPORTS = "/apis/slimguard.dev/v1alpha1/imagereports"
BENCH_NAMESPACE = "reports-bench"
REPORT_NAMESPACE_PREFIX = "reports-"
POLICY = "bench-reports"
CONFIGURATION = "bench-reports"
EVALUATIONS = "slimguard_evaluations_total"
DENIED = 'admission webhook "images.slimguard.dev" denied the request'
# Targets to read the numbers against (issue 24): a pod limit of 512 MiB must hold 5,000 of each, with room.
TARGET_RSS_MB = 256.0
TARGET_FIRST_DECISION_SECONDS = 30.0


# --- what is written ---------------------------------------------------------------------------------------------


def report_namespaces(count: int) -> list[str]:
    return [f"{REPORT_NAMESPACE_PREFIX}{n:03d}" for n in range(count)]


def trivy_reports(
    count: int, namespaces: Sequence[str], findings: int, now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of ``count`` VulnerabilityReports for made-up ReplicaSets, ``findings`` on average each."""
    chooser = random.Random(f"reports-{count}")
    made = []
    for n in range(count):
        where = namespaces[n % len(namespaces)]
        app = f"app-{n:05d}"
        body = vulnerability_report(
            namespace=where,
            kind="ReplicaSet",
            name=f"{app}-{hashlib.sha256(app.encode()).hexdigest()[:10]}",
            container="app",
            image=f"registry.example/{where}/{app}:1.{n % 7}",
            digest="sha256:" + hashlib.sha256(f"image {n}".encode()).hexdigest(),
            updated=now - timedelta(hours=chooser.randint(1, 48)),
            vulnerabilities=realistic_vulnerabilities(max(0, int(chooser.gauss(findings, findings / 3))), seed=app),
            os_family="debian",
            os_name="12.5",
        )
        made.append((VULNERABILITY_REPORTS.format(namespace=where), body))
    return made


def image_report(n: int) -> dict[str, Any]:
    """An ImageReport of a made-up Debian-sized image: 9 layers with their instructions, 173 packages, ~1,000
    executables and the tools found, as the controller writes one after a content rule had the layers read."""
    seed = hashlib.sha256(f"image report {n}".encode()).hexdigest()
    layers = tuple(
        Layer(
            digest=f"sha256:{hashlib.sha256(f'{seed} layer {i}'.encode()).hexdigest()}",
            size=(i + 1) * 7_340_032,
            media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            uncompressed_size=(i + 1) * 19_922_944,
            created_by=f"/bin/sh -c apt-get update && apt-get install -y --no-install-recommends package-{i} # {n}",
        )
        for i in range(9)
    )
    content = ContentFacts(
        packages=PackageCount(173, (PackageManager.DPKG,), tuple(f"package-{p:03d}" for p in range(173))),
        tools=tuple(FoundTool("compilers", f"usr/bin/gcc-{v}", by_package=False, layer_index=3) for v in range(12)),
        executables=tuple((f"usr/bin/tool-{e:04d}", e % 9) for e in range(1_000)),
        efficiency=0.93,
        wasted_bytes=12_582_912,
        file_count=10_412,
    )
    platform = PlatformImage(
        platform=Platform("linux", "amd64"),
        manifest_digest=f"sha256:{hashlib.sha256(f'{seed} manifest'.encode()).hexdigest()}",
        config_digest=f"sha256:{hashlib.sha256(f'{seed} config'.encode()).hexdigest()}",
        config_size=7_023,
        layers=layers,
        user="1000",
        created=datetime(2026, 11, 1, tzinfo=UTC),
        content=content,
    )
    facts = ImageFacts(
        digest=f"sha256:{seed}", media_type="application/vnd.oci.image.manifest.v1+json", platforms=(platform,)
    )
    return report_body(facts, [f"registry.example/shop/app-{n:05d}:1.0"])


# --- the measurements --------------------------------------------------------------------------------------------


@dataclass
class Start:
    """One start of one component."""

    component: str
    first_decision_seconds: float = float("nan")
    peak_rss_mb: float = float("nan")
    rss_mb: float = float("nan")


@dataclass
class Results:
    reports: int
    image_reports: int
    namespaces: int
    findings: int
    policy: str
    report_bytes: int = 0
    image_report_bytes: int = 0
    setup_seconds: dict[str, float] = field(default_factory=dict)
    starts: list[Start] = field(default_factory=list)
    machine: str = ""
    load_average: str = ""


def run_controller(
    python: str, kubeconfig: Path, registry: Registry, log_file: Path, extra: Sequence[str]
) -> tuple[ManagedProcess, int]:
    port = free_port()
    argv = [
        python, "-m", "slimguard.cli.main", "controller", f"--kubeconfig={kubeconfig}", "--no-leader-elect",
        "--allow-loopback-registries", f"--ca-file={registry.ca_file}", f"--metrics-port={port}",
        "--metrics-address=127.0.0.1", "--policy-reports=none", *extra,
    ]  # fmt: skip
    process = ManagedProcess(log_file.stem, argv, log_file=log_file, cwd=log_file.parent)
    process.start()
    return process, port


def measure_controller(
    python: str, kubeconfig: Path, registry: Registry, work: Path, name: str, args: argparse.Namespace
) -> Start:
    """Start the controller, wait for its first evaluation, let it settle, read its memory, stop it."""
    started = time.monotonic()
    process, port = run_controller(python, kubeconfig, registry, work / f"{name}.log", args.extra_args)
    result = Start(name)
    try:

        def evaluated() -> bool:
            page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            return counter_total(page, EVALUATIONS) > 0

        wait_serving(process, evaluated, timeout=args.timeout, every=0.05, failure="the controller made no decision")
        result.first_decision_seconds = time.monotonic() - started
        time.sleep(args.settle)
        assert process.pid is not None
        memory = memory_kib(process.pid)
        result.rss_mb, result.peak_rss_mb = memory.get("VmRSS", 0) / 1024, memory.get("VmHWM", 0) / 1024
    finally:
        process.stop()
    log(f"{name}: first decision after {result.first_decision_seconds:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB")
    return result


def measure_webhook(
    replicas: WebhookReplicas, api: Apiserver, image: FixtureImage, name: str, args: argparse.Namespace
) -> Start:
    """Start one more webhook replica (the one before it stopped), time its first denial, read its memory."""
    probe = deployment("probe", BENCH_NAMESPACE, image.ref, replicas=0, container="app")
    started = time.monotonic()
    process = replicas.spawn()  # timed from the spawn: its lists and its readiness are part of what is measured
    result = Start(name)
    while True:
        process.check_alive()
        status, text, _ = api.create("Deployment", probe, dry_run=True)
        if status == 403 and DENIED in denial_message(text):
            break
        if time.monotonic() - started > args.timeout:
            raise TestbedError(
                f"{name} made no decision within {args.timeout:.0f} s (last answer: {status} {text[:300]}):\n"
                f"{process.tail()}"
            )
        time.sleep(0.05)
    result.first_decision_seconds = time.monotonic() - started
    time.sleep(args.settle)
    assert process.pid is not None
    memory = memory_kib(process.pid)
    result.rss_mb, result.peak_rss_mb = memory.get("VmRSS", 0) / 1024, memory.get("VmHWM", 0) / 1024
    process.stop()
    log(f"{name}: first decision after {result.first_decision_seconds:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB")
    return result


def denial_message(text: str) -> str:
    """The message of the apiserver's Status answer (its JSON escapes the quotes the webhook's name is in)."""
    try:
        status = json.loads(text)
    except ValueError:
        return text
    return str(status.get("message") or "") if isinstance(status, dict) else text


def run(args: argparse.Namespace) -> Results:
    results = Results(args.reports, args.image_reports, args.namespaces, args.findings, args.policy)
    results.machine = machine()
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(workdir("slimguard-reports-bench-", keep=args.keep))
        ca = CertificateAuthority("slimguard bench CA")

        started = time.monotonic()
        plane = stack.enter_context(ControlPlane(workdir=work / "control-plane", ca=ca))
        registry = stack.enter_context(
            Registry(storage_dir=work / "registry-storage", ca=ca, auth="token", workdir=work / "registry")
        )
        stack.callback(close_clients)
        api = Apiserver(plane)
        stack.callback(api.close)
        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.kubectl("apply", "--server-side", "-f", str(TRIVY_CRD))
        plane.wait_established(
            "imagepolicies.slimguard.dev", "imagereports.slimguard.dev", "vulnerabilityreports.aquasecurity.github.io"
        )
        results.setup_seconds["control plane, registry, CRDs"] = time.monotonic() - started
        log(f"control plane on {plane.server}, registry on {registry.host}")

        # The image every decision is about: 64 KiB of noise, so a size rule of 16 KiB denies it too.
        image = push_image(
            registry.endpoint, "shop/reports-bench", "1.0", [{"/app/data.bin": random.randbytes(64 << 10)}]
        )
        now = datetime.now(UTC)
        started = time.monotonic()
        namespaces = report_namespaces(args.namespaces)
        asyncio.run(
            api.create_many([("/api/v1/namespaces", namespace(name)) for name in [*namespaces, BENCH_NAMESPACE]])
        )
        reports = trivy_reports(args.reports, namespaces, args.findings, now)
        results.report_bytes = sum(len(json.dumps(body)) for _, body in reports)
        asyncio.run(api.create_many(reports, concurrency=8))
        del reports
        results.setup_seconds["VulnerabilityReports"] = time.monotonic() - started
        log(f"wrote {args.reports} VulnerabilityReports ({results.report_bytes / 1e6:.0f} MB of JSON)")

        started = time.monotonic()
        bodies = [(IMAGE_REPORTS, image_report(n)) for n in range(args.image_reports)]
        results.image_report_bytes = sum(len(json.dumps(body)) for _, body in bodies)
        asyncio.run(api.create_many(bodies, concurrency=8))
        del bodies
        results.setup_seconds["ImageReports"] = time.monotonic() - started
        log(f"wrote {args.image_reports} ImageReports ({results.image_report_bytes / 1e6:.0f} MB of JSON)")

        criticals = [vulnerability(f"CVE-2026-{n:04d}", "CRITICAL", fixed="9.9") for n in range(3)]
        scanned = vulnerability_report(
            namespace=BENCH_NAMESPACE, kind="ReplicaSet", name="scanned-5d9c8b7f4", container="app",
            image=image.ref, digest=image.digest, updated=now, vulnerabilities=criticals,
        )  # fmt: skip
        api.post(VULNERABILITY_REPORTS.format(namespace=BENCH_NAMESPACE), scanned)
        api.post(
            f"/apis/apps/v1/namespaces/{BENCH_NAMESPACE}/deployments",
            deployment("app", BENCH_NAMESPACE, image.ref, replicas=0, container="app"),
        )
        rules: dict[str, Any] = (
            {"vulnerabilities": {"maxCritical": 0}}
            if args.policy == "vulnerabilities"
            else {"maxCompressedSize": "16Ki"}
        )
        api.post(
            "/apis/slimguard.dev/v1alpha1/imagepolicies",
            image_policy(POLICY, rules, namespaces=[BENCH_NAMESPACE], mode="Enforce"),
        )

        base = REPO / "deploy" / "kustomize" / "base"
        controller_kubeconfig = install_controller_rbac(plane, base)
        results.load_average = load_average()
        for name in ("controller", "controller restarted"):
            results.starts.append(measure_controller(args.python, controller_kubeconfig, registry, work, name, args))

        replicas = WebhookReplicas(
            kubeconfig=str(install_rbac(plane, base, "webhook")),
            ca=ca,
            registry_ca_file=str(registry.ca_file),
            workdir=work,
            replicas=0,
            shutdown_delay=0.2,
            extra_args=tuple(args.extra_args),
            python=args.python,
        )
        stack.callback(replicas.stop)
        configuration = webhook_configuration(
            WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=ca.cert_pem, name=CONFIGURATION, failure_policy="Fail"
        )
        api.post(CONFIGURATIONS_PATH, configuration)
        for name in ("webhook", "webhook restarted"):
            results.starts.append(measure_webhook(replicas, api, image, name, args))
    return results


def report(results: Results) -> str:
    rows = [
        (
            start.component,
            f"{start.first_decision_seconds:.1f} s",
            met(start.first_decision_seconds < TARGET_FIRST_DECISION_SECONDS),
            f"{start.peak_rss_mb:.0f} MB (now {start.rss_mb:.0f} MB)",
            met(start.peak_rss_mb < TARGET_RSS_MB),
        )
        for start in results.starts
    ]
    header = (
        f"{results.reports} VulnerabilityReports ({results.report_bytes / 1e6:.0f} MB of JSON, ~{results.findings} "
        f"findings each) in {results.namespaces} namespaces, {results.image_reports} ImageReports "
        f"({results.image_report_bytes / 1e6:.0f} MB); policy: {results.policy}; {results.machine}; load average "
        f"{results.load_average} before the first start"
    )
    targets = (
        f"First decision (target < {TARGET_FIRST_DECISION_SECONDS:.0f} s)",
        "Met",
        f"Peak RSS, VmHWM (target < {TARGET_RSS_MB:.0f} MB)",
        "Met",
    )
    return header + "\n\n" + table(("Start", *targets), rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=5000, help="VulnerabilityReports to write")
    parser.add_argument("--image-reports", type=int, help="ImageReports to write (default: as many as --reports)")
    parser.add_argument("--namespaces", type=int, default=50, help="namespaces the VulnerabilityReports are in")
    parser.add_argument("--findings", type=int, default=100, help="findings per VulnerabilityReport, on average")
    parser.add_argument(
        "--policy",
        choices=("vulnerabilities", "sizes"),
        default="vulnerabilities",
        help="the ImagePolicy's rule: maxCritical (the reports are read) or a size limit (they need not be)",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter whose `slimguard` runs (another build: another venv)"
    )
    parser.add_argument(
        "--extra-args", default="", help="more flags for both components, e.g. '--report-page-size 500'"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the first decision before memory")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a first decision after this long")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    args.extra_args = args.extra_args.split()
    if args.image_reports is None:
        args.image_reports = args.reports
    if min(args.reports, args.image_reports, args.namespaces) < 1 or args.findings < 0:
        parser.error("--reports, --image-reports and --namespaces must be at least 1, --findings at least 0")
    # A run started in the background ignores SIGINT: SIGTERM stops it too, with every process cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = run(args)
    print(report(results))
    print(f"setup: {', '.join(f'{k} {v:.1f} s' for k, v in results.setup_seconds.items())}")
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
