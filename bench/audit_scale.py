"""Audit at scale: how fast, and at what cost, the controller puts a verdict on thousands of Deployments.

Starts its own control plane and token-auth registry on 127.0.0.1, pushes distinct small images (some on a
fat base, some on a busybox base, some from scratch), creates Deployments with `replicas: 0` across
namespaces, runs `slimguard controller` as a subprocess under the install's own ServiceAccount RBAC, creates
one ImagePolicy and measures:

- wall time from the policy's creation until every Deployment carries its verdict (`slimguard.dev/status`: the
  label, or the annotation of builds before the label, so `--controller-command` can measure either);
- registry requests, in total and per distinct image (the registry's own access log);
- apiserver writes per workload (the apiserver's `apiserver_request_total`), the controller-manager's
  ReplicaSet updates they cause, and those of an unchanged periodic re-audit;
- the controller's peak RSS and CPU seconds (from /proc);
- then a restart of the controller on that cluster: time to the first and the last re-verified workload
  (its `slimguard_evaluations_total`), registry requests and writes (none expected: nothing changed).

Targets are reported beside the measurements, never asserted: this is a benchmark, not a test.

    python -m bench.audit_scale                      # 2000 Deployments, 20 namespaces, 200 images
    python -m bench.audit_scale --quick              # = --deployments 200 --namespaces 4 --images 20
    python -m bench.audit_scale --deployments 10000 --namespaces 100 --images 1000 --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.audit_images import push_images
from bench.audit_probes import (
    NAMESPACE_PREFIX,
    CpuSnapshot,
    ProcessProbe,
    RequestCounts,
    StatusWatch,
    bench_metadata,
    carries_own_annotations,
    request_counts,
    verdict_of,
)
from bench.audit_report import Results, report, shown_seconds
from bench.common.apiserver import Apiserver
from bench.common.measure import counter_total
from bench.common.processes import log, profiled, workdir
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, TestbedError, free_port
from slimguard_testbed.images import FixtureImage, close_clients
from slimguard_testbed.install import install_controller_rbac
from slimguard_testbed.process import ManagedProcess
from slimguard_testbed.workloads import deployment, image_policy, namespace

REPO = Path(__file__).resolve().parents[1]
POLICY = "bench-slim"
VIOLATIONS = "slimguard.dev/violations"
MAX_COMPRESSED = "24Mi"  # the fat base is 23 MiB (bench/audit_images.py)
# What the controller watches with kopf: each is LISTed once before its WATCH starts.
LISTED_RESOURCES = ("deployments", "replicasets", "pods", "namespaces", "imagepolicies")


def profile_controller(pid: int | None, folder: Path | None, name: str) -> contextlib.AbstractContextManager[None]:
    """py-spy on the controller into ``folder/name`` (--profile), else nothing; --gil: only samples that hold the GIL,
    i.e. the one core Python code can use."""
    return profiled(pid, folder / name if folder else None, rate=100, gil=True, stop_timeout=120)


def slimguard_executable() -> str:
    beside = Path(sys.executable).parent / "slimguard"
    found = str(beside) if beside.exists() else shutil.which("slimguard")
    if not found:
        raise TestbedError("no `slimguard` executable: pip install -e . into the virtualenv first")
    return found


def namespace_names(count: int) -> list[str]:
    return [f"{NAMESPACE_PREFIX}{n:02d}" for n in range(count)]


def bench_policy(fat: FixtureImage, busybox: FixtureImage) -> dict[str, Any]:
    rules = {"maxCompressedSize": MAX_COMPRESSED, "deniedBaseImages": [fat.ref]}
    namespaces = [f"{NAMESPACE_PREFIX}*"]
    return image_policy(POLICY, rules, namespaces=namespaces, knownBaseImages=[fat.ref, busybox.ref])


def per_image(requests: Sequence[Any], repositories: set[str]) -> dict[str, Counter[str]]:
    """Requests of each repository: every request as 'METHOD kind status'."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for request in requests:
        if request.repository in repositories:
            found[request.repository][f"{request.method} {request.kind} {request.status}"] += 1
    return found


