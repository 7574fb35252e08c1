"""Admission latency: what slimguard's webhook adds to a create, next to no webhook and to a webhook that does nothing.

One run starts its own control plane (etcd, kube-apiserver, kube-controller-manager) and token-auth registry on
127.0.0.1, one `slimguard webhook` replica (an Enforce ImagePolicy matching the namespace, its cache warmed) and
bench/always_allow.py (same certificate, TLS settings, port sharing and ValidatingWebhookConfiguration; only the
url differs), then measures on that one apiserver:

1. create latency of Pods and Deployments seen by N concurrent REST clients, for three variants, interleaved in
   rounds (every round runs every variant, the order rotating) so machine noise hits all three alike:
   ``none`` (no webhook registered), ``always-allow`` (the floor any webhook pays) and ``slimguard``;
2. slimguard's own decision time (`slimguard_admission_decision_seconds` from the replica's /metrics);
3. registry requests per never-seen image (the registry's access log and the token issuer's log);
4. reviews/s one replica sustains pinned to one core (`taskset`), driven directly with the AdmissionReviews the
   apiserver sent, by a client pinned to the other core; the same for always-allow.

Targets are reported beside the measurements, never asserted: this is a benchmark, not a test.

    python bench/admission_latency.py                          # 8 clients, 400 creates per variant and kind
    python bench/admission_latency.py --clients 8 --requests 400 --rounds 8 --json results.json
    python bench/admission_latency.py --requests 240 --rounds 4 --profile /tmp/prof   # py-spy profiles

Other benchmarks on these 2 cores would skew it: each batch and drive waits until none runs, and is measured
again if one started meanwhile (`--no-wait` to measure regardless). Method and one run: bench/ADMISSION.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.images import FixtureImage, busybox_files, close_clients, push_image
from slimguard_testbed.install import install_rbac
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError
from slimguard_testbed.webhook import WebhookReplicas, webhook_configuration

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "deploy" / "kustomize" / "base" / "validatingwebhookconfiguration.yaml"
ALWAYS_ALLOW = Path(__file__).resolve().parent / "always_allow.py"
NAMESPACE = "admission-bench"
POLICY = "bench-enforce"
CONFIGURATION = "admission-bench"
VARIANTS = ("none", "always-allow", "slimguard")
KINDS = ("Pod", "Deployment")
TARGET_RATIO = 1.05  # slimguard within 5 % of always-allow
TARGET_DECISION_P99 = 0.002  # seconds, warm
TARGET_REVIEWS_PER_SECOND = 200.0  # one replica on one core
WEBHOOK_CORE, CLIENT_CORE = 1, 0
CONFIGURATIONS_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- small statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


_BUCKET = re.compile(r'^slimguard_admission_decision_seconds_bucket\{le="(?P<le>[^"]+)"\} (?P<count>\S+)$')
_REVIEWS = re.compile(r"^slimguard_admission_reviews_total\{[^}]*\} (?P<count>\S+)$")


def decision_buckets(metrics: str) -> dict[float, float]:
    """Cumulative bucket counts of `slimguard_admission_decision_seconds`, by upper bound."""
    found: dict[float, float] = {}
    for line in metrics.splitlines():
        match = _BUCKET.match(line)
        if match:
            found[float(match["le"])] = float(match["count"])
    return found


def reviews_total(metrics: str) -> int:
    return int(sum(float(match["count"]) for line in metrics.splitlines() if (match := _REVIEWS.match(line))))


@dataclass(frozen=True)
class HistogramSummary:
    count: int
    p50: float
    p99: float
    within_2ms: float  # share of decisions in the le="0.002" bucket: exact, no interpolation


def summarise_histogram(before: dict[float, float], after: dict[float, float]) -> HistogramSummary:
    """Quantiles of the observations made between two scrapes, as Prometheus' histogram_quantile computes them."""
    bounds = sorted(after)
    cumulative = [after[b] - before.get(b, 0.0) for b in bounds]
    total = cumulative[-1] if cumulative else 0.0

    def quantile(q: float) -> float:
        if total <= 0:
            return math.nan
        rank = q * total
        lower, below = 0.0, 0.0
        for bound, count in zip(bounds, cumulative, strict=True):
            if count >= rank:
                if math.isinf(bound):
                    return lower  # beyond the last finite bucket: its bound is all one can say
                return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
            lower, below = bound, count
        return lower

    within = dict(zip(bounds, cumulative, strict=True)).get(0.002, math.nan)
    return HistogramSummary(int(total), quantile(0.5), quantile(0.99), within / total if total else math.nan)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- objects --------------------------------------------------------------------------------------------


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "api", "image": image}]},
    }


