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

    python bench/audit_scale.py                      # 2000 Deployments, 20 namespaces, 200 images
    python bench/audit_scale.py --quick              # = --deployments 200 --namespaces 4 --images 20
    python bench/audit_scale.py --deployments 10000 --namespaces 100 --images 1000 --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, oci
from slimguard_testbed.images import FixtureImage, busybox_files, close_clients, push_image
from slimguard_testbed.install import install_controller_rbac
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError

REPO = Path(__file__).resolve().parents[1]
POLICY = "bench-slim"
STATUS = "slimguard.dev/status"
VIOLATIONS = "slimguard.dev/violations"
OWN_PREFIX = "slimguard.dev/"
NAMESPACE_PREFIX = "bench-"
KIB, MIB = 1024, 1024 * 1024
# The fat base: two incompressible layers (their sizes survive gzip), 23 MiB in all; the policy allows 24 MiB,
# so an image on it is over the limit once its own layers pass ~1 MiB, and always on a denied base.
FAT_LAYERS = (("rootfs", 20 * MIB), ("runtime", 3 * MIB))
MAX_COMPRESSED = "24Mi"
# One image in ten from scratch, four on the fat base, five on busybox.
FAMILIES = ("fat", "fat", "fat", "fat", "busybox", "busybox", "busybox", "busybox", "busybox", "scratch")
APP_LAYER_RANGE = (4 * KIB, 4 * MIB)  # log-uniform: many small apps, a few large ones
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_ONLY_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# What the controller watches with kopf: each is LISTed once before its WATCH starts.
LISTED_RESOURCES = ("deployments", "replicasets", "pods", "namespaces", "imagepolicies")
TARGET_RSS_MB = 150.0


def target_seconds(deployments: int) -> float:
    """The issue's targets: 30 s for the 2,000 of the first benchmark, 60 s for 10,000 (and beyond)."""
    return 30.0 if deployments <= 2000 else 60.0


MIN_REQUESTS_PER_IMAGE = 3  # HEAD (resolve the tag), GET manifest, GET config blob


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def incompressible(seed: str, size: int) -> bytes:
    """Reproducible bytes that gzip cannot shrink, so an image's size is what the recipe says."""
    return hashlib.shake_256(seed.encode()).digest(size)


# --- the apiserver, as admin -----------------------------------------------------------------------------