def run(args: argparse.Namespace) -> Results:
    results = Results(args.deployments, args.namespaces, args.images, args.audit_interval)
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(workdir("slimguard-bench-", keep=args.keep))
        ca = CertificateAuthority("slimguard bench CA")

        started = time.monotonic()
        plane = stack.enter_context(ControlPlane(workdir=work / "control-plane", ca=ca))
        registry = stack.enter_context(
            Registry(
                storage_dir=work / "registry-storage",
                ca=ca,
                auth="token",
                workdir=work / "registry",
            )
        )
        stack.callback(close_clients)
        api = Apiserver(plane)
        stack.callback(api.close)
        results.setup_seconds["control plane + registry"] = time.monotonic() - started
        log(f"control plane on {plane.server}, registry on {registry.host}")

        started = time.monotonic()
        fat, busybox, images = push_images(registry, args.images)
        results.setup_seconds["push images"] = time.monotonic() - started
        by_family = Counter(image.family for image in images)
        log(f"pushed {len(images)} images ({dict(by_family)}) in {results.setup_seconds['push images']:.1f}s")

        started = time.monotonic()
        namespaces = namespace_names(args.namespaces)
        asyncio.run(api.create_many([("/api/v1/namespaces", namespace(name)) for name in namespaces]))
        objects = []
        for n in range(args.deployments):
            where = namespaces[n % len(namespaces)]
            path = f"/apis/apps/v1/namespaces/{where}/deployments"
            image = images[n % len(images)].image.ref
            # replicas 0, no Pods: 2,000 Pending Pods would only load the controller-manager
            objects.append((path, deployment(f"app-{n:04d}", where, image, replicas=0, container="app")))
        asyncio.run(api.create_many(objects))
        results.setup_seconds["create Deployments"] = time.monotonic() - started
        log(f"created {args.deployments} Deployments in {results.setup_seconds['create Deployments']:.1f}s")

        # The controller-manager makes one ReplicaSet per Deployment: let it finish before measuring.
        started = time.monotonic()
        allowed = 300 + 0.15 * args.deployments  # 10,000 took over 300 s on a loaded machine
        deadline = started + allowed
        while api.count("/apis/apps/v1/replicasets") < args.deployments:
            if time.monotonic() > deadline:
                raise TestbedError(f"the controller-manager did not create every ReplicaSet within {allowed:.0f}s")
            time.sleep(2)
        results.setup_seconds["ReplicaSets by the controller-manager"] = time.monotonic() - started

        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.wait_established("imagepolicies.slimguard.dev")
        kubeconfig = install_controller_rbac(plane, REPO / "deploy" / "kustomize" / "base")

        argv = [
            *controller_command(args),
            "controller",
            f"--kubeconfig={kubeconfig}",
            "--allow-loopback-registries",
            f"--ca-file={registry.ca_file}",
            f"--audit-interval={args.audit_interval:g}",
        ]
        if args.workers:
            argv.append(f"--workers={args.workers}")
        # Its default metrics port (9090, every interface) would clash with other runs on this machine.
        operator, probe, started, before_start = start_controller(
            api, [*argv, "--metrics-port=0"], work / "operator.log", stack, "slimguard-controller"
        )
        operator_log = work / "operator.log"
        results.rss_at_start_mb = probe.memory_kib()[0] / 1024
        with profile_controller(operator.pid, args.profile, "list.txt"):
            results.list_seconds = wait_listed(api, operator, probe, started, before_start)
        results.list_cpu_seconds = probe.cpu_seconds()
        results.rss_after_list_mb = probe.memory_kib()[0] / 1024
        log(f"controller listed everything and is idle after {results.list_seconds:.1f}s")

        # --- the audit ---------------------------------------------------------------------------------
        repositories = {image.image.repository for image in images}
        bases = {fat.repository: fat.ref, busybox.repository: busybox.ref}
        watch = StatusWatch(api)  # its LIST before the counters are read: it is not part of the audit
        mark = registry.mark()
        tokens_before = len(registry.token_issuer.requests) if registry.token_issuer else 0
        before = request_counts(api)
        cpu_before = probe.cpu_seconds()
        machine_before = CpuSnapshot.take()
        results.audit_load_average = os.getloadavg()[0]
        audit_profile = profile_controller(operator.pid, args.profile, "audit.txt")
        audit_profile.__enter__()
        started = time.monotonic()
        api.post("/apis/slimguard.dev/v1alpha1/imagepolicies", bench_policy(fat, busybox))
        while time.monotonic() - started < args.timeout:
            operator.check_alive()
            annotated = watch.count()
            elapsed = time.monotonic() - started
            if annotated and results.first_verdict_seconds is None:
                results.first_verdict_seconds = elapsed
            if annotated * 2 >= args.deployments and results.half_seconds is None:
                results.half_seconds = elapsed
            if annotated == args.deployments:
                results.audit_seconds = elapsed
                break
            time.sleep(args.poll)
        audit_profile.__exit__(None, None, None)
        watch.close()
        results.watch_events, results.watch_cpu_seconds = watch.events, watch.cpu_seconds
        # Where both cores went while the audit ran (the machine is shared: other sessions count too).
        results.audit_cpu_by_process = CpuSnapshot.take().since(machine_before)
        results.audit_cpu_by_process["wall seconds x 2 cores"] = round(2 * (time.monotonic() - started), 1)
        census = bench_metadata(api)  # one JSON LIST, decoded in full
        results.annotated = sum(1 for metadata in census if verdict_of(metadata) is not None)
        results.verdicts = dict(Counter(verdict_of(metadata) or "none" for metadata in census))
        results.deployments_annotated = sum(1 for metadata in census if carries_own_annotations(metadata))
        results.findings = dict(
            Counter(
                finding.get("rule", "?")
                for metadata in census
                for finding in json.loads((metadata.get("annotations") or {}).get(VIOLATIONS, "[]"))
            )
        )
        log(f"audit: {results.annotated}/{args.deployments} annotated in {time.monotonic() - started:.1f}s")
        # Let the tail of the audit (Events, the policy status) land before counting.
        probe.wait_quiet(timeout=120, check=operator.check_alive)
        # ... and the controller-manager's ReplicaSet copies of the verdicts, which lag behind them under load.
        wait_replicasets_settled(api)
        results.settled_seconds = time.monotonic() - started
        results.cluster_cpu_until_settled = CpuSnapshot.take().since(machine_before)
        results.audit_cpu_seconds = probe.cpu_seconds() - cpu_before
        results.rss_after_audit_mb = probe.memory_kib()[0] / 1024
        after = request_counts(api)
        requests = registry.requests(since=mark)
        tokens_after = len(registry.token_issuer.requests) if registry.token_issuer else 0
        results.token_requests = tokens_after - tokens_before
        results.registry_requests = len(requests)
        results.registry_by_status = dict(Counter(str(request.status) for request in requests))
        results.registry_other = sum(1 for request in requests if request.repository is None)
        mine = per_image(requests, repositories)
        totals = [sum(mine.get(repository, Counter()).values()) for repository in repositories]
        oks = [
            sum(count for what, count in mine.get(repository, Counter()).items() if int(what.rsplit(" ", 1)[1]) < 400)
            for repository in repositories
        ]
        results.per_image_total_max, results.per_image_total_mean = max(totals), sum(totals) / len(totals)
        results.per_image_ok_max, results.per_image_ok_mean = max(oks), sum(oks) / len(oks)
        worst = max(repositories, key=lambda repository: sum(mine.get(repository, Counter()).values()))
        results.per_image_worst = {f"{worst} {what}": count for what, count in sorted(mine[worst].items())}
        breakdown: Counter[str] = Counter()
        for repository in repositories:
            for what, count in mine.get(repository, Counter()).items():
                breakdown[what] += count
        results.per_image_ok_breakdown = dict(sorted(breakdown.items()))
        base_requests = per_image(requests, set(bases))
        results.base_candidate_requests = {
            bases[repository]: sum(base_requests.get(repository, Counter()).values()) for repository in bases
        }
        results.patches_deployments = after.count(verb="PATCH", resource="deployments") - before.count(
            verb="PATCH", resource="deployments"
        )
        results.events_created = _delta(before, after, verb="POST", resource="events", group="")
        results.policy_status_patches = _delta(before, after, verb="PATCH", resource="imagepolicies")
        results.replicaset_updates = _delta(before, after, verb="PUT", resource="replicasets", subresource="")
        results.serviceaccount_reads = _delta(before, after, verb="GET", resource="serviceaccounts")
        rs_labels = {"verb": "PUT", "resource": "replicasets", "subresource": ""}
        results.replicaset_update_codes = dict(after.by_code(**rs_labels) - before.by_code(**rs_labels))
        results.replicasets_annotated = sum(
            1 for metadata in bench_metadata(api, "replicasets") if carries_own_annotations(metadata)
        )
        patch_seconds = after.seconds(verb="PATCH", resource="deployments") - before.seconds(
            verb="PATCH", resource="deployments"
        )
        results.patch_server_seconds_mean = patch_seconds / max(results.patches_deployments, 1)
        results.write_server_seconds = patch_seconds + after.seconds(**rs_labels) - before.seconds(**rs_labels)

        # --- an unchanged re-audit ---------------------------------------------------------------------
        mark = registry.mark()
        before = request_counts(api)
        cpu_before = probe.cpu_seconds()
        started = time.monotonic()
        path = f"/apis/slimguard.dev/v1alpha1/imagepolicies/{POLICY}"
        seen = {str((api.get(path).get("status") or {}).get("lastAuditTime"))}
        first = len(seen)
        # The controller logs nothing per re-audit; the policy's status.lastAuditTime moves at the end of each.
        while time.monotonic() - started < args.audit_interval * 2.5:
            operator.check_alive()
            seen.add(str((api.get(path).get("status") or {}).get("lastAuditTime")))
            time.sleep(1)
        probe.wait_quiet(timeout=120, check=operator.check_alive)
        results.reaudit_wait_seconds = time.monotonic() - started
        results.reaudits_seen = len(seen) - first
        after = request_counts(api)
        results.reaudit_patches_deployments = _delta(before, after, verb="PATCH", resource="deployments")
        results.reaudit_events = _delta(before, after, verb="POST", resource="events", group="")
        results.reaudit_policy_status_patches = _delta(before, after, verb="PATCH", resource="imagepolicies")
        results.reaudit_serviceaccount_reads = _delta(before, after, verb="GET", resource="serviceaccounts")
        reaudit_requests = registry.requests(since=mark)
        results.reaudit_registry_requests = len(reaudit_requests)
        results.reaudit_registry_breakdown = dict(
            Counter(f"{request.method} {request.kind} {request.status}" for request in reaudit_requests)
        )
        results.reaudit_cpu_seconds = probe.cpu_seconds() - cpu_before
        log(f"re-audit window: {results.reaudits_seen} re-audits in {results.reaudit_wait_seconds:.0f}s")

        results.total_cpu_seconds = probe.cpu_seconds()
        probe.memory_kib()
        results.peak_rss_mb = probe.peak_rss_kib / 1024
        popen = operator._popen  # the exit code is not part of ManagedProcess's surface
        operator.stop(timeout=15)
        results.operator_exit_code = popen.returncode if popen is not None else None
        lines = operator_log.read_text(errors="replace").splitlines()
        results.operator_log_lines, results.operator_log_bytes = len(lines), operator_log.stat().st_size
        results.operator_errors = errors_in(lines)

        if args.restart:
            if args.restart_command:  # the same flags, another build: an upgrade of the audited cluster
                argv = [*shlex.split(args.restart_command), *argv[len(controller_command(args)) :]]
                results.restart_upgrade = True
            restart(args, results, api, registry, argv, work, stack, {image.image.ref for image in images})
    return results