def deployment(name: str, image: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
        },
    }


def collection(kind: str) -> str:
    if kind == "Pod":
        return f"/api/v1/namespaces/{NAMESPACE}/pods"
    return f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"


def image_policy() -> dict[str, Any]:
    """A policy of the usual shape: size, layer count and a non-root user, enforced on the bench namespace."""
    return {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "mode": "Enforce",
            "match": {"namespaces": [NAMESPACE]},
            "rules": {"maxCompressedSize": "200Mi", "maxLayers": 20, "requireNonRootUser": True},
        },
    }


# --- the apiserver, as admin ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    variant: str
    kind: str
    round: int
    seconds: float
    status: int


class Apiserver:
    """Admin REST calls with the admin client certificate; one keep-alive httpx client per client thread."""

    def __init__(self, plane: ControlPlane, clients: int) -> None:
        pki = plane.workdir / "pki"
        self.context = ssl.create_default_context(cafile=str(plane.ca_file))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.server = plane.server
        self.http = self._new_client()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client")
        self._local = threading.local()
        self._all: list[httpx.Client] = [self.http]
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server, verify=self.context, timeout=60.0)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for client in self._all:
            client.close()

    def _thread_client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
            with self._lock:
                self._all.append(client)
        return client

    def create(self, kind: str, body: dict[str, Any], *, dry_run: bool = False) -> tuple[int, str, float]:
        """POST one object from the calling thread; (status, text, seconds)."""
        client = self._thread_client()
        payload = json.dumps(body).encode()  # serialised before the clock starts, as a client would
        params = {"dryRun": "All"} if dry_run else None
        started = time.perf_counter()
        response = client.post(
            collection(kind), content=payload, params=params, headers={"Content-Type": "application/json"}
        )
        elapsed = time.perf_counter() - started
        return response.status_code, response.text, elapsed

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

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code >= 300:
            raise TestbedError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
        result: dict[str, Any] = response.json()
        return result

    def delete(self, path: str) -> None:
        response = self.http.delete(path)
        if response.status_code not in (200, 202, 404):
            raise TestbedError(f"DELETE {path} answered {response.status_code}: {response.text[:500]}")

    def exists(self, path: str) -> bool:
        return self.http.get(path).status_code == 200

    def count(self, path: str) -> int:
        """Objects in a collection: one item and the apiserver's remainingItemCount, not a full LIST."""
        response = self.http.get(path, params={"limit": 1}, headers={"Accept": METADATA_ONLY})
        response.raise_for_status()
        listed = response.json()
        items = len(listed.get("items") or ())  # an empty metadata-only list has "items": null
        metadata = listed.get("metadata") or {}
        if not metadata.get("continue"):
            return items
        if metadata.get("remainingItemCount") is not None:
            return items + int(metadata["remainingItemCount"])
        response = self.http.get(path, headers={"Accept": METADATA_ONLY})
        response.raise_for_status()
        return len(response.json().get("items") or ())


# --- the two webhooks -----------------------------------------------------------------------------------


