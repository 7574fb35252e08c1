"""Admission latency: what slimguard's webhook adds to a create, next to no webhook and to a webhook that does nothing.

One run starts its own control plane (etcd, kube-apiserver, kube-controller-manager) and token-auth registry on
127.0.0.1, one `slimguard webhook` replica (an Enforce ImagePolicy matching the namespace, its cache warmed) and
bench/always_allow.py (same certificate, TLS settings, port sharing and ValidatingWebhookConfiguration; only the
url differs), then measures on that one apiserver:

1. create latency of Pods and Deployments seen by N concurrent REST clients, for three variants, interleaved in
   rounds (every round runs every variant, the order rotating) so machine noise hits all three alike:
   ``none`` (no webhook registered), ``always-allow`` (the floor any webhook pays) and ``slimguard``;
2. slimguard's own decision time: raw samples, one per review (`slimguard webhook --decision-times`: its file in
   the rounds, its Server-Timing header in the direct drive), p50/p99/p99.9 by nearest rank; beside them the share
   within 1 ms its `slimguard_admission_decision_seconds` histogram gives on /metrics (no quantile is read from
   the histogram: below its first bucket, 0.5 ms, that would be an interpolation);
3. registry requests per never-seen image (the registry's access log and the token issuer's log);
4. reviews/s one replica sustains pinned to one core (`taskset`), driven directly with the AdmissionReviews the
   apiserver sent, by a client pinned to the other core; the same for always-allow.

Targets are reported beside the measurements, never asserted: this is a benchmark, not a test.

    python -m bench.admission_latency                          # 8 clients, 400 creates per variant and kind
    python -m bench.admission_latency --clients 8 --requests 400 --rounds 8 --json results.json
    python -m bench.admission_latency --requests 240 --rounds 4 --profile /tmp/prof   # py-spy profiles

Other benchmarks on these 2 cores would skew it: each batch and drive waits until none runs, and is measured
again if one started meanwhile (`--no-wait` to measure regardless). Method and runs: bench/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.admission_drive import DriveResult, drive_webhook, replay_bodies
from bench.admission_report import (
    KINDS,
    VARIANTS,
    HistogramSummary,
    Results,
    Sample,
    decision_buckets,
    latency_rows,
    ratios,
    report,
    round_spread,
    summarise_histogram,
)
from bench.common.apiserver import Apiserver
from bench.common.decision_times import (
    WEBHOOK_FLAG,
    DecisionSample,
    DecisionSummary,
    TailAttribution,
    read_samples,
    within_windows,
)
from bench.common.measure import counter_total, cpu_seconds, load_average, machine
from bench.common.processes import log, profiled, workdir
from bench.common.stages import stage_table
from bench.common.webhooks import (
    NAMESPACE,
    REVIEWS,
    AlwaysAllowProcess,
    WebhookBench,
    point_configuration,
    prepare_namespace,
    start_webhooks,
    wait_reviewed_by,
)
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, TestbedError
from slimguard_testbed.images import FixtureImage, busybox_files, close_clients, push_image
from slimguard_testbed.webhook import WebhookReplicas
from slimguard_testbed.workloads import deployment, image_policy, pod

POLICY = "bench-enforce"
CONFIGURATION = "admission-bench"
T = TypeVar("T")


class Clients(Apiserver):
    """The apiserver as N concurrent REST clients: a pool of threads, each with its own keep-alive connection."""

    def __init__(self, plane: ControlPlane, clients: int) -> None:
        super().__init__(plane)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        super().close()

    def batch(self, variant: str, round_: int, jobs: Sequence[tuple[str, dict[str, Any]]]) -> list[Sample]:
        """Create every job with the N client threads at once; each thread takes the next job when it is done."""

        def one(job: tuple[str, dict[str, Any]]) -> Sample:
            kind, body = job
            status, text, seconds = self.create(kind, body)
            if status != 201:
                with self._lock:
                    self.errors.append(f"{variant} {kind} {status}: {text[:300]}")
            return Sample(variant, kind, round_, seconds, status)

        return list(self.pool.map(one, jobs))


@dataclass(frozen=True)
class Snapshot:
    buckets: dict[float, float]  # slimguard's decision-time histogram
    reviews: tuple[int, int]  # answered by (slimguard, always-allow)
    cpu: tuple[float, float]  # CPU seconds of (slimguard, always-allow)


@dataclass(frozen=True)
class Batch:
    variant: str
    samples: list[Sample]
    before: Snapshot
    after: Snapshot
    deployments: int  # created in the batch, warm-up included
    window: tuple[int, int]  # time.monotonic_ns() around the two snapshots: the reviews of this batch began inside


class Quiet:
    """Other benchmarks share these 2 cores: wait until none runs, and tell whether one ran meanwhile."""

    def __init__(self, enabled: bool, max_wait: float = 1800) -> None:
        self.enabled = enabled
        self.max_wait = max_wait
        self.seen: set[str] = set()
        self.waited = 0.0
        self.redone = 0

    def now(self) -> list[str]:
        found = other_benchmarks()
        self.seen.update(found)
        return found

    def wait(self) -> None:
        started = time.monotonic()
        found = self.now()
        if found and self.enabled:
            log(f"waiting for {', '.join(found)} to finish")
        while self.enabled and found and time.monotonic() - started < self.max_wait:
            time.sleep(5)
            found = self.now()
        self.waited += time.monotonic() - started

    def run(self, what: str, measure: Callable[[], T]) -> T:
        """`measure` on a quiet machine; again (up to 3 times) if another benchmark started meanwhile."""
        for _attempt in range(3):
            self.wait()
            result = measure()
            if not (self.enabled and self.now()):
                return result
            self.redone += 1
            log(f"another benchmark ran during {what}: measuring it again")
        return result


class Bench(WebhookBench):
    """Everything one run shares: the apiserver, both webhooks, the images, and which variant is registered."""

    def __init__(
        self,
        *,
        api: Clients,
        registry: Registry,
        ca: CertificateAuthority,
        slimguard: WebhookReplicas,
        always: AlwaysAllowProcess,
        slim: FixtureImage,
        replicas: int,
        quiet: Quiet,
        decision_times: Path,
    ) -> None:
        super().__init__(api=api, registry=registry, ca=ca, slimguard=slimguard, always=always)
        self.api: Clients = api
        self.quiet = quiet
        self.slim = slim
        self.replicas = replicas
        self.decision_times = decision_times  # slimguard's --decision-times file
        self.pods_created = 0
        self.deployments_created = 0

    def slimguard_metrics(self) -> str:
        return self.slimguard.metrics(0)

    def snapshot(self, *, cpu_first: bool) -> Snapshot:
        """Both webhooks' counters and CPU. /metrics is served by a thread of the slimguard process itself, so
        the scrape is kept outside the CPU window: CPU read last at a window's start, first at its end."""

        def cpu() -> tuple[float, float]:
            return cpu_seconds(self.slimguard_pid), cpu_seconds(self.always.pid)

        first = cpu() if cpu_first else None
        metrics, always_reviews = self.slimguard_metrics(), self.always.reviews()
        reviews = (int(counter_total(metrics, REVIEWS)), always_reviews)
        return Snapshot(decision_buckets(metrics), reviews, first or cpu())

    def register(self, variant: str) -> None:
        """Point the one ValidatingWebhookConfiguration at a variant (or remove it), and wait until it is live:
        a server-side dry-run create reaches the variant's webhook and no other."""
        point_configuration(self.api, CONFIGURATION, self.url(variant), self.ca)
        probe = pod("probe", NAMESPACE, self.slim.ref)
        wait_reviewed_by(self.api, variant, probe, self.reviews, timeout=30, every=0.2)

    def jobs(self, per_kind: int, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """Pods and Deployments alternating, so both kinds see the same moments of the batch."""
        jobs: list[tuple[str, dict[str, Any]]] = []
        for _ in range(per_kind):
            jobs.append(("Pod", pod(self.name(f"{prefix}-pod"), NAMESPACE, self.slim.ref)))
            name = self.name(f"{prefix}-deploy")
            jobs.append(("Deployment", deployment(name, NAMESPACE, self.slim.ref, replicas=self.replicas)))
        return jobs

    def run_batch(self, variant: str, round_: int, per_kind: int, warmup: int) -> Batch:
        """Register the variant, warm the apiserver's connections to it (unrecorded), create, then let the
        controller-manager finish the ReplicaSets and Pods, so no batch inherits another's tail."""
        self.register(variant)
        prefix = variant.replace("-", "")
        opened = time.monotonic_ns()
        before = self.snapshot(cpu_first=False)
        deployments = 0
        if warmup:
            warm = self.api.batch(variant, -1, self.jobs(warmup, prefix))
            deployments += self._count(warm)
        samples = self.api.batch(variant, round_, self.jobs(per_kind, prefix))
        deployments += self._count(samples)
        self.settle()
        after = self.snapshot(cpu_first=True)
        return Batch(variant, samples, before, after, deployments, (opened, time.monotonic_ns()))

    def decision_samples(
        self, windows: Sequence[tuple[int, int]], reviews: int, timeout: float = 15
    ) -> list[DecisionSample]:
        """slimguard's raw samples of the reviews that began in ``windows``, once its file holds all ``reviews``
        its counter says it answered there (it writes every second), or what it holds after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = within_windows(read_samples(self.decision_times), windows)
            if len(found) >= reviews or time.monotonic() > deadline:
                if len(found) != reviews:
                    log(f"warning: {len(found)} decision-time samples for {reviews} reviews counted")
                return found
            time.sleep(0.5)

    def _count(self, samples: Sequence[Sample]) -> int:
        """Count what was created (for `settle`); returns the Deployments."""
        deployments = sum(1 for s in samples if s.kind == "Deployment" and s.status == 201)
        self.pods_created += sum(1 for s in samples if s.kind == "Pod" and s.status == 201)
        self.deployments_created += deployments
        return deployments

    def settle(self, timeout: float = 180) -> None:
        """Wait until every Deployment has its ReplicaSet and every ReplicaSet its Pods."""
        want_rs = self.deployments_created
        want_pods = self.pods_created + self.deployments_created * self.replicas
        deadline = time.monotonic() + timeout
        rs = pods = -1
        while time.monotonic() < deadline:
            rs = self.api.count(f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets")
            pods = self.api.count(f"/api/v1/namespaces/{NAMESPACE}/pods")
            if rs >= want_rs and pods >= want_pods:
                return
            time.sleep(0.2)
        raise TestbedError(
            f"the controller-manager did not catch up: {rs}/{want_rs} ReplicaSets, {pods}/{want_pods} Pods"
        )


def other_benchmarks() -> list[str]:
    """Other benchmarks on the machine (their load would skew these numbers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = stat.read_bytes().split(b"\0")
            # `python -m bench.audit_scale`, or the file itself as it was run before bench/ was a package
            if any(part == b"bench.audit_scale" or part.endswith(b"audit_scale.py") for part in argv):
                found.append(f"audit_scale.py (pid {stat.parent.name})")
    return found


def start_bench(stack: contextlib.ExitStack, work: Path, args: argparse.Namespace) -> Bench:
    """Control plane, registry, images, policy and both webhooks; slimguard enforcing with a warm cache."""
    ca = CertificateAuthority("slimguard admission bench CA")
    plane = stack.enter_context(ControlPlane(workdir=work / "control-plane", ca=ca))
    registry = stack.enter_context(
        Registry(storage_dir=work / "registry-storage", ca=ca, auth="token", workdir=work / "registry")
    )
    stack.callback(close_clients)
    api = Clients(plane, args.clients)
    stack.callback(api.close)
    log(f"control plane on {plane.server}, registry on {registry.host}")

    slim = push_image(registry.endpoint, "shop/bench-slim", "1.0", [busybox_files()], user="10001", cmd=["sh"])
    rooted = push_image(registry.endpoint, "shop/bench-root", "1.0", [{"/app/root.txt": b"runs as root"}])
    kubeconfig = prepare_namespace(plane, api)
    # A policy of the usual shape: size, layer count and a non-root user, enforced on the bench namespace.
    rules = {"maxCompressedSize": "200Mi", "maxLayers": 20, "requireNonRootUser": True}
    api.post(
        "/apis/slimguard.dev/v1alpha1/imagepolicies",
        image_policy(POLICY, rules, namespaces=[NAMESPACE], mode="Enforce"),
    )

    decision_times = work / "slimguard-decision-times.txt"
    replicas, always = start_webhooks(
        stack,
        work,
        ca=ca,
        kubeconfig=kubeconfig,
        registry=registry,
        extra_args=(WEBHOOK_FLAG, str(decision_times)),
        python=args.python,
    )
    bench = Bench(
        api=api,
        registry=registry,
        ca=ca,
        slimguard=replicas,
        always=always,
        slim=slim,
        replicas=args.replicas,
        quiet=Quiet(not args.no_wait),
        decision_times=decision_times,
    )

    # Warm slimguard: the policy is loaded and enforced (a root image is denied) and the slim image inspected.
    bench.register("slimguard")
    deadline = time.monotonic() + 30
    while True:
        status, text, _ = api.create("Pod", pod("probe", NAMESPACE, rooted.ref), dry_run=True)
        if status == 403 and "slimguard denied" in text:
            break
        if time.monotonic() > deadline:
            raise TestbedError(f"slimguard does not enforce the bench policy (last answer {status}: {text[:300]})")
        time.sleep(0.3)
    status, text, _ = api.create("Pod", pod("probe", NAMESPACE, slim.ref), dry_run=True)
    if status != 201:
        raise TestbedError(f"slimguard did not admit the slim image: {status}: {text[:300]}")
    return bench


def measure_latency(bench: Bench, args: argparse.Namespace, results: Results) -> None:
    """One unrecorded round, then the measured rounds; every round runs every variant, the order rotating."""
    for variant in VARIANTS:
        bench.run_batch(variant, -1, args.clients, warmup=0)
    per_kind = math.ceil(args.requests / args.rounds)
    batches: list[Batch] = []
    with profiled(bench.slimguard_pid, args.profile / "slimguard-rounds.txt" if args.profile else None, rate=200):
        for round_ in range(args.rounds):
            order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]
            for variant in order:
                batches.append(
                    bench.quiet.run(
                        f"the {variant} batch of round {round_ + 1}",
                        functools.partial(bench.run_batch, variant, round_, per_kind, max(args.clients // 2, 1)),
                    )
                )
            log(f"round {round_ + 1}/{args.rounds} ({' -> '.join(order)}) done")
    samples = [sample for batch in batches for sample in batch.samples]
    results.latency = latency_rows(samples)
    results.ratios = ratios(samples)
    results.round_ratio_spread = round_spread(samples, args.rounds)
    results.errors = list(bench.api.errors)
    # Decision times of slimguard's own batches, warm-up included (probes between batches excluded): raw samples,
    # and its histogram's share within 1 ms over the same reviews.
    decided: Counter[float] = Counter()
    mine = [batch for batch in batches if batch.variant == "slimguard"]
    for batch in mine:
        decided.update(
            {bound: count - batch.before.buckets.get(bound, 0.0) for bound, count in batch.after.buckets.items()}
        )
    results.decision_histogram = summarise_histogram({}, dict(decided))
    results.decision_reviews = sum(b.after.reviews[0] - b.before.reviews[0] for b in mine)
    raw = bench.decision_samples([b.window for b in mine], results.decision_reviews)
    results.decision = DecisionSummary.of_samples(raw)
    if tail := TailAttribution.of(raw):
        results.decision_tails["during the rounds"] = tail.describe()
    for index, name in enumerate(("slimguard", "always-allow")):
        mine = [batch for batch in batches if batch.variant == name]
        reviews = sum(b.after.reviews[index] - b.before.reviews[index] for b in mine)
        cpu = sum(b.after.cpu[index] - b.before.cpu[index] for b in mine)
        results.webhook_reviews[name] = reviews
        results.webhook_cpu_ms_per_review[name] = cpu * 1000 / max(reviews, 1)
    if args.profile and (profile := args.profile / "slimguard-rounds.txt").exists():
        results.stages["the rounds (its watches during the other variants' batches included)"] = stage_table(
            profile.read_text(), results.webhook_cpu_ms_per_review["slimguard"]
        )
    # slimguard reviews nothing in the other variants' batches: its CPU there is what watching the cluster costs.
    others = [batch for batch in batches if batch.variant != "slimguard"]
    cpu = sum(b.after.cpu[0] - b.before.cpu[0] for b in others)
    results.watch_cpu_ms_per_deployment = cpu * 1000 / max(sum(b.deployments for b in others), 1)


def measure_cold_images(bench: Bench, args: argparse.Namespace, results: Results) -> None:
    """One Deployment on each of K never-seen images, then one more on each: registry requests counted per image."""
    registry, api = bench.registry, bench.api
    cold = [
        push_image(
            registry.endpoint,
            f"shop/cold-{n:03d}",
            "1.0",
            [{f"/app/cold-{n}.txt": f"cold image {n}\n".encode() * 64}],
            user="10001",
        )
        for n in range(args.cold_images)
    ]
    bench.register("slimguard")
    repositories = {image.repository for image in cold}

    def create_each(prefix: str) -> list[float]:
        took = []
        for image in cold:
            body = deployment(bench.name(prefix), NAMESPACE, image.ref, replicas=args.replicas)
            status, text, seconds = api.create("Deployment", body)
            if status != 201:
                raise TestbedError(f"create on {image.ref} failed: {status}: {text[:300]}")
            bench.deployments_created += 1
            took.append(seconds * 1000)
        bench.settle()  # the ReplicaSets and Pods are reviewed too
        return took

    def token_requests() -> int:
        return registry.token_issuer.token_requests if registry.token_issuer else 0

    mark, tokens = registry.mark(), token_requests()
    results.cold_create_ms = create_each("cold")
    requests = [r for r in registry.requests(since=mark) if r.repository in repositories]
    results.cold_images = len(cold)
    results.cold_token_requests = token_requests() - tokens
    for repository in sorted(repositories):
        mine = [r for r in requests if r.repository == repository]
        results.cold_requests_all.append(len(mine))
        results.cold_requests_ok.append(sum(1 for r in mine if r.status < 400))
    results.cold_breakdown = dict(sorted(Counter(f"{r.method} {r.kind} {r.status}" for r in requests).items()))
    mark = registry.mark()
    results.cold_again_create_ms = create_each("again")
    results.cold_again_requests = sum(1 for r in registry.requests(since=mark) if r.repository in repositories)


def measure_throughput(bench: Bench, args: argparse.Namespace, results: Results) -> None:
    """Each webhook pinned to one core and driven directly with the reviews the apiserver sent."""
    if (os.cpu_count() or 1) < 2:
        raise TestbedError("the direct drive pins webhook and client to two different cores: need 2")
    bodies = replay_bodies({kind: bench.always.last_review(kind) for kind in KINDS}, 512)
    bench.register("none")  # nothing but the client reaches the webhooks now
    results.drive_concurrency = args.drive_concurrency

    def slimguard(concurrency: int, seconds: float) -> tuple[DriveResult, HistogramSummary]:
        """The drive, and the histogram over it (its warm-up included); the raw samples are in the result, and
        where the slow ones' time went (from the webhook's file, the same reviews) in ``results.decision_tails``."""
        before = decision_buckets(bench.slimguard_metrics())
        started = time.monotonic_ns()
        with profiled(
            bench.slimguard_pid, args.profile / f"slimguard-drive-{concurrency}.txt" if args.profile else None, rate=200
        ):
            drove = drive_webhook(
                bench.slimguard.url, bench.slimguard_pid, bench.ca, bodies, concurrency=concurrency, seconds=seconds
            )
        window = (started, time.monotonic_ns())
        time.sleep(1.5)  # the webhook writes its file every second
        if tail := TailAttribution.of(within_windows(read_samples(bench.decision_times), [window])):
            label = "direct drive, 1 review in flight" if concurrency == 1 else f"direct drive, {concurrency} in flight"
            results.decision_tails[label] = tail.describe()
        return drove, summarise_histogram(before, decision_buckets(bench.slimguard_metrics()))

    # One review at a time: the decision's own time, with no other request interleaved on the event loop.
    alone, results.decision_alone_histogram = bench.quiet.run(
        "the drive with 1 in flight", lambda: slimguard(1, min(args.drive_seconds, 3.0))
    )
    results.decision_alone = alone.decision
    if args.profile and (profile := args.profile / "slimguard-drive-1.txt").exists() and alone.reviews:
        cpu_ms = alone.webhook_cpu * alone.seconds * 1000 / alone.reviews
        results.stages["direct drive, 1 review in flight"] = stage_table(profile.read_text(), cpu_ms)
    results.drive["slimguard"], results.decision_at_saturation_histogram = bench.quiet.run(
        "the slimguard drive", lambda: slimguard(args.drive_concurrency, args.drive_seconds)
    )
    results.decision_at_saturation = results.drive["slimguard"].decision

    def always_allow() -> DriveResult:
        output = args.profile / f"always-allow-drive-{args.drive_concurrency}.txt" if args.profile else None
        with profiled(bench.always.pid, output, rate=200):
            return drive_webhook(
                bench.always.url,
                bench.always.pid,
                bench.ca,
                bodies,
                concurrency=args.drive_concurrency,
                seconds=args.drive_seconds,
            )

    results.drive["always-allow"] = bench.quiet.run("the always-allow drive", always_allow)
    # The same drive of both, profiled: what slimguard's review adds to the HTTP and TLS both pay.
    for name in ("slimguard", "always-allow"):
        drove = results.drive[name]
        profile = args.profile / f"{name}-drive-{args.drive_concurrency}.txt" if args.profile else None
        if profile is not None and profile.exists() and drove.reviews:
            cpu_ms = drove.webhook_cpu * drove.seconds * 1000 / drove.reviews
            results.stages[f"{name}, direct drive, {args.drive_concurrency} in flight"] = stage_table(
                profile.read_text(), cpu_ms
            )
    for name, result in results.drive.items():
        log(f"{name}: {result.per_second:.0f} reviews/s, webhook core {result.webhook_cpu * 100:.0f} %")


def run(args: argparse.Namespace) -> Results:
    results = Results(args.clients, args.requests, args.rounds, args.replicas)
    results.machine = machine()
    results.load_before = load_average()
    if args.no_wait and other_benchmarks():
        log(f"warning: {', '.join(other_benchmarks())} running: results will be noisy")
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(workdir("slimguard-admission-bench-", keep=args.keep))
        started = time.monotonic()
        bench = start_bench(stack, work, args)
        results.seconds["setup"] = time.monotonic() - started
        phases: list[tuple[str, Callable[[Bench, argparse.Namespace, Results], None]]] = [
            ("latency rounds", measure_latency)
        ]
        if args.cold_images:
            phases.append(("cold images", measure_cold_images))
        if args.drive_seconds > 0:
            phases.append(("direct drive", measure_throughput))
        for phase, measure in phases:
            bench.quiet.wait()
            started = time.monotonic()
            measure(bench, args, results)
            results.seconds[phase] = time.monotonic() - started
        results.load_after = load_average()
        results.concurrent_benchmarks = sorted(bench.quiet.seen)
        results.waited_seconds, results.redone = bench.quiet.waited, bench.quiet.redone
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--requests", type=int, default=400, help="creates per variant and kind")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds they are split into")
    parser.add_argument("--replicas", type=int, default=1, help="spec.replicas of each Deployment")
    parser.add_argument("--cold-images", type=int, default=10, help="never-seen images; 0 to skip")
    parser.add_argument("--drive-seconds", type=float, default=10.0, help="direct drive per webhook; 0 to skip")
    parser.add_argument("--drive-concurrency", type=int, default=8, help="reviews in flight in the direct drive")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="measure even while another benchmark runs (by default each batch and drive waits for a quiet "
        "machine and is measured again if one started meanwhile)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record py-spy profiles of the slimguard replica (rounds, direct drive) into this directory; "
        "sampling costs CPU, so never take the numbers of a profiled run",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter that runs `slimguard webhook` (a wrapper setting PYTHONPATH measures another build)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if min(args.clients, args.requests, args.rounds) < 1:
        parser.error("--clients, --requests and --rounds must be at least 1")

    results = run(args)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