def wait_replicasets_settled(api: Apiserver, *, quiet_seconds: float = 3.0, timeout: float = 300.0) -> None:
    """Until the controller-manager has updated no ReplicaSet for ``quiet_seconds``."""
    labels = {"verb": "PUT", "resource": "replicasets", "subresource": ""}
    deadline = time.monotonic() + timeout
    last, since = request_counts(api).count(**labels), time.monotonic()
    while time.monotonic() - since < quiet_seconds:
        if time.monotonic() > deadline:
            raise TestbedError(f"the controller-manager was still updating ReplicaSets after {timeout:.0f}s")
        time.sleep(0.5)
        now = request_counts(api).count(**labels)
        if now != last:
            last, since = now, time.monotonic()


def controller_command(args: argparse.Namespace) -> list[str]:
    return shlex.split(args.controller_command) if args.controller_command else [slimguard_executable()]


def errors_in(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if "Traceback" in line or " ERROR " in line or "[ERROR" in line][:20]


def start_controller(
    api: Apiserver, argv: Sequence[str], log_file: Path, stack: contextlib.ExitStack, name: str
) -> tuple[ManagedProcess, ProcessProbe, float, RequestCounts]:
    """Start the controller and wait until it logs that it started (before kopf LISTs anything).

    Also returns the apiserver's counters from just before the start, to tell its LISTs by.
    """
    before_start = request_counts(api)
    operator = ManagedProcess(name, list(argv), log_file=log_file, cwd=log_file.parent)
    started = time.monotonic()
    operator.start()
    stack.callback(operator.stop)
    assert operator.pid is not None
    probe = ProcessProbe(operator.pid)
    log(f"controller started (pid {operator.pid}); log: {log_file}")
    # Its start-up handler logs this just before kopf begins to LIST: the memory of imports and start-up alone.
    while "slimguard controller started" not in log_file.read_text(errors="replace"):
        operator.check_alive()
        if time.monotonic() - started > 120:
            raise TestbedError("the controller did not start within 120s")
        time.sleep(0.02)
    return operator, probe, started, before_start