class AlwaysAllowProcess:
    """bench/always_allow.py as a child process on its own port, with slimguard's certificate."""

    def __init__(self, *, cert_file: Path, key_file: Path, ca: CertificateAuthority, workdir: Path) -> None:
        self.port = free_port()
        self.ca = ca
        self.process = ManagedProcess(
            "always-allow",
            [
                sys.executable,
                str(ALWAYS_ALLOW),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--cert-file",
                str(cert_file),
                "--key-file",
                str(key_file),
            ],
            log_file=workdir / "always-allow.log",
        )
        self.http = httpx.Client(
            base_url=f"https://127.0.0.1:{self.port}",
            verify=ssl.create_default_context(cadata=ca.cert_pem.decode()),
            timeout=5,
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/validate"

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def start(self) -> AlwaysAllowProcess:
        self.process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.process.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/readyz").status_code == 200:
                    return self
            time.sleep(0.1)
        raise TestbedError(f"always-allow did not become ready:\n{self.process.tail()}")

    def stop(self) -> None:
        self.http.close()
        self.process.stop()

    def reviews(self) -> int:
        return int(self.http.get("/stats").json()["reviews"])

    def last_review(self, kind: str) -> dict[str, Any]:
        response = self.http.get(f"/last/{kind}")
        response.raise_for_status()
        review: dict[str, Any] = response.json()
        return review


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


class Bench:
    """Everything one run shares: the apiserver, both webhooks, the images, and which variant is registered."""

    def __init__(
        self,
        *,
        api: Apiserver,
        registry: Registry,
        ca: CertificateAuthority,
        slimguard: WebhookReplicas,
        always: AlwaysAllowProcess,
        slim: FixtureImage,
        replicas: int,
        quiet: Quiet,
    ) -> None:
        self.quiet = quiet
        self.api = api
        self.registry = registry
        self.ca = ca
        self.slimguard = slimguard
        self.always = always
        self.slim = slim
        self.replicas = replicas
        self.pods_created = 0
        self.deployments_created = 0
        self.serial = 0

    @property
    def slimguard_pid(self) -> int:
        pid = self.slimguard.processes[0].pid
        assert pid is not None
        return pid

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial:05d}"

    def slimguard_metrics(self) -> str:
        return self.slimguard.metrics(0)

    def counters(self) -> tuple[int, int]:
        """Reviews answered so far by (slimguard, always-allow)."""
        return reviews_total(self.slimguard_metrics()), self.always.reviews()

    def snapshot(self, *, cpu_first: bool) -> Snapshot:
        """Both webhooks' counters and CPU. /metrics is served by a thread of the slimguard process itself, so
        the scrape is kept outside the CPU window: CPU read last at a window's start, first at its end."""

        def cpu() -> tuple[float, float]:
            return cpu_seconds(self.slimguard_pid), cpu_seconds(self.always.pid)

        first = cpu() if cpu_first else None
        metrics, always_reviews = self.slimguard_metrics(), self.always.reviews()
        return Snapshot(decision_buckets(metrics), (reviews_total(metrics), always_reviews), first or cpu())

    def register(self, variant: str) -> None:
        """Point the one ValidatingWebhookConfiguration at a variant (or remove it), and wait until it is live."""
        self.api.delete(f"{CONFIGURATIONS_PATH}/{CONFIGURATION}")
        if variant != "none":
            url = self.slimguard.url if variant == "slimguard" else self.always.url
            # failurePolicy Fail: a review that does not happen fails the create, so none can pass unseen.
            configuration = webhook_configuration(
                TEMPLATE, url=url, ca_pem=self.ca.cert_pem, name=CONFIGURATION, failure_policy="Fail"
            )
            self.api.post(CONFIGURATIONS_PATH, configuration)
        self._wait_live(variant)

    def _wait_live(self, variant: str) -> None:
        """A server-side dry-run create reaches the variant's webhook and no other (the apiserver's informer lags)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            slim_before, always_before = self.counters()
            status, text, _ = self.api.create("Pod", pod("probe", self.slim.ref), dry_run=True)
            slim_after, always_after = self.counters()
            reached = {
                "none": slim_after == slim_before and always_after == always_before,
                "always-allow": always_after > always_before and slim_after == slim_before,
                "slimguard": slim_after > slim_before and always_after == always_before,
            }[variant]
            if status == 201 and reached:
                return
            time.sleep(0.2)
        raise TestbedError(f"the apiserver did not switch to the {variant} webhook in 30 s (last probe: {text[:300]})")

    def jobs(self, per_kind: int, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """Pods and Deployments alternating, so both kinds see the same moments of the batch."""
        jobs: list[tuple[str, dict[str, Any]]] = []
        for _ in range(per_kind):
            jobs.append(("Pod", pod(self.name(f"{prefix}-pod"), self.slim.ref)))
            jobs.append(("Deployment", deployment(self.name(f"{prefix}-deploy"), self.slim.ref, self.replicas)))
        return jobs

    def run_batch(self, variant: str, round_: int, per_kind: int, warmup: int) -> Batch:
        """Register the variant, warm the apiserver's connections to it (unrecorded), create, then let the
        controller-manager finish the ReplicaSets and Pods, so no batch inherits another's tail."""
        self.register(variant)
        prefix = variant.replace("-", "")
        before = self.snapshot(cpu_first=False)
        deployments = 0
        if warmup:
            warm = self.api.batch(variant, -1, self.jobs(warmup, prefix))
            deployments += self._count(warm)
        samples = self.api.batch(variant, round_, self.jobs(per_kind, prefix))
        deployments += self._count(samples)
        self.settle()
        return Batch(variant, samples, before, self.snapshot(cpu_first=True), deployments)

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