_SAMPLE = re.compile(
    r"^(?P<name>apiserver_request_(?:total|duration_seconds_sum))\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class RequestCounts:
    """The apiserver's own request counters at one moment: `apiserver_request_total` and the latency sums."""

    series: tuple[tuple[str, dict[str, str], float], ...]

    @classmethod
    def parse(cls, text: str) -> RequestCounts:
        found = []
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match:
                found.append((match["name"], dict(_LABEL.findall(match["labels"])), float(match["value"])))
        return cls(tuple(found))

    def _sum(self, metric: str, labels: dict[str, str]) -> float:
        return sum(
            value
            for name, have, value in self.series
            if name == metric and all(have.get(k) == v for k, v in labels.items())
        )

    def count(self, **labels: str) -> int:
        return int(self._sum("apiserver_request_total", labels))

    def by_code(self, **labels: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for name, have, value in self.series:
            if name == "apiserver_request_total" and all(have.get(k) == v for k, v in labels.items()):
                found[have.get("code", "?")] += int(value)
        return found

    def seconds(self, **labels: str) -> float:
        """Time the apiserver spent serving the matching requests (the latency histogram's sum)."""
        return self._sum("apiserver_request_duration_seconds_sum", labels)


class Apiserver:
    """The few admin calls the benchmark makes directly (httpx with the admin client certificate)."""

    def __init__(self, plane: ControlPlane) -> None:
        pki = plane.workdir / "pki"
        self.context = ssl.create_default_context(cafile=str(plane.ca_file))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.server = plane.server
        self.http = httpx.Client(base_url=self.server, verify=self.context, timeout=60.0)

    def close(self) -> None:
        self.http.close()

    def counts(self) -> RequestCounts:
        response = self.http.get("/metrics")
        response.raise_for_status()
        return RequestCounts.parse(response.text)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code >= 300:
            raise TestbedError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def metadata(self, plural: str = "deployments") -> list[dict[str, Any]]:
        """The metadata of every bench object of a kind: one metadata-only LIST across namespaces."""
        response = self.http.get(f"/apis/apps/v1/{plural}", headers={"Accept": METADATA_ONLY})
        response.raise_for_status()
        return [
            item["metadata"]
            for item in response.json()["items"]
            if item["metadata"]["namespace"].startswith(NAMESPACE_PREFIX)
        ]

    def count(self, path: str) -> int:
        """Objects in a collection: one item and the apiserver's remainingItemCount, not a LIST of 10,000."""
        response = self.http.get(path, params={"limit": 1}, headers={"Accept": METADATA_ONLY})
        response.raise_for_status()
        listed = response.json()
        metadata = listed.get("metadata") or {}
        items = len(listed.get("items") or ())
        if metadata.get("continue") and metadata.get("remainingItemCount") is not None:
            return items + int(metadata["remainingItemCount"])
        if not metadata.get("continue"):
            return items
        response = self.http.get(path, headers={"Accept": METADATA_ONLY})
        response.raise_for_status()
        return len(response.json().get("items") or ())

    async def create_many(self, objects: Sequence[tuple[str, dict[str, Any]]], *, concurrency: int = 16) -> None:
        """POST many objects at once: kubectl creates them one round trip at a time."""
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=self.server, verify=self.context, timeout=120.0, limits=limits) as client:
            gate = asyncio.Semaphore(concurrency)

            async def create(path: str, body: dict[str, Any]) -> None:
                async with gate:
                    response = await client.post(path, json=body)
                if response.status_code >= 300:
                    raise TestbedError(f"POST {path} answered {response.status_code}: {response.text[:500]}")

            await asyncio.gather(*(create(path, body) for path, body in objects))


# --- the operator process --------------------------------------------------------------------------------


def verdict_of(metadata: dict[str, Any]) -> str | None:
    """slimguard's verdict on an object: its status label, or the annotation builds before the label wrote."""
    return (metadata.get("labels") or {}).get(STATUS) or (metadata.get("annotations") or {}).get(STATUS)


def carries_own_annotations(metadata: dict[str, Any]) -> bool:
    return any(key.startswith(OWN_PREFIX) for key in metadata.get("annotations") or {})


class StatusWatch:
    """Which Deployments carry a verdict, kept by one metadata-only WATCH on a thread of its own.

    A LIST of 10,000 Deployments every half second cost the apiserver more CPU than the controller it was
    measuring (88 LISTs: 60 s of apiserver request time, on the two cores the audit needs); a watch costs it one
    encoding per change, and the main loop reads the count without asking the apiserver anything.
    """

    def __init__(self, api: Apiserver) -> None:
        self.http = httpx.Client(base_url=api.server, verify=api.context, timeout=httpx.Timeout(60.0, read=None))
        self.annotated: set[tuple[str, str]] = set()
        self.events = 0
        self.cpu_seconds = 0.0
        self.error: BaseException | None = None
        self._stop = False
        listed = self.http.get("/apis/apps/v1/deployments", headers={"Accept": METADATA_ONLY})
        listed.raise_for_status()
        decoded = listed.json()
        for item in decoded["items"]:
            self._note(item["metadata"])
        self._version = str(decoded["metadata"]["resourceVersion"])
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)
        self._thread.start()

    def _note(self, metadata: dict[str, Any], deleted: bool = False) -> None:
        key = (str(metadata.get("namespace")), str(metadata.get("name")))
        if not deleted and verdict_of(metadata) is not None:
            self.annotated.add(key)
        else:
            self.annotated.discard(key)

    def _run(self) -> None:
        params = {"watch": "true", "resourceVersion": self._version, "allowWatchBookmarks": "true"}
        try:
            with self.http.stream(
                "GET", "/apis/apps/v1/deployments", params=params, headers={"Accept": METADATA_ONLY_WATCH}
            ) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if not line:
                        continue
                    started = time.thread_time()
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        raise TestbedError(f"the status watch failed: {event['object']}")
                    if event["type"] != "BOOKMARK":
                        self.events += 1
                        self._note(event["object"]["metadata"], deleted=event["type"] == "DELETED")
                    self.cpu_seconds += time.thread_time() - started
        except BaseException as error:  # read by the main loop: the measurement is void
            if not self._stop:
                self.error = error

    def count(self) -> int:
        if self.error is not None:
            raise TestbedError(f"the status watch stopped: {self.error!r}")
        return len(self.annotated)

    def close(self) -> None:
        self._stop = True
        self.http.close()