def wait_listed(
    api: Apiserver, operator: ManagedProcess, probe: ProcessProbe, started: float, before_start: RequestCounts
) -> float:
    """Listed everything: one LIST of each watched resource since the start, then the controller idle."""
    while True:
        operator.check_alive()
        now = request_counts(api)
        if all(
            now.count(verb="LIST", resource=name) > before_start.count(verb="LIST", resource=name)
            for name in LISTED_RESOURCES
        ):
            break
        if time.monotonic() - started > 300:
            raise TestbedError("the controller did not LIST every watched resource within 300s")
        time.sleep(0.5)
    probe.wait_quiet(timeout=600, check=operator.check_alive)
    elapsed = time.monotonic() - started
    log(f"controller listed everything and is idle after {elapsed:.1f}s")
    return elapsed


def evaluations(http: httpx.Client, url: str) -> int:
    """The controller's `slimguard_evaluations_total`, all statuses."""
    return int(counter_total(http.get(url).text, "slimguard_evaluations_total"))


def restart(
    args: argparse.Namespace,
    results: Results,
    api: Apiserver,
    registry: Registry,
    argv: Sequence[str],
    work: Path,
    stack: contextlib.ExitStack,
    tags: set[str],
) -> None:
    """A new controller process on the audited cluster: it must re-verify everything and change nothing."""
    mark = registry.mark()
    tokens_before = len(registry.token_issuer.requests) if registry.token_issuer else 0
    before = request_counts(api)
    port = free_port()
    results.restart_load_average = os.getloadavg()[0]
    log_file = work / "operator-restarted.log"
    operator, probe, started, before_start = start_controller(
        api, [*argv, f"--metrics-port={port}"], log_file, stack, "slimguard-controller-restarted"
    )
    url = f"http://127.0.0.1:{port}/metrics"
    with (
        httpx.Client(timeout=30) as http,
        profile_controller(operator.pid, args.profile, "restart.txt"),
    ):
        while time.monotonic() - started < args.timeout:
            operator.check_alive()
            try:
                done = evaluations(http, url)
            except httpx.HTTPError:
                done = 0
            elapsed = time.monotonic() - started
            if done and results.restart_first_seconds is None:
                results.restart_first_seconds = elapsed
            if done >= results.deployments:
                results.restart_last_seconds = elapsed
                break
            time.sleep(args.poll)
        results.restart_list_seconds = wait_listed(api, operator, probe, started, before_start)
        results.restart_evaluations = evaluations(http, url)
    results.restart_cpu_seconds = probe.cpu_seconds()
    probe.memory_kib()
    results.restart_peak_rss_mb = probe.peak_rss_kib / 1024
    after = request_counts(api)
    requests = registry.requests(since=mark)
    results.restart_registry_requests = len(requests)
    results.restart_registry_breakdown = dict(
        sorted(Counter(f"{request.method} {request.kind} {request.status}" for request in requests).items())
    )
    heads = Counter(request.repository for request in requests if request.method == "HEAD" and request.status < 400)
    results.restart_heads_per_tag_max = max(heads.values(), default=0)
    tokens_after = len(registry.token_issuer.requests) if registry.token_issuer else 0
    results.restart_token_requests = tokens_after - tokens_before
    results.restart_patches_deployments = _delta(before, after, verb="PATCH", resource="deployments")
    results.restart_patches_replicasets = _delta(before, after, verb="PATCH", resource="replicasets")
    results.restart_replicaset_updates = _delta(before, after, verb="PUT", resource="replicasets", subresource="")
    results.restart_events = _delta(before, after, verb="POST", resource="events", group="")
    operator.stop(timeout=15)
    results.restart_errors = errors_in(log_file.read_text(errors="replace").splitlines())
    log(
        f"restart: first re-verified at {shown_seconds(results.restart_first_seconds)}, "
        f"last at {shown_seconds(results.restart_last_seconds)} ({len(tags)} tags)"
    )