# --- results --------------------------------------------------------------------------------------------


@dataclass
class LatencyRow:
    variant: str
    kind: str
    count: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


@dataclass
class DriveResult:
    """A direct drive of one webhook: what the client saw and what the webhook process spent."""

    reviews: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    webhook_cpu: float = 0.0  # share of one core over the window
    client_cpu: float = 0.0
    first_error: str = ""

    @property
    def per_second(self) -> float:
        return self.reviews / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    clients: int
    requests: int
    rounds: int
    replicas: int
    machine: str = ""
    load_before: str = ""
    load_after: str = ""
    concurrent_benchmarks: list[str] = field(default_factory=list)
    waited_seconds: float = 0.0  # for other benchmarks to finish
    redone: int = 0  # batches or drives measured again because another benchmark ran meanwhile
    latency: list[LatencyRow] = field(default_factory=list)
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    round_ratio_spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    webhook_cpu_ms_per_review: dict[str, float] = field(default_factory=dict)
    webhook_reviews: dict[str, int] = field(default_factory=dict)
    decision: HistogramSummary | None = None
    decision_at_saturation: HistogramSummary | None = None
    decision_alone: HistogramSummary | None = None
    watch_cpu_ms_per_deployment: float = math.nan
    cold_images: int = 0
    cold_requests_ok: list[int] = field(default_factory=list)
    cold_requests_all: list[int] = field(default_factory=list)
    cold_token_requests: int = 0
    cold_breakdown: dict[str, int] = field(default_factory=dict)
    cold_create_ms: list[float] = field(default_factory=list)
    cold_again_requests: int = 0
    cold_again_create_ms: list[float] = field(default_factory=list)
    drive_concurrency: int = 0
    drive: dict[str, DriveResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def latency_rows(samples: Sequence[Sample]) -> list[LatencyRow]:
    rows = []
    for variant in VARIANTS:
        for kind in KINDS:
            mine = [s for s in samples if s.variant == variant and s.kind == kind]
            ok = [s.seconds * 1000 for s in mine if s.status == 201]
            rows.append(
                LatencyRow(
                    variant,
                    kind,
                    len(mine),
                    len(mine) - len(ok),
                    percentile(ok, 0.5),
                    percentile(ok, 0.99),
                    sum(ok) / len(ok) if ok else math.nan,
                )
            )
    return rows


def ratios(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """slimguard/always-allow and always-allow/none, of p50, p99 and mean, per kind."""
    rows = {(r.variant, r.kind): r for r in latency_rows(samples)}
    found: dict[str, dict[str, float]] = {}
    for top, bottom in (("slimguard", "always-allow"), ("always-allow", "none")):
        for kind in KINDS:
            a, b = rows[(top, kind)], rows[(bottom, kind)]
            found[f"{top} / {bottom}, {kind}"] = {
                "p50": a.p50_ms / b.p50_ms,
                "p99": a.p99_ms / b.p99_ms,
                "mean": a.mean_ms / b.mean_ms,
            }
    return found


def round_spread(samples: Sequence[Sample], rounds: int) -> dict[str, tuple[float, float]]:
    """Lowest and highest per-round p50 ratio (both kinds pooled): how much noise one round sees."""
    spread: dict[str, tuple[float, float]] = {}
    for top, bottom in (("slimguard", "always-allow"), ("always-allow", "none")):
        values = []
        for r in range(rounds):
            p50 = {
                variant: percentile(
                    [s.seconds for s in samples if s.variant == variant and s.round == r and s.status == 201], 0.5
                )
                for variant in (top, bottom)
            }
            values.append(p50[top] / p50[bottom])
        spread[f"{top} / {bottom}"] = (min(values), max(values))
    return spread


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} ms"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(r: Results) -> str:
    parts = [
        f"Machine: {r.machine}; load average before {r.load_before}, after {r.load_after}"
        + (
            f"; other benchmarks seen: {', '.join(r.concurrent_benchmarks)} (waited {r.waited_seconds:.0f} s for "
            f"them; {r.redone} batches or drives measured again)"
            if r.concurrent_benchmarks
            else "; no other benchmark ran"
        ),
        f"{r.clients} concurrent clients, {r.requests} creates per variant and kind in {r.rounds} interleaved rounds; "
        f"Deployments with replicas: {r.replicas}.",
        "",
        "Create latency seen by the clients (HTTP POST to the apiserver until its answer):",
        "",
        _table(
            ("Variant", "Kind", "Creates", "Errors", "p50", "p99", "mean"),
            [
                (x.variant, x.kind, str(x.count), str(x.errors), _ms(x.p50_ms), _ms(x.p99_ms), _ms(x.mean_ms))
                for x in r.latency
            ],
        ),
        "",
    ]
    ratio_rows = []
    for name, values in r.ratios.items():
        target = f"<= {TARGET_RATIO:.2f}" if name.startswith("slimguard") else ""
        met = _met(max(values["p50"], values["p99"]) <= TARGET_RATIO) if target else ""
        ratio_rows.append((name, f"{values['p50']:.3f}", f"{values['p99']:.3f}", f"{values['mean']:.3f}", target, met))
    parts += [_table(("Ratio", "p50", "p99", "mean", "Target", "Met"), ratio_rows), ""]
    parts.append(
        "Per-round p50 ratio (both kinds), lowest-highest: "
        + "; ".join(f"{name} {low:.3f}-{high:.3f}" for name, (low, high) in r.round_ratio_spread.items())
    )
    parts.append(
        "Webhook CPU per review during its own batches: "
        + "; ".join(
            f"{name} {ms:.2f} ms ({r.webhook_reviews.get(name, 0)} reviews)"
            for name, ms in r.webhook_cpu_ms_per_review.items()
        )
        + ". slimguard's CPU while not registered (the other variants' batches), per Deployment created there: "
        f"{r.watch_cpu_ms_per_deployment:.2f} ms (its watches: work done for objects it does not review)"
    )
    parts.append("")
    rows: list[tuple[str, str, str, str]] = []
    decisions = (
        ("during the rounds", r.decision),
        ("direct drive, 1 review in flight", r.decision_alone),
        (f"direct drive, {r.drive_concurrency} in flight", r.decision_at_saturation),
    )
    for label, summary in decisions:
        if summary is None:
            continue
        rows.append(
            (
                f"slimguard decision time, {label} ({summary.count} reviews)",
                f"p50 {summary.p50 * 1000:.2f} ms, p99 {summary.p99 * 1000:.2f} ms, "
                f"{summary.within_2ms * 100:.2f} % within 2 ms",
                f"p99 <= {TARGET_DECISION_P99 * 1000:.0f} ms" if label == "during the rounds" else "",
                _met(summary.p99 <= TARGET_DECISION_P99) if label == "during the rounds" else "",
            )
        )
    if r.cold_images:
        n = r.cold_images
        breakdown = ", ".join(f"{k} {v}" for k, v in r.cold_breakdown.items())
        rows.append(
            (
                f"Registry requests per never-seen image ({n} images; Deployment -> ReplicaSet -> Pod reviewed)",
                f"successful: mean {sum(r.cold_requests_ok) / n:.2f}, max {max(r.cold_requests_ok)}; with 401 "
                f"challenges: mean {sum(r.cold_requests_all) / n:.2f}, max {max(r.cold_requests_all)}; token "
                f"requests {r.cold_token_requests / n:.2f} per image ({breakdown})",
                "",
                "",
            )
        )
        rows.append(
            (
                "Same images again (warm): registry requests",
                f"{r.cold_again_requests} in all",
                "0",
                _met(r.cold_again_requests == 0),
            )
        )
        rows.append(
            (
                "Deployment create on a never-seen image / again (client)",
                f"p50 {percentile(r.cold_create_ms, 0.5):.1f} ms, max {max(r.cold_create_ms):.1f} ms / "
                f"p50 {percentile(r.cold_again_create_ms, 0.5):.1f} ms, max {max(r.cold_again_create_ms):.1f} ms",
                "",
                "",
            )
        )
    for name, drive in r.drive.items():
        has_target = name == "slimguard"
        rows.append(
            (
                f"{name}: reviews/s, one process pinned to core {WEBHOOK_CORE}, client on core {CLIENT_CORE} "
                f"({r.drive_concurrency} in flight)",
                f"{drive.per_second:.0f}/s ({drive.reviews} in {drive.seconds:.1f} s, {drive.errors} errors); "
                f"webhook core busy {drive.webhook_cpu * 100:.0f} %, client core {drive.client_cpu * 100:.0f} %; "
                f"latency at the webhook p50 {drive.p50_ms:.1f} ms, p99 {drive.p99_ms:.1f} ms",
                f">= {TARGET_REVIEWS_PER_SECOND:.0f}/s" if has_target else "",
                _met(drive.per_second >= TARGET_REVIEWS_PER_SECOND) if has_target else "",
            )
        )
    parts += [_table(("Measure", "Result", "Target", "Met"), rows), ""]
    parts.append("Phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items()))
    if r.errors:
        parts.append(f"{len(r.errors)} failed creates; first: {r.errors[0]}")
    return "\n".join(parts)


# --- direct drive (runs in a child process pinned to the client core) ---------------------------------


def drive(
    url: str,
    ca_pem: str,
    bodies: list[bytes],
    concurrency: int,
    warmup: float,
    duration: float,
    webhook_pid: int,
) -> DriveResult:
    os.sched_setaffinity(0, {CLIENT_CORE})
    return asyncio.run(_drive(url, ca_pem, bodies, concurrency, warmup, duration, webhook_pid))


async def _drive(
    url: str,
    ca_pem: str,
    bodies: list[bytes],
    concurrency: int,
    warmup: float,
    duration: float,
    webhook_pid: int,
) -> DriveResult:
    import aiohttp  # only the child needs it

    result = DriveResult()
    latencies: list[float] = []
    measuring = False
    stop = asyncio.Event()
    next_body = 0

    async def window() -> None:
        nonlocal measuring
        await asyncio.sleep(warmup)
        webhook_before, client_before, started = cpu_seconds(webhook_pid), time.process_time(), time.monotonic()
        measuring = True
        await asyncio.sleep(duration)
        measuring = False
        result.seconds = time.monotonic() - started
        result.webhook_cpu = (cpu_seconds(webhook_pid) - webhook_before) / result.seconds
        result.client_cpu = (time.process_time() - client_before) / result.seconds
        stop.set()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_body
        while not stop.is_set():
            body = bodies[next_body % len(bodies)]
            next_body += 1
            counted = measuring
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    status, answer = response.status, await response.read()
            except aiohttp.ClientError as error:
                status, answer = 0, repr(error).encode()
            elapsed = time.perf_counter() - started
            if not (counted and measuring):
                continue
            if status == 200 and b'"allowed": true' in answer:
                result.reviews += 1
                latencies.append(elapsed * 1000)
            else:
                result.errors += 1
                result.first_error = result.first_error or f"{status}: {answer[:300]!r}"

    context = ssl.create_default_context(cadata=ca_pem)
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        timer = asyncio.create_task(window())
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        await timer
    result.p50_ms, result.p99_ms = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return result


def replay_bodies(captured: dict[str, dict[str, Any]], count: int) -> list[bytes]:
    """The AdmissionReviews the apiserver sent, each with its own uid and object name, serialised once."""
    bodies = []
    kinds = list(captured)
    for n in range(count):
        review = json.loads(json.dumps(captured[kinds[n % len(kinds)]]))
        request = review["request"]
        name = f"drive-{n:05d}"
        request["uid"] = str(uuid.uuid4())
        request["name"] = name
        request["dryRun"] = False
        metadata = request["object"]["metadata"]
        metadata["name"] = name
        metadata.pop("generateName", None)
        metadata.pop("ownerReferences", None)  # a Pod the controller-manager made: replay it as a user's
        bodies.append(json.dumps(review).encode())
    return bodies


@contextlib.contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy samples the process meanwhile (collapsed stacks for flamegraph.pl); a no-op without a path."""
    if output is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    # Blocking sampling (py-spy pauses the process per sample): --nonblocking reads torn stacks under this load.
    command = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    process = subprocess.Popen([*command, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        if not output.exists():
            log(f"py-spy wrote no profile: {stderr.decode(errors='replace')[-500:]}")
        else:
            log(f"profile of pid {pid}: {output}")


def pin(pid: int, core: int) -> None:
    """`taskset -a`: every thread of the process, the ones it starts later included."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


def drive_webhook(
    url: str, pid: int, ca: CertificateAuthority, bodies: list[bytes], *, concurrency: int, seconds: float
) -> DriveResult:
    pin(pid, WEBHOOK_CORE)  # and it stays pinned: nothing measures it after this
    # A fresh process: the benchmark's own threads and the GIL stay out of the client's way.
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(drive, url, ca.cert_pem.decode(), bodies, concurrency, 2.0, seconds, pid)
        return future.result(timeout=seconds + 120)


# --- the run --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="slimguard-admission-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def other_benchmarks() -> list[str]:
    """Other benchmarks on the machine (their load would skew these numbers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = stat.read_bytes().split(b"\0")
            if any(part.endswith(b"audit_scale.py") for part in argv):
                found.append(f"audit_scale.py (pid {stat.parent.name})")
    return found


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"


def start_bench(stack: contextlib.ExitStack, work: Path, args: argparse.Namespace) -> Bench:
    """Control plane, registry, images, policy and both webhooks; slimguard enforcing with a warm cache."""
    ca = CertificateAuthority("slimguard admission bench CA")
    plane = stack.enter_context(ControlPlane(workdir=work / "control-plane", ca=ca))
    registry = stack.enter_context(
        Registry(storage_dir=work / "registry-storage", ca=ca, auth="token", workdir=work / "registry")
    )
    stack.callback(close_clients)
    api = Apiserver(plane, args.clients)
    stack.callback(api.close)
    log(f"control plane on {plane.server}, registry on {registry.host}")

    slim = push_image(registry.endpoint, "shop/bench-slim", "1.0", [busybox_files()], user="10001", cmd=["sh"])
    rooted = push_image(registry.endpoint, "shop/bench-root", "1.0", [{"/app/root.txt": b"runs as root"}])
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    plane.wait_established("imagepolicies.slimguard.dev")
    kubeconfig = install_rbac(plane, REPO / "deploy" / "kustomize" / "base", "webhook")
    api.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    deadline = time.monotonic() + 60
    while not api.exists(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"):
        if time.monotonic() > deadline:
            raise TestbedError("no default ServiceAccount in the bench namespace after 60 s")
        time.sleep(0.2)
    api.post("/apis/slimguard.dev/v1alpha1/imagepolicies", image_policy())

    replicas = WebhookReplicas(
        kubeconfig=str(kubeconfig),
        ca=ca,
        registry_ca_file=str(registry.ca_file),
        workdir=work,
        replicas=1,
        shutdown_delay=0.2,
    )
    stack.enter_context(replicas)
    always = AlwaysAllowProcess(cert_file=replicas.cert_file, key_file=replicas.key_file, ca=ca, workdir=work)
    stack.callback(always.stop)
    always.start()
    bench = Bench(
        api=api,
        registry=registry,
        ca=ca,
        slimguard=replicas,
        always=always,
        slim=slim,
        replicas=args.replicas,
        quiet=Quiet(not args.no_wait),
    )

    # Warm slimguard: the policy is loaded and enforced (a root image is denied) and the slim image inspected.
    bench.register("slimguard")
    deadline = time.monotonic() + 30
    while True:
        status, text, _ = api.create("Pod", pod("probe", rooted.ref), dry_run=True)
        if status == 403 and "slimguard denied" in text:
            break
        if time.monotonic() > deadline:
            raise TestbedError(f"slimguard does not enforce the bench policy (last answer {status}: {text[:300]})")
        time.sleep(0.3)
    status, text, _ = api.create("Pod", pod("probe", slim.ref), dry_run=True)
    if status != 201:
        raise TestbedError(f"slimguard did not admit the slim image: {status}: {text[:300]}")
    return bench


def measure_latency(bench: Bench, args: argparse.Namespace, results: Results) -> None:
    """One unrecorded round, then the measured rounds; every round runs every variant, the order rotating."""
    for variant in VARIANTS:
        bench.run_batch(variant, -1, args.clients, warmup=0)
    per_kind = math.ceil(args.requests / args.rounds)
    batches: list[Batch] = []
    with profiled(bench.slimguard_pid, args.profile / "slimguard-rounds.txt" if args.profile else None):
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
    # Decision times of slimguard's own batches (probes between batches excluded).
    decided: Counter[float] = Counter()
    for batch in batches:
        if batch.variant == "slimguard":
            decided.update(
                {bound: count - batch.before.buckets.get(bound, 0.0) for bound, count in batch.after.buckets.items()}
            )
    results.decision = summarise_histogram({}, dict(decided))
    for index, name in enumerate(("slimguard", "always-allow")):
        mine = [batch for batch in batches if batch.variant == name]
        reviews = sum(b.after.reviews[index] - b.before.reviews[index] for b in mine)
        cpu = sum(b.after.cpu[index] - b.before.cpu[index] for b in mine)
        results.webhook_reviews[name] = reviews
        results.webhook_cpu_ms_per_review[name] = cpu * 1000 / max(reviews, 1)
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
            status, text, seconds = api.create("Deployment", deployment(bench.name(prefix), image.ref, args.replicas))
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
        before = decision_buckets(bench.slimguard_metrics())
        with profiled(
            bench.slimguard_pid, args.profile / f"slimguard-drive-{concurrency}.txt" if args.profile else None
        ):
            drove = drive_webhook(
                bench.slimguard.url, bench.slimguard_pid, bench.ca, bodies, concurrency=concurrency, seconds=seconds
            )
        return drove, summarise_histogram(before, decision_buckets(bench.slimguard_metrics()))

    # One review at a time: the decision's own time, with no other request interleaved on the event loop.
    _, results.decision_alone = bench.quiet.run(
        "the drive with 1 in flight", lambda: slimguard(1, min(args.drive_seconds, 3.0))
    )
    results.drive["slimguard"], results.decision_at_saturation = bench.quiet.run(
        "the slimguard drive", lambda: slimguard(args.drive_concurrency, args.drive_seconds)
    )
    results.drive["always-allow"] = bench.quiet.run(
        "the always-allow drive",
        lambda: drive_webhook(
            bench.always.url,
            bench.always.pid,
            bench.ca,
            bodies,
            concurrency=args.drive_concurrency,
            seconds=args.drive_seconds,
        ),
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
        work = stack.enter_context(workdir(args.keep))
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
