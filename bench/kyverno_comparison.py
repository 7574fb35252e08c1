"""slimguard side by side with Kyverno's `block-large-images`, on one apiserver, one registry, in one run.

Builds Kyverno v1.19.1 from its Go module (cached in ~/.cache/slimguard/kyverno-v1.19.1, like the Kubernetes
binaries), starts the test bed (control plane, token-auth registry with the fixture images), runs Kyverno out of
cluster with its own sample policy (sum of `manifest.layers[*].size` below 200Mi, Enforce) and one `slimguard
webhook` replica with an ImagePolicy of the same limit, and measures:

1. **latency and cost**: Pod and Deployment creates with no webhook, an always-allow webhook on the same TLS path
   (bench/always_allow.py), Kyverno and slimguard, one registered at a time, interleaved in rounds; sequential and
   with N concurrent clients; p50/p99 per create, registry requests and token requests per create (the registry's
   access log and the token issuer's), CPU seconds and peak RSS of Kyverno and of slimguard's webhook. Then the
   same with the registry behind a loopback TCP proxy that delays every chunk towards the registry by 50 ms
   (the round trip of a remote registry);
2. **verdicts**, scenario by scenario, through each tool alone (server-side dry-run creates): what it decides and
   the message the user sees.

Tables go to stdout (and --json); bench/README.md and docs/comparison.md quote one run. Not a test: nothing is
asserted.

    python bench/kyverno_comparison.py                   # both parts
    python bench/kyverno_comparison.py --creates 40 --rounds 2 --clients 8 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from admission_latency import (
    CONFIGURATIONS_PATH,
    NAMESPACE,
    TEMPLATE,
    AlwaysAllowProcess,
    Apiserver,
    machine,
    percentile,
    reviews_total,
)
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, oci
from slimguard_testbed.images import close_clients
from slimguard_testbed.images.publish import build_fixture_cache, publish_fixture_images
from slimguard_testbed.images.published import FixtureImage, FixtureImages, fixture_image
from slimguard_testbed.install import install_rbac
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError
from slimguard_testbed.webhook import WebhookReplicas, webhook_configuration

REPO = Path(__file__).resolve().parents[1]
KYVERNO_VERSION = "v1.19.1"
KYVERNO_MODULE = "github.com/kyverno/kyverno"
# Kyverno's go.mod replaces this one module; a throw-away module building it must say the same.
KYVERNO_REPLACE = (
    "k8s.io/pod-security-admission => github.com/kyverno/pod-security-admission v0.0.0-20251031094455-46f20778634f"
)
KYVERNO_POLICY = "block-large-images"
SLIMGUARD_POLICY = "block-large-images"
SLIMGUARD_CONFIGURATION = "slimguard-comparison"
LIMIT = "200Mi"
VARIANTS = ("none", "always-allow", "kyverno", "slimguard")
KINDS = ("Pod", "Deployment")
SLOW_REGISTRY_DELAY = 0.050


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Kyverno: build, install, run ------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("SLIMGUARD_CACHE", Path.home() / ".cache" / "slimguard"))


def kyverno_binary() -> Path:
    """Build Kyverno from its Go module once (~8 min with a warm Go cache; 190 MB) and keep it in the cache."""
    target = cache_dir() / f"kyverno-{KYVERNO_VERSION}"
    binary = target / "kyverno"
    if binary.exists():
        return binary
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "kyverno-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        if binary.exists():
            return binary
        module = Path(tempfile.mkdtemp(prefix="kyverno-build-"))
        (module / "go.mod").write_text(f"module slimguard.dev/kyverno-build\n\ngo 1.25\n\nreplace {KYVERNO_REPLACE}\n")
        partial = target.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        log(f"building Kyverno {KYVERNO_VERSION} from its Go module (several minutes)")
        for command in (
            ["go", "get", f"{KYVERNO_MODULE}/cmd/kyverno@{KYVERNO_VERSION}"],
            ["go", "build", "-o", f"{partial}/", f"{KYVERNO_MODULE}/cmd/kyverno"],
        ):
            subprocess.run(command, cwd=module, check=True)
        partial.rename(target)
        shutil.rmtree(module, ignore_errors=True)
    return binary


def kyverno_module_dir() -> Path:
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(modcache) / f"{KYVERNO_MODULE}@{KYVERNO_VERSION}"


def kyverno_policy(*, to_string: bool = True) -> dict[str, Any]:
    """Kyverno's own sample (kyverno/policies, other/block-large-images) with the limit at 200Mi, in Enforce.

    Without `to_string` (the mistake its users commonly make) the sum is a number, which the quantity comparison
    cannot parse: Kyverno logs an error and the condition never holds.
    """
    jmespath = "to_string(sum(manifest.layers[*].size))" if to_string else "sum(manifest.layers[*].size)"
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": KYVERNO_POLICY},
        "spec": {
            "background": False,
            "rules": [
                {
                    "name": "block-over-200mi",
                    "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": [NAMESPACE]}}]},
                    "validate": {
                        "failureAction": "Enforce",
                        "message": f"Images containing layers which sum to more than {LIMIT} in size are not allowed.",
                        "foreach": [
                            {
                                "list": "request.object.spec.containers",
                                "context": [
                                    {
                                        "name": "imageSize",
                                        "imageRegistry": {"reference": "{{ element.image }}", "jmesPath": jmespath},
                                    }
                                ],
                                "deny": {
                                    "conditions": {
                                        "all": [{"key": LIMIT, "operator": "LessThan", "value": "{{imageSize}}"}]
                                    }
                                },
                            }
                        ],
                    },
                }
            ],
        },
    }


def slimguard_policy(*, rules: dict[str, Any] | None = None) -> dict[str, Any]:
    """The same limit for slimguard. No `platforms` rule: it would also demand that every image provide both
    (a single-platform amd64 image would be denied), so both tools read linux/amd64 only, as Kyverno does."""
    return {
        "apiVersion": "slimguard.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": SLIMGUARD_POLICY},
        "spec": {
            "mode": "Enforce",
            "match": {"namespaces": [NAMESPACE]},
            "rules": rules if rules is not None else {"maxCompressedSize": LIMIT},
        },
    }


class Kyverno:
    """`kyverno` (the admission controller) out of cluster, with the recipe of shared/testbed.md."""

    def __init__(self, binary: Path, plane: ControlPlane, registry: Registry, workdir: Path) -> None:
        self.binary = binary
        self.plane = plane
        self.port = free_port()
        self.metrics_port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "KYVERNO_NAMESPACE": "kyverno",
                "KYVERNO_POD_NAME": "kyverno-local",
                "KYVERNO_SERVICEACCOUNT_NAME": "kyverno-admission-controller",
                "KYVERNO_ROLE_NAME": "kyverno",
                "KYVERNO_DEPLOYMENT": "kyverno",
                "KYVERNO_SVC": "kyverno-svc",
                "INIT_CONFIG": "kyverno",
                "METRICS_CONFIG": "kyverno-metrics",
                # --allowInsecureRegistry only falls back to plain HTTP; the registry's CA must be trusted.
                "SSL_CERT_FILE": str(registry.ca_file),
            }
        )
        self.process = ManagedProcess(
            "kyverno",
            [
                str(binary),
                f"--kubeconfig={plane.admin_kubeconfig}",
                f"--serverIP=127.0.0.1:{self.port}",
                "--webhookServerHost=127.0.0.1",
                f"--webhookServerPort={self.port}",
                f"--metricsPort={self.metrics_port}",
                "--metricsHost=127.0.0.1",
                "--controllerRuntimeMetricsAddress=0",
                "--admissionReports=false",
                "--allowInsecureRegistry",
                "--caSecretName=kyverno-svc.kyverno.svc.kyverno-tls-ca",
                "--tlsSecretName=kyverno-svc.kyverno.svc.kyverno-tls-pair",
                "--backgroundServiceAccountName=kyverno-background-controller",
                "--reportsServiceAccountName=kyverno-reports-controller",
            ],
            log_file=workdir / "kyverno.log",
            env=env,
        )

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def install(self) -> None:
        crds = kyverno_module_dir() / "config" / "crds"
        for folder in ("kyverno", "policyreport", "reports", "policies.kyverno.io"):
            self.plane.kubectl("apply", "--server-side", "-f", str(crds / folder))
        self.plane.kubectl("create", "namespace", "kyverno")
        self.plane.kubectl("create", "serviceaccount", "kyverno-admission-controller", "-n", "kyverno")
        self.plane.wait_established("clusterpolicies.kyverno.io")

    def start(self) -> Kyverno:
        self.process.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            self.process.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).status_code == 200:
                    return self
            time.sleep(0.5)
        raise TestbedError(f"Kyverno did not serve its metrics within 180 s:\n{self.process.tail()}")

    def reviews(self) -> int:
        """Admission requests Kyverno has answered (its `kyverno_admission_requests_total`)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("kyverno_admission_requests_total{")
            )
        )

    def stop(self) -> None:
        self.process.stop()