class ProcessProbe:
    """CPU seconds and memory of one process (all its threads), read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")
        self.peak_rss_kib = 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM): now and the peak the kernel recorded since the process started."""
        values: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        self.peak_rss_kib = max(self.peak_rss_kib, values.get("VmHWM", 0))
        return values.get("VmRSS", 0), values.get("VmHWM", 0)

    def wait_quiet(
        self, *, timeout: float, window: float = 2.0, busy: float = 0.05, check: Callable[[], None] | None = None
    ) -> float:
        """Wait until the process used under ``busy`` of a core over ``window`` seconds; returns the time taken."""
        start = time.monotonic()
        samples: list[tuple[float, float]] = []
        while time.monotonic() - start < timeout:
            if check is not None:
                check()
            now = time.monotonic()
            samples.append((now, self.cpu_seconds()))
            old = [s for s in samples if now - s[0] >= window]
            if old:
                then, cpu_then = old[-1]
                if (samples[-1][1] - cpu_then) / (now - then) < busy:
                    return now - start
            time.sleep(0.25)
        raise TestbedError(f"the controller was still busy after {timeout:.0f}s")


def slimguard_executable() -> str:
    beside = Path(sys.executable).parent / "slimguard"
    found = str(beside) if beside.exists() else shutil.which("slimguard")
    if not found:
        raise TestbedError("no `slimguard` executable: pip install -e . into the virtualenv first")
    return found