def _delta(before: RequestCounts, after: RequestCounts, **labels: str) -> int:
    return after.count(**labels) - before.count(**labels)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="200 Deployments, 4 namespaces, 20 images")
    parser.add_argument("--audit-interval", type=float, default=20.0, help="the controller's --audit-interval")
    parser.add_argument("--workers", type=int, default=0, help="the controller's --workers (default: its own)")
    parser.add_argument(
        "--controller-command",
        help="the command that runs slimguard (default: the virtualenv's `slimguard`), to measure another build",
    )
    parser.add_argument(
        "--restart-command",
        help="the command that runs slimguard for the restart (default: the audit's): another build measures an "
        "upgrade of the audited cluster",
    )
    parser.add_argument(
        "--poll", type=float, default=0.1, help="seconds between looks at the status watch (and the restart's metrics)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on the audit after this long")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--profile", type=Path, help="py-spy profiles of the controller (list, audit, restart) into this directory"
    )
    parser.add_argument(
        "--no-restart", dest="restart", action="store_false", help="skip restarting the controller at the end"
    )
    args = parser.parse_args(argv)
    # A run started in the background ignores SIGINT: SIGTERM stops it too, with every process cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.deployments, args.namespaces, args.images = 200, 4, 20
    if min(args.deployments, args.namespaces, args.images) < 1:
        parser.error("--deployments, --namespaces and --images must be at least 1")

    results = run(args)
    print(report(results))
    for line in results.operator_errors:
        print(f"controller log: {line}")
    print(
        f"setup: {', '.join(f'{k} {v:.1f} s' for k, v in results.setup_seconds.items())}; "
        f"controller listed everything in {results.list_seconds:.1f} s"
    )
    cpu = ", ".join(f"{name} {seconds:g}" for name, seconds in results.audit_cpu_by_process.items())
    print(f"CPU seconds during the audit (load average {results.audit_load_average:.1f} at its start): {cpu}")
    print(
        f"the benchmark's status watch decoded {results.watch_events} events in {results.watch_cpu_seconds:.1f} s "
        "of its CPU"
    )
    print(
        f"controller-manager ReplicaSet PUTs by HTTP code: {results.replicaset_update_codes}; ReplicaSets that "
        f"carry slimguard annotations (copied from their Deployment): {results.replicasets_annotated}; Deployments "
        f"that carry slimguard annotations: {results.deployments_annotated}"
    )
    print(f"registry requests in the re-audit window: {results.reaudit_registry_breakdown}")
    if args.restart:
        print(f"load average at the restart: {results.restart_load_average:.1f}")
        for line in results.restart_errors:
            print(f"restarted controller log: {line}")
    print(f"busiest image: {results.per_image_worst}")
    print(f"all image requests: {results.per_image_ok_breakdown}")
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