# --- a registry 50 ms away -------------------------------------------------------------------------------


class SlowProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk sent towards the registry for `delay` seconds.

    Each request (and each TLS handshake flight) thus pays one extra round trip, as a registry across the
    internet would; the order of the bytes is kept.
    """

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slow-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> SlowProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._server = future.result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer, self.delay),
            self._pipe(upstream_reader, client_writer, 0.0),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                chunk = await reader.read(65536)
                queue.put_nowait((time.monotonic() + delay, chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(Exception):
                writer.close()


# --- the comparison ------------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def pod_body(name: str, image: str, *, init_image: str | None = None, pull_secret: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if init_image:
        spec["initContainers"] = [{"name": "init", "image": init_image}]
    if pull_secret:
        spec["imagePullSecrets"] = [{"name": pull_secret}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def deployment_body(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": 0,  # no Pods: the ReplicaSet is still created, and reviewed, by both
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


@dataclass(frozen=True)
class BatchResult:
    registry: str  # direct or slow
    variant: str
    kind: str
    clients: int
    round: int
    seconds: list[float]
    errors: int
    registry_requests: int
    token_requests: int
    cpu: dict[str, float]  # CPU seconds of kyverno and slimguard during the batch


@dataclass
class Results:
    machine: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    started: str = ""
    load: dict[str, str] = field(default_factory=dict)
    batches: list[BatchResult] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_total: dict[str, float] = field(default_factory=dict)
    verdicts: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    command: str = ""
    tag_ttl: float | None = None  # slimguard's --tag-ttl in this run; None: its default (120 s)


class Comparison:
    def __init__(
        self,
        *,
        api: Apiserver,
        plane: ControlPlane,
        registry: Registry,
        ca: CertificateAuthority,
        slimguard: WebhookReplicas,
        always: AlwaysAllowProcess,
        kyverno: Kyverno,
        images: FixtureImages,
    ) -> None:
        self.api = api
        self.plane = plane
        self.registry = registry
        self.ca = ca
        self.slimguard = slimguard
        self.always = always
        self.kyverno = kyverno
        self.images = images
        self.serial = 0
        self.deployments = 0
        self.registered = ""

    @property
    def slimguard_pid(self) -> int:
        pid = self.slimguard.processes[0].pid
        assert pid is not None
        return pid

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial:05d}"

    def counters(self) -> dict[str, int]:
        return {
            "slimguard": reviews_total(self.slimguard.metrics(0)),
            "always-allow": self.always.reviews(),
            "kyverno": self.kyverno.reviews(),
        }

    def cpu(self) -> dict[str, float]:
        return {"kyverno": cpu_seconds(self.kyverno.pid), "slimguard": cpu_seconds(self.slimguard_pid)}

    # -- registering one variant at a time --

    def register(self, variant: str, *, kyverno_policy_body: dict[str, Any] | None = None) -> None:
        """Only `variant` reviews the bench namespace: slimguard's and always-allow's configuration points at
        the one asked for (or is removed), Kyverno's policy exists only for Kyverno (with no policy Kyverno's
        resource webhook has no rules, so the apiserver does not call it)."""
        self.api.delete(f"{CONFIGURATIONS_PATH}/{SLIMGUARD_CONFIGURATION}")
        policy_path = f"/apis/kyverno.io/v1/clusterpolicies/{KYVERNO_POLICY}"
        if variant == "kyverno":
            self.api.delete(policy_path)
            self._wait_gone(policy_path)
            self._post_policy(kyverno_policy_body or kyverno_policy())
        else:
            self.api.delete(policy_path)
        if variant in ("slimguard", "always-allow"):
            url = self.slimguard.url if variant == "slimguard" else self.always.url
            configuration = webhook_configuration(
                TEMPLATE, url=url, ca_pem=self.ca.cert_pem, name=SLIMGUARD_CONFIGURATION, failure_policy="Fail"
            )
            self.api.post(CONFIGURATIONS_PATH, configuration)
        self._wait_live(variant)
        self.registered = variant

    def _post_policy(self, body: dict[str, Any], timeout: float = 90) -> None:
        """Kyverno validates its policies with its own webhook, whose certificate it is still making for a
        while after start-up (`tls: internal error`): retry until it answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api.post("/apis/kyverno.io/v1/clusterpolicies?fieldValidation=Strict", body)
                return
            except TestbedError as error:
                if "failed calling webhook" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _wait_gone(self, path: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.api.exists(path) and time.monotonic() < deadline:
            time.sleep(0.2)

    def _wait_live(self, variant: str, timeout: float = 120) -> None:
        """A dry-run create reaches the variant and nobody else (Kyverno reconciles its webhooks in seconds)."""
        deadline = time.monotonic() + timeout
        text = ""
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            before = self.counters()
            status, text, _ = self.api.create("Pod", pod_body("probe", self.images.slim_app.ref), dry_run=True)
            after = self.counters()
            moved = {name for name in before if after[name] > before[name]}
            wanted = set() if variant == "none" else {variant}
            if status == 201 and moved == wanted:
                # Kyverno's webhook configuration may still be catching up for a moment: see it twice in a row.
                if quiet_since is not None:
                    return
                quiet_since = time.monotonic()
            else:
                quiet_since = None
            time.sleep(0.5)
        raise TestbedError(f"the apiserver did not switch to {variant} in {timeout:.0f} s (last answer: {text[:300]})")

    # -- latency batches --

    def batch(
        self, registry_mode: str, variant: str, kind: str, image: str, count: int, clients: int, round_: int
    ) -> BatchResult:
        prefix = f"{variant.replace('-', '')}-{registry_mode}-{kind.lower()}"

        def job() -> tuple[str, dict[str, Any]]:
            name = self.name(prefix)
            return (kind, pod_body(name, image) if kind == "Pod" else deployment_body(name, image))

        # Warm-up, unrecorded: the apiserver's connection to the webhook, and the image seen once.
        self._create([job() for _ in range(max(clients, 2))], clients, variant)
        self.settle()
        mark = self.registry.mark()
        tokens = self._tokens()
        cpu_before = self.cpu()
        samples = self._create([job() for _ in range(count)], clients, variant)
        self.settle()  # a Deployment's ReplicaSet is reviewed too: its registry requests belong to this batch
        cpu_after = self.cpu()
        requests = self.registry.requests(since=mark)
        return BatchResult(
            registry=registry_mode,
            variant=variant,
            kind=kind,
            clients=clients,
            round=round_,
            seconds=[seconds for status, seconds in samples if status == 201],
            errors=sum(1 for status, _ in samples if status != 201),
            registry_requests=sum(1 for r in requests if r.repository is not None or r.path == "/v2/"),
            token_requests=self._tokens() - tokens,
            cpu={name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        )

    def _tokens(self) -> int:
        return self.registry.token_issuer.token_requests if self.registry.token_issuer else 0

    def _create(
        self, jobs: Sequence[tuple[str, dict[str, Any]]], clients: int, variant: str
    ) -> list[tuple[int, float]]:
        results: list[tuple[int, float]] = []
        lock = threading.Lock()
        queue = list(jobs)

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    kind, body = queue.pop()
                status, text, seconds = self.api.create(kind, body)
                with lock:
                    results.append((status, seconds))
                    if kind == "Deployment" and status == 201:
                        self.deployments += 1
                    if status != 201:
                        self.api.errors.append(f"{variant} {kind} {status}: {text[:300]}")

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def settle(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.api.count(f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets") < self.deployments:
            if time.monotonic() > deadline:
                raise TestbedError("the controller-manager did not create every ReplicaSet in time")
            time.sleep(0.2)

    # -- verdicts --

    def decide(self, kind: str, body: dict[str, Any]) -> str:
        status, text, _ = self.api.create(kind, body, dry_run=True)
        if status == 201:
            return "admitted"
        try:
            message = json.loads(text).get("message", text)
        except json.JSONDecodeError:
            message = text
        return f"**denied** ({status}): {message}"


def verdict_scenarios(
    c: Comparison, images: FixtureImages, extra: dict[str, FixtureImage]
) -> list[tuple[str, str, dict[str, Any]]]:
    fat, slim = images.fat_app.ref, images.slim_app.ref
    return [
        ("fat image (shop/api:1.0-fat)", "Pod", pod_body(c.name("v"), fat)),
        ("slim image (shop/api:1.0-slim)", "Pod", pod_body(c.name("v"), slim)),
        (
            "multi-arch index: amd64 slim, arm64 over the limit",
            "Pod",
            pod_body(c.name("v"), extra["mixed"].ref),
        ),
        ("arm64-only image (slim)", "Pod", pod_body(c.name("v"), images.arm64_only.ref)),
        (
            "private image, readable with the Pod's imagePullSecrets",
            "Pod",
            pod_body(c.name("v"), images.private_slim.ref, pull_secret="registry-pull"),
        ),
        ("Deployment on the fat image", "Deployment", deployment_body(c.name("v"), fat)),
        ("init container on the fat image", "Pod", pod_body(c.name("v"), slim, init_image=fat)),
    ]


def push_mixed_index(registry: Registry, images: FixtureImages) -> FixtureImage:
    """An index whose platforms differ in size: linux/amd64 the slim multi-arch build, linux/arm64 the fat app."""
    artifacts = build_fixture_cache(None)
    amd64 = artifacts.multiarch.image_for("linux/amd64")
    fat = artifacts.fat_app
    arm64 = oci.build_image([], base=fat, platform=oci.Platform("linux", "arm64", "v8"))
    index = oci.build_index([amd64, arm64])
    with oci.IndependentRegistryClient(registry.endpoint) as client:
        client.push("shop/mixed", "1.0", index, mount_from=("shop/api", "shop/multi", "base/node", "base/debian"))
    return fixture_image(images.host, "shop/mixed", "1.0", index)


def pull_secret(registry: Registry) -> dict[str, Any]:
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    config = {"auths": {registry.host: {"auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "registry-pull", "namespace": NAMESPACE},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


def measure_verdicts(c: Comparison, results: Results, extra: dict[str, FixtureImage]) -> None:
    scenarios = verdict_scenarios(c, c.images, extra)
    rows: dict[str, dict[str, str]] = {title: {"scenario": title} for title, _, _ in scenarios}
    for tool in ("kyverno", "slimguard"):
        c.register(tool)
        for title, kind, body in scenarios:
            rows[title][tool] = c.decide(kind, body)

    # The small mistake each tool's users make.
    mistake = "common policy mistake, fat image"
    rows[mistake] = {"scenario": mistake}
    c.register("kyverno", kyverno_policy_body=kyverno_policy(to_string=False))
    rows[mistake]["kyverno"] = "`jmesPath` without `to_string`: " + c.decide(
        "Pod", pod_body(c.name("v"), c.images.fat_app.ref)
    )
    c.register("none")
    rows[mistake]["slimguard"] = slimguard_mistake(c)

    # The registry stopped: an image seen before, and one never seen. Each tool is registered while the
    # registry is up (the switch is checked with a create that reads an image), then the registry stops.
    unseen = c.images.huge_layers.ref
    stopped = {
        "registry stopped, fat image seen before": ("Pod", pod_body(c.name("v"), c.images.fat_app.ref)),
        "registry stopped, image never seen": ("Pod", pod_body(c.name("v"), unseen)),
    }
    for tool in ("slimguard", "kyverno"):
        c.register(tool)
        c.registry.stop()
        try:
            for title, (kind, body) in stopped.items():
                rows.setdefault(title, {"scenario": title})[tool] = c.decide(kind, body)
        finally:
            c.registry.start()
    results.verdicts = list(rows.values())


def slimguard_mistake(c: Comparison) -> str:
    """A misspelt rule (`maxCompresedSize`): what the apiserver does with it, then what slimguard decides.

    The CRD is structural, so the apiserver knows every field: `kubectl apply` (field validation Strict) refuses
    the typo; a client that asks for no validation (`--validate=false`, some GitOps tools) gets it pruned.
    """
    path = f"/apis/slimguard.dev/v1alpha1/imagepolicies/{SLIMGUARD_POLICY}"
    original = c.api.http.get(path).json()

    def put(body: dict[str, Any], validation: str) -> httpx.Response:
        current = c.api.http.get(path).json()
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
        return c.api.http.put(path, json=body, params={"fieldValidation": validation})

    typo = slimguard_policy(rules={"maxCompresedSize": LIMIT})
    strict = put(typo, "Strict")
    said = f"misspelt `maxCompresedSize`, field validation Strict (kubectl's default): {_answer(strict)}"
    ignored = put(typo, "Ignore")
    said += f"; with validation off: {_answer(ignored)}"
    if ignored.status_code < 400:
        kept = (c.api.http.get(path).json().get("spec") or {}).get("rules")
        said += f", stored rules {json.dumps(kept)}"
        c.register("slimguard")
        time.sleep(2)  # the webhook's watch sees the new policy
        said += "; then the fat image: " + c.decide("Pod", pod_body(c.name("v"), c.images.fat_app.ref))
        status = (c.api.http.get(path).json().get("status") or {}).get("conditions") or []
        said += "; policy conditions: " + "; ".join(
            f"{x.get('type')}={x.get('status')} {x.get('reason', '')}: {x.get('message', '')}" for x in status
        )
    put({k: v for k, v in original.items() if k != "status"}, "Strict")
    return said


def _answer(response: httpx.Response) -> str:
    if response.status_code < 400:
        warnings = response.headers.get_list("warning")
        return f"accepted ({response.status_code})" + (f", warning: {'; '.join(warnings)}" if warnings else "")
    return f"refused ({response.status_code}): {response.json().get('message', response.text)[:300]}"


# --- the run ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Results:
    results = Results(machine=machine(), started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    results.command = "python bench/kyverno_comparison.py " + " ".join(sys.argv[1:])
    results.tag_ttl = args.tag_ttl
    binary = kyverno_binary()
    results.versions = {
        "kyverno": KYVERNO_VERSION,
        "slimguard": subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
        ).stdout.strip(),
        "kubernetes": "v1.36.3",
    }
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="slimguard-kyverno-"))
        log(f"work directory {work}")
        ca = CertificateAuthority("slimguard comparison CA")
        plane = stack.enter_context(ControlPlane(workdir=work / "control-plane", ca=ca))
        # go-containerregistry (Kyverno) refuses a token realm on a loopback IP: name it `localhost`.
        registry = stack.enter_context(
            Registry(
                storage_dir=work / "registry-storage",
                ca=ca,
                auth="token",
                workdir=work / "registry",
                token_realm_host="localhost",
            )
        )
        stack.callback(close_clients)
        api = Apiserver(plane, max(args.clients, 1))
        stack.callback(api.close)
        images = publish_fixture_images(registry.endpoint, None, log=log)
        extra = {"mixed": push_mixed_index(registry, images)}

        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.wait_established("imagepolicies.slimguard.dev")
        kubeconfig = install_rbac(plane, REPO / "deploy" / "kustomize" / "base", "webhook")
        api.post("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        while not api.exists(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"):
            time.sleep(0.2)
        api.post(f"/api/v1/namespaces/{NAMESPACE}/secrets", pull_secret(registry))
        # Strict: a field the CRD does not know must fail here, not be pruned (as `platforms` once was).
        api.post("/apis/slimguard.dev/v1alpha1/imagepolicies?fieldValidation=Strict", slimguard_policy())

        kyverno = Kyverno(binary, plane, registry, work)
        kyverno.install()
        stack.callback(kyverno.stop)
        kyverno.start()
        log(f"Kyverno up (pid {kyverno.pid}, webhook port {kyverno.port})")
        replicas = WebhookReplicas(
            kubeconfig=str(kubeconfig),
            ca=ca,
            registry_ca_file=str(registry.ca_file),
            workdir=work,
            replicas=1,
            shutdown_delay=0.2,
            extra_args=("--tag-ttl", f"{args.tag_ttl:g}") if args.tag_ttl is not None else (),
        )
        stack.enter_context(replicas)
        always = AlwaysAllowProcess(cert_file=replicas.cert_file, key_file=replicas.key_file, ca=ca, workdir=work)
        stack.callback(always.stop)
        always.start()
        comparison = Comparison(
            api=api,
            plane=plane,
            registry=registry,
            ca=ca,
            slimguard=replicas,
            always=always,
            kyverno=kyverno,
            images=images,
        )
        results.load["start"] = load_average()
        if not args.skip_verdicts:
            measure_verdicts(comparison, results, extra)
            results.load["after verdicts"] = load_average()
            log("verdicts done")
        if not args.skip_latency:
            proxy = stack.enter_context(SlowProxy(registry.port, SLOW_REGISTRY_DELAY))
            modes = {
                "direct": images.slim_app.ref,
                "slow": images.slim_app.ref.replace(registry.host, f"127.0.0.1:{proxy.port}"),
            }
            modes = {mode: image for mode, image in modes.items() if mode in args.modes}
            for mode, image in modes.items():
                for round_ in range(args.rounds):
                    order = VARIANTS[round_ % 4 :] + VARIANTS[: round_ % 4]
                    for variant in order:
                        comparison.register(variant)
                        for kind in KINDS:
                            for clients, count in ((1, args.sequential), (args.clients, args.creates)):
                                results.batches.append(
                                    comparison.batch(mode, variant, kind, image, count, clients, round_)
                                )
                    log(f"{mode} registry, round {round_ + 1}/{args.rounds} done ({' -> '.join(order)})")
                results.load[f"after {mode}"] = load_average()
        results.peak_rss_mb = {"kyverno": peak_rss_mb(kyverno.pid), "slimguard": peak_rss_mb(comparison.slimguard_pid)}
        results.cpu_total = comparison.cpu()
        results.errors = list(api.errors[:20])
        if args.keep:
            log(f"kept {work}")
        else:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
    return results


# --- tables ----------------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def latency_table(results: Results) -> str:
    groups: dict[tuple[str, int, str, str], list[BatchResult]] = {}
    for b in results.batches:
        groups.setdefault((b.registry, b.clients, b.kind, b.variant), []).append(b)
    rows = []
    floors: dict[tuple[str, int, str], tuple[float, float]] = {}
    for (registry, clients, kind, variant), batches in sorted(groups.items(), key=lambda item: _order(item[0])):
        seconds = [s * 1000 for b in batches for s in b.seconds]
        creates = sum(len(b.seconds) + b.errors for b in batches)
        p50, p99 = percentile(seconds, 0.5), percentile(seconds, 0.99)
        if variant == "always-allow":
            floors[(registry, clients, kind)] = (p50, p99)
        rows.append(((registry, clients, kind, variant), batches, creates, p50, p99))
    out = []
    for (registry, clients, kind, variant), batches, creates, p50, p99 in rows:
        floor = floors.get((registry, clients, kind))
        added = (
            f"{p50 - floor[0]:+.1f} / {p99 - floor[1]:+.1f}" if floor and variant in ("kyverno", "slimguard") else ""
        )
        requests = sum(b.registry_requests for b in batches) / max(creates, 1)
        tokens = sum(b.token_requests for b in batches) / max(creates, 1)
        cpu = {name: sum(b.cpu[name] for b in batches) * 1000 / max(creates, 1) for name in ("kyverno", "slimguard")}
        own_cpu = f"{cpu[variant]:.1f}" if variant in cpu else ""
        out.append(
            (
                registry,
                str(clients),
                kind,
                variant,
                str(creates),
                str(sum(b.errors for b in batches)),
                f"{p50:.1f}",
                f"{p99:.1f}",
                added,
                f"{requests:.2f}",
                f"{tokens:.2f}",
                own_cpu,
            )
        )
    header = (
        "Registry",
        "Clients",
        "Kind",
        "Variant",
        "Creates",
        "Errors",
        "p50 ms",
        "p99 ms",
        "Added over always-allow, p50 / p99 ms",
        "Registry requests per create",
        "Token requests per create",
        "Webhook CPU ms per create",
    )
    return _table(header, out)


def _order(key: tuple[str, int, str, str]) -> tuple[int, int, int, int]:
    registry, clients, kind, variant = key
    return (0 if registry == "direct" else 1, clients, KINDS.index(kind), VARIANTS.index(variant))


def verdict_table(results: Results) -> str:
    return _table(
        ("Scenario", "Kyverno v1.19.1 (`block-large-images`, 200Mi)", "slimguard (`maxCompressedSize: 200Mi`)"),
        [
            (row["scenario"], _cell(row.get("kyverno", "-")), _cell(row.get("slimguard", "-")))
            for row in results.verdicts
        ],
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report(results: Results) -> str:
    header = (
        f"Run {results.started} on {results.machine}; versions {results.versions}; load average (1, 5, 15 min) "
        + "; ".join(f"{k}: {v}" for k, v in results.load.items())
        + ". The machine is shared: absolute figures were taken under load; compare variants within the run."
        + (
            f" slimguard's tag TTL is {results.tag_ttl:g} s here (its default: 120 s): a tag in use is re-resolved"
            f" in the background from {0.75 * results.tag_ttl:g} s on, so tags fall due inside every batch"
            " that lasts longer."
            if results.tag_ttl is not None
            else ""
        )
    )
    parts = [header, "", f"Reproduce: `{results.command}`", ""]
    if results.batches:
        parts += [
            latency_table(results),
            "",
            "Peak RSS (VmHWM): "
            + ", ".join(f"{k} {v:.0f} MB" for k, v in results.peak_rss_mb.items())
            + "; CPU seconds over the whole run: "
            + ", ".join(f"{k} {v:.1f}" for k, v in results.cpu_total.items()),
            "",
        ]
    if results.verdicts:
        parts += [verdict_table(results), ""]
    if results.errors:
        parts += ["Errors:", *[f"- {e}" for e in results.errors]]
    return "\n".join(parts)


LATENCY_MARKERS = ("<!-- kyverno-latency:begin -->", "<!-- kyverno-latency:end -->")
SHORT_TTL_MARKERS = ("<!-- kyverno-latency-short-tag-ttl:begin -->", "<!-- kyverno-latency-short-tag-ttl:end -->")
VERDICT_MARKERS = ("<!-- kyverno-verdicts:begin -->", "<!-- kyverno-verdicts:end -->")


def write_between(path: Path, markers: tuple[str, str], text: str) -> None:
    """Replace what lies between the two markers in `path` (they must be there)."""
    content = path.read_text()
    begin, end = markers
    head, found, rest = content.partition(begin)
    if not found or end not in rest:
        raise SystemExit(f"{path} lacks the markers {begin} ... {end}")
    path.write_text(f"{head}{begin}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}")


def write_docs(results: Results) -> None:
    if results.batches:
        markers = LATENCY_MARKERS if results.tag_ttl is None else SHORT_TTL_MARKERS
        write_between(REPO / "bench" / "README.md", markers, report(replace(results, verdicts=[])))
    if results.verdicts:
        write_between(REPO / "docs" / "comparison.md", VERDICT_MARKERS, report(replace(results, batches=[])))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the concurrent batches")
    parser.add_argument("--creates", type=int, default=40, help="creates per concurrent batch")
    parser.add_argument("--sequential", type=int, default=15, help="creates per sequential batch")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per registry mode (variants rotate)")
    parser.add_argument("--skip-verdicts", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--modes", type=lambda text: text.split(","), default=["direct", "slow"], help="registry modes, e.g. slow"
    )
    parser.add_argument(
        "--tag-ttl",
        type=float,
        help="slimguard's --tag-ttl (default: its own, 120 s); with --write-docs, the tables go to their own section",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs of every process)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--build-only", action="store_true", help="only build (or find) the Kyverno binary")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="put the tables into bench/README.md (latency and cost) and docs/comparison.md (verdicts)",
    )
    args = parser.parse_args(argv)
    # A run started in the background ignores SIGINT: SIGTERM stops it too, with every process cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.build_only:
        print(kyverno_binary())
        return 0
    results = run(args)
    print(report(results))
    if args.write_docs:
        write_docs(results)
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