_TICK = os.sysconf("SC_CLK_TCK")
_PROCESS_NAMES = ("kube-apiserver", "kube-controller-manager", "etcd", "docker-registry", "slimguard")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far: the whole machine (both cores, everyone's) and each of this run's processes."""

    machine_busy: float
    processes: dict[str, float]
    stolen: float = 0.0  # time the hypervisor gave this VM's cores to others: on a shared host, a slower machine

    @classmethod
    def take(cls) -> CpuSnapshot:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        stolen = values[7]
        busy = sum(values) - values[3] - values[4] - stolen  # all but idle, iowait and steal
        stats: dict[int, tuple[int, str, float]] = {}  # pid -> (parent, name, cpu seconds)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            # Three words: `python -m slimguard.cli.main` (another build, --controller-command) is slimguard too.
            head = " ".join(Path(arg.decode(errors="replace")).name for arg in argv[:3])
            name = next((known for known in _PROCESS_NAMES if known in head), head)
            stats[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / _TICK)
        # This run's processes are this process's descendants (the test bed starts them all).
        ours: set[int] = set()
        frontier = {os.getpid()}
        while frontier:
            frontier = {pid for pid, (parent, _, _) in stats.items() if parent in frontier} - ours
            ours |= frontier
        processes: dict[str, float] = {}
        for pid in ours:
            _, name, seconds = stats[pid]
            processes[name] = processes.get(name, 0.0) + seconds
        own = os.times()
        processes["benchmark (poller, token issuer)"] = own.user + own.system
        return cls(busy / _TICK, processes, stolen / _TICK)

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        used = {name: round(seconds - before.processes.get(name, 0.0), 1) for name, seconds in self.processes.items()}
        used["machine, all processes"] = round(self.machine_busy - before.machine_busy, 1)
        used["machine, other sessions"] = round(
            used["machine, all processes"]
            - sum(value for name, value in used.items() if not name.startswith("machine")),
            1,
        )
        used["machine, stolen by the hypervisor"] = round(self.stolen - before.stolen, 1)
        return used


# --- the workload ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchImage:
    image: FixtureImage
    family: str  # fat, busybox or scratch


def push_images(registry: Registry, count: int) -> tuple[FixtureImage, FixtureImage, list[BenchImage]]:
    """The two bases, then `count` distinct app images on them (or on nothing)."""
    endpoint = registry.endpoint
    fat = push_image(
        endpoint,
        "base/fat-runtime",
        "1.0",
        [
            oci.layer_from_files(
                {
                    "/etc/os-release": b'PRETTY_NAME="Fat runtime (slimguard bench)"\nID=debian\n',
                    f"/usr/lib/fat/{name}.bin": incompressible(f"fat-{name}", size),
                },
                created_by=f"ADD {name}.tar / # bench fat base",
            )
            for name, size in FAT_LAYERS
        ],
        cmd=["bash"],
    )
    busybox = push_image(
        endpoint,
        "base/busybox",
        "1.36",
        [oci.layer_from_files(busybox_files(), created_by="ADD busybox-rootfs.tar / # busybox-static")],
        cmd=["sh"],
    )
    low, high = (math.log(bound) for bound in APP_LAYER_RANGE)
    pushed: list[BenchImage] = []
    for n in range(count):
        family = FAMILIES[n % len(FAMILIES)]
        size = int(math.exp(random.Random(f"bench-app-{n}").uniform(low, high)))
        files: dict[str, oci.FileSpec] = {f"/app/app-{n:03d}": (incompressible(f"app-{n}", size), 0o755)}
        image = push_image(
            endpoint,
            f"shop/bench-{n:03d}",
            "1.0",
            [files],
            base={"fat": fat, "busybox": busybox, "scratch": None}[family],
            user=None if family == "fat" else "10001",
            cmd=[f"/app/app-{n:03d}"],
        )
        pushed.append(BenchImage(image, family))
    return fat, busybox, pushed


def namespace_names(count: int) -> list[str]:
    return [f"{NAMESPACE_PREFIX}{n:02d}" for n in range(count)]


def deployment(name: str, namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 0,  # no Pods: 2,000 Pending Pods would only load the controller-manager
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def image_policy(fat: FixtureImage, busybox: FixtureImage) -> dict[str, Any]:
    return {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "mode": "Audit",
            "match": {"namespaces": [f"{NAMESPACE_PREFIX}*"]},
            "rules": {"maxCompressedSize": MAX_COMPRESSED, "deniedBaseImages": [fat.ref]},
            "knownBaseImages": [fat.ref, busybox.ref],
        },
    }


# --- results --------------------------------------------------------------------------------------------


@dataclass
class Results:
    deployments: int
    namespaces: int
    images: int
    audit_interval: float
    setup_seconds: dict[str, float] = field(default_factory=dict)
    list_seconds: float = 0.0
    list_cpu_seconds: float = 0.0
    audit_seconds: float | None = None
    first_verdict_seconds: float | None = None
    half_seconds: float | None = None
    annotated: int = 0
    watch_events: int = 0  # what the benchmark's status watch decoded while the audit ran
    watch_cpu_seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)  # violations by rule, over all Deployments
    audit_cpu_seconds: float = 0.0
    audit_cpu_by_process: dict[str, float] = field(default_factory=dict)
    audit_load_average: float = 0.0
    patch_server_seconds_mean: float = 0.0
    registry_requests: int = 0
    registry_by_status: dict[str, int] = field(default_factory=dict)
    registry_other: int = 0  # /v2/ pings and the like, no repository
    token_requests: int = 0
    per_image_total_max: int = 0
    per_image_total_mean: float = 0.0
    per_image_ok_max: int = 0
    per_image_ok_mean: float = 0.0
    per_image_worst: dict[str, int] = field(default_factory=dict)
    per_image_ok_breakdown: dict[str, int] = field(default_factory=dict)
    base_candidate_requests: dict[str, int] = field(default_factory=dict)
    patches_deployments: int = 0
    events_created: int = 0
    policy_status_patches: int = 0
    replicaset_updates: int = 0
    replicaset_update_codes: dict[str, int] = field(default_factory=dict)
    replicasets_annotated: int = 0  # the Deployment controller copies a Deployment's annotations to its ReplicaSet
    deployments_annotated: int = 0  # Deployments carrying any slimguard.dev/ annotation after the audit
    write_server_seconds: float = 0.0  # apiserver request time of the audit's writes: PATCH deployments, PUT rs
    settled_seconds: float = 0.0  # policy created -> the controller-manager's last ReplicaSet update it caused
    cluster_cpu_until_settled: dict[str, float] = field(default_factory=dict)  # CPU by process over that time
    serviceaccount_reads: int = 0
    reaudit_wait_seconds: float = 0.0
    reaudits_seen: int = 0
    reaudit_patches_deployments: int = 0
    reaudit_events: int = 0
    reaudit_policy_status_patches: int = 0
    reaudit_registry_requests: int = 0
    reaudit_registry_breakdown: dict[str, int] = field(default_factory=dict)
    reaudit_serviceaccount_reads: int = 0
    reaudit_cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    rss_at_start_mb: float = 0.0
    rss_after_list_mb: float = 0.0
    rss_after_audit_mb: float = 0.0
    total_cpu_seconds: float = 0.0
    operator_errors: list[str] = field(default_factory=list)
    operator_log_lines: int = 0
    operator_log_bytes: int = 0
    operator_exit_code: int | None = None
    restart_load_average: float = 0.0
    restart_list_seconds: float = 0.0  # start -> every watched resource LISTed
    restart_first_seconds: float | None = None  # start -> the first workload re-evaluated
    restart_last_seconds: float | None = None  # start -> every workload re-evaluated
    restart_evaluations: int = 0
    restart_registry_requests: int = 0
    restart_registry_breakdown: dict[str, int] = field(default_factory=dict)
    restart_heads_per_tag_max: int = 0
    restart_token_requests: int = 0
    restart_patches_deployments: int = 0
    restart_patches_replicasets: int = 0
    restart_replicaset_updates: int = 0  # by the controller-manager
    restart_events: int = 0
    restart_upgrade: bool = False  # restarted with another build (--restart-command): an upgrade
    restart_cpu_seconds: float = 0.0
    restart_peak_rss_mb: float = 0.0
    restart_errors: list[str] = field(default_factory=list)


def per_image(requests: Sequence[Any], repositories: set[str]) -> dict[str, Counter[str]]:
    """Requests of each repository: every request as 'METHOD kind status'."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for request in requests:
        if request.repository in repositories:
            found[request.repository][f"{request.method} {request.kind} {request.status}"] += 1
    return found


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def table(results: Results) -> str:
    r = results
    n = r.deployments
    audit = f"{r.audit_seconds:.1f} s" if r.audit_seconds is not None else f"not done ({r.annotated}/{n} annotated)"
    rows = [
        ("Scale", f"{n} Deployments, {r.namespaces} namespaces, {r.images} images", "", ""),
        (
            "Policy created -> every Deployment annotated",
            f"{audit} (first at {_seconds(r.first_verdict_seconds)}, half at {_seconds(r.half_seconds)})",
            f"< {target_seconds(n):.0f} s",
            _met(None if r.audit_seconds is None else r.audit_seconds < target_seconds(n)),
        ),
        (
            "Verdicts (findings by rule)",
            ", ".join(f"{k} {v}" for k, v in sorted(r.verdicts.items()))
            + f" ({', '.join(f'{k} {v}' for k, v in sorted(r.findings.items()))})",
            "",
            "",
        ),
        (
            "Registry requests during the audit",
            f"{r.registry_requests} ({', '.join(f'{k}: {v}' for k, v in sorted(r.registry_by_status.items()))}); "
            f"+{r.token_requests} token requests",
            "",
            "",
        ),
        (
            "Registry requests per image, successful",
            f"max {r.per_image_ok_max}, mean {r.per_image_ok_mean:.2f}",
            f"{MIN_REQUESTS_PER_IMAGE} (HEAD + manifest + config)",
            _met(r.per_image_ok_max <= MIN_REQUESTS_PER_IMAGE),
        ),
        (
            "Registry requests per image, with 401 challenges",
            f"max {r.per_image_total_max}, mean {r.per_image_total_mean:.2f}",
            "",
            "",
        ),
        (
            "Base candidates (requests each)",
            ", ".join(f"{k}: {v}" for k, v in r.base_candidate_requests.items()),
            "",
            "",
        ),
        (
            "PATCH deployments per workload (audit)",
            f"{r.patches_deployments / n:.2f} ({r.patches_deployments} for {n})",
            "1",
            _met(r.patches_deployments <= n),
        ),
        (
            "apiserver time per PATCH deployments (server side, mean)",
            f"{r.patch_server_seconds_mean * 1000:.0f} ms",
            "",
            "",
        ),
        (
            "Other apiserver traffic (audit)",
            f"{r.events_created} Events, {r.policy_status_patches} policy status PATCHes, "
            f"{r.serviceaccount_reads} ServiceAccount GETs",
            "",
            "",
        ),
        (
            "ReplicaSet PUTs by the controller-manager (audit), per verdict",
            f"{r.replicaset_updates / n:.2f} ({r.replicaset_updates}: "
            + ", ".join(f"{code} {count}" for code, count in sorted(r.replicaset_update_codes.items()))
            + f"); {r.replicasets_annotated} ReplicaSets carry slimguard annotations",
            "~0 for compliant workloads",
            "",
        ),
        (
            f"Cluster CPU, policy created -> last ReplicaSet update ({r.settled_seconds:.1f} s): kube-apiserver + "
            "controller-manager + etcd",
            f"{cluster_cpu(r):.1f} s ({1000 * cluster_cpu(r) / n:.1f} ms per workload; "
            + ", ".join(f"{name} {r.cluster_cpu_until_settled.get(name, 0.0):.1f}" for name in CLUSTER_PROCESSES)
            + f"; slimguard {r.cluster_cpu_until_settled.get('slimguard', 0.0):.1f}, other sessions "
            f"{r.cluster_cpu_until_settled.get('machine, other sessions', 0.0):.1f})",
            "",
            "",
        ),
        (
            "apiserver request time of those writes (Deployment PATCHes + ReplicaSet PUTs)",
            f"{r.write_server_seconds:.1f} s; kube-apiserver CPU during the audit "
            f"{r.audit_cpu_by_process.get('kube-apiserver', 0.0):.1f} s "
            f"({1000 * r.audit_cpu_by_process.get('kube-apiserver', 0.0) / n:.1f} ms per workload)",
            "",
            "",
        ),
        (
            f"Unchanged re-audit (interval {r.audit_interval:g} s, {r.reaudits_seen} seen in "
            f"{r.reaudit_wait_seconds:.0f} s)",
            f"{r.reaudit_patches_deployments} PATCH deployments, {r.reaudit_events} Events, "
            f"{r.reaudit_policy_status_patches} status PATCHes, {r.reaudit_registry_requests} registry requests, "
            f"{r.reaudit_serviceaccount_reads} ServiceAccount GETs",
            "0 workload writes",
            _met(r.reaudits_seen > 0 and r.reaudit_patches_deployments == 0),
        ),
        (
            "Controller CPU",
            f"list {r.list_cpu_seconds:.1f} s, audit {r.audit_cpu_seconds:.1f} s, "
            f"re-audit {r.reaudit_cpu_seconds / max(r.reaudits_seen, 1):.1f} s each; "
            f"total {r.total_cpu_seconds:.1f} s",
            "",
            "",
        ),
        (
            "Controller peak RSS (VmHWM)",
            f"{r.peak_rss_mb:.0f} MB (at start-up {r.rss_at_start_mb:.0f} MB, after list {r.rss_after_list_mb:.0f} MB, "
            "after audit "
            f"{r.rss_after_audit_mb:.0f} MB)",
            f"< {TARGET_RSS_MB:.0f} MB",
            _met(r.peak_rss_mb < TARGET_RSS_MB),
        ),
        (
            "Controller errors in its log",
            f"{len(r.operator_errors)}; exit code {r.operator_exit_code}; log {r.operator_log_lines} lines, "
            f"{r.operator_log_bytes / 1e6:.1f} MB",
            "0",
            _met(not r.operator_errors),
        ),
    ]
    if r.restart_evaluations or r.restart_list_seconds:
        rows += [
            (
                "Restart: start -> first / last workload re-verified",
                f"{_seconds(r.restart_first_seconds)} / {_seconds(r.restart_last_seconds)} "
                f"(listed everything at {r.restart_list_seconds:.1f} s; {r.restart_evaluations} evaluations)",
                "",
                "",
            ),
            (
                "Restart: registry requests",
                f"{r.restart_registry_requests} ("
                + ", ".join(f"{k} {v}" for k, v in r.restart_registry_breakdown.items())
                + f"); +{r.restart_token_requests} token requests",
                "<= 1 HEAD per tag; no manifest or blob read (the facts are in ImageReports)",
                _met(
                    r.restart_heads_per_tag_max <= 1
                    and not any(what.startswith("GET ") for what in r.restart_registry_breakdown)
                ),
            ),
            (
                "Restart: writes",
                f"{r.restart_patches_deployments} PATCH deployments, {r.restart_patches_replicasets} PATCH "
                f"replicasets, {r.restart_events} Events; controller-manager: {r.restart_replicaset_updates} "
                "ReplicaSet PUTs" + (" (an upgrade: restarted with --restart-command)" if r.restart_upgrade else ""),
                "<= 1 PATCH per Deployment, 0 Events" if r.restart_upgrade else "0",
                _met(r.restart_patches_deployments <= (n if r.restart_upgrade else 0) and r.restart_events == 0),
            ),
            (
                "Restart: controller CPU, peak RSS",
                f"{r.restart_cpu_seconds:.1f} s, {r.restart_peak_rss_mb:.0f} MB",
                f"< {TARGET_RSS_MB:.0f} MB",
                _met(r.restart_peak_rss_mb < TARGET_RSS_MB),
            ),
        ]
    header = ("Measure", "Result", "Target", "Met")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


CLUSTER_PROCESSES = ("kube-apiserver", "kube-controller-manager", "etcd")


def cluster_cpu(results: Results) -> float:
    """What the cluster itself spent on the verdicts, from the policy's creation until it was quiet again."""
    return sum(results.cluster_cpu_until_settled.get(name, 0.0) for name in CLUSTER_PROCESSES)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# --- the run --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="slimguard-bench-"))
    try:
        yield path
    except BaseException:
        log(f"failed: kept {path} (logs of the controller, apiserver and registry are in it)")
        raise
    if keep:
        log(f"kept {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace) -> Results:
    results = Results(args.deployments, args.namespaces, args.images, args.audit_interval)
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(workdir(args.keep))
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
        asyncio.run(api.create_many([("/api/v1/namespaces", {"metadata": {"name": name}}) for name in namespaces]))
        objects = []
        for n in range(args.deployments):
            namespace = namespaces[n % len(namespaces)]
            path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
            objects.append((path, deployment(f"app-{n:04d}", namespace, images[n % len(images)].image.ref)))
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
        with profiled(operator.pid, args.profile / "list.txt" if args.profile else None):
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
        before = api.counts()
        cpu_before = probe.cpu_seconds()
        machine_before = CpuSnapshot.take()
        results.audit_load_average = os.getloadavg()[0]
        audit_profile = profiled(operator.pid, args.profile / "audit.txt" if args.profile else None)
        audit_profile.__enter__()
        started = time.monotonic()
        api.post("/apis/slimguard.dev/v1alpha1/imagepolicies", image_policy(fat, busybox))
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
        census = api.metadata()  # one JSON LIST, decoded in full
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
        after = api.counts()
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
            1 for metadata in api.metadata("replicasets") if carries_own_annotations(metadata)
        )
        patch_seconds = after.seconds(verb="PATCH", resource="deployments") - before.seconds(
            verb="PATCH", resource="deployments"
        )
        results.patch_server_seconds_mean = patch_seconds / max(results.patches_deployments, 1)
        results.write_server_seconds = patch_seconds + after.seconds(**rs_labels) - before.seconds(**rs_labels)

        # --- an unchanged re-audit ---------------------------------------------------------------------
        mark = registry.mark()
        before = api.counts()
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
        after = api.counts()
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
    last, since = api.counts().count(**labels), time.monotonic()
    while time.monotonic() - since < quiet_seconds:
        if time.monotonic() > deadline:
            raise TestbedError(f"the controller-manager was still updating ReplicaSets after {timeout:.0f}s")
        time.sleep(0.5)
        now = api.counts().count(**labels)
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
    before_start = api.counts()
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
        now = api.counts()
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
    total = 0.0
    for line in http.get(url).text.splitlines():
        if line.startswith("slimguard_evaluations_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


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
    before = api.counts()
    port = free_port()
    results.restart_load_average = os.getloadavg()[0]
    log_file = work / "operator-restarted.log"
    operator, probe, started, before_start = start_controller(
        api, [*argv, f"--metrics-port={port}"], log_file, stack, "slimguard-controller-restarted"
    )
    url = f"http://127.0.0.1:{port}/metrics"
    with (
        httpx.Client(timeout=30) as http,
        profiled(operator.pid, args.profile / "restart.txt" if args.profile else None),
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
    after = api.counts()
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
        f"restart: first re-verified at {_seconds(results.restart_first_seconds)}, "
        f"last at {_seconds(results.restart_last_seconds)} ({len(tags)} tags)"
    )


@contextlib.contextmanager
def profiled(pid: int | None, output: Path | None) -> Iterator[None]:
    """py-spy samples the process meanwhile (collapsed stacks, one line per stack); a no-op without a path.

    Profiled runs are for where the time goes, not for timings: blocking sampling slows the process down.
    """
    if output is None or pid is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    # --gil: only samples that hold the GIL, i.e. the one core Python code can use.
    command = [py_spy, "record", "--pid", str(pid), "--rate", "100", "--gil", "--format", "raw"]
    command += ["--output", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        if not output.exists():
            log(f"py-spy wrote no profile: {stderr.decode(errors='replace')[-500:]}")
        else:
            log(f"profile of pid {pid}: {output}")


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
    print(table(results))
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
