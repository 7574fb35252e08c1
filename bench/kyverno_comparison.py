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

    python -m bench.kyverno_comparison                   # both parts
    python -m bench.kyverno_comparison --creates 40 --rounds 2 --clients 8 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.common.apiserver import Apiserver
from bench.common.measure import cpu_seconds, load_average, machine, peak_rss_mb
from bench.common.processes import log, workdir
from bench.common.webhooks import (
    NAMESPACE,
    AlwaysAllowProcess,
    WebhookBench,
    point_configuration,
    prepare_namespace,
    start_webhooks,
    wait_reviewed_by,
)
from bench.kyverno import KYVERNO_POLICY, KYVERNO_VERSION, LIMIT, Kyverno, kyverno_binary, kyverno_policy
from bench.kyverno_report import KINDS, VARIANTS, BatchResult, Results, report, write_docs
from bench.slow_proxy import SlowProxy
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, TestbedError, oci
from slimguard_testbed.images import close_clients
from slimguard_testbed.images.publish import build_fixture_cache, publish_fixture_images
from slimguard_testbed.images.published import FixtureImage, FixtureImages, fixture_image
from slimguard_testbed.webhook import WebhookReplicas
from slimguard_testbed.workloads import deployment, image_policy, pod

REPO = Path(__file__).resolve().parents[1]
SLIMGUARD_POLICY = "block-large-images"
SLIMGUARD_CONFIGURATION = "slimguard-comparison"
SLOW_REGISTRY_DELAY = 0.050


def slimguard_policy(*, rules: dict[str, Any] | None = None) -> dict[str, Any]:
    """The same limit for slimguard. No `platforms` rule: it would also demand that every image provide both
    (a single-platform amd64 image would be denied), so both tools read linux/amd64 only, as Kyverno does."""
    rules = rules if rules is not None else {"maxCompressedSize": LIMIT}
    return image_policy(SLIMGUARD_POLICY, rules, namespaces=[NAMESPACE], mode="Enforce")


def app_pod(name: str, image: str, **options: Any) -> dict[str, Any]:
    """A Pod of the bench namespace whose container is `app` (init_image, pull_secrets: as `workloads.pod`)."""
    return pod(name, NAMESPACE, image, container="app", **options)


def app_deployment(name: str, image: str) -> dict[str, Any]:
    # replicas 0: no Pods, but the ReplicaSet is still created, and reviewed, by both
    return deployment(name, NAMESPACE, image, replicas=0, container="app")


class Comparison(WebhookBench):
    """The bench of `WebhookBench` with Kyverno beside slimguard, and the fixture images."""

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
        super().__init__(api=api, registry=registry, ca=ca, slimguard=slimguard, always=always)
        self.plane = plane
        self.kyverno = kyverno
        self.images = images
        self.deployments = 0
        self.registered = ""

    def reviews(self) -> dict[str, int]:
        return {**super().reviews(), "kyverno": self.kyverno.reviews()}

    def cpu(self) -> dict[str, float]:
        return {"kyverno": cpu_seconds(self.kyverno.pid), "slimguard": cpu_seconds(self.slimguard_pid)}

    # -- registering one variant at a time --

    def register(self, variant: str, *, kyverno_policy_body: dict[str, Any] | None = None) -> None:
        """Only `variant` reviews the bench namespace: slimguard's and always-allow's configuration points at
        the one asked for (or is removed), Kyverno's policy exists only for Kyverno (with no policy Kyverno's
        resource webhook has no rules, so the apiserver does not call it)."""
        policy_path = f"/apis/kyverno.io/v1/clusterpolicies/{KYVERNO_POLICY}"
        self.api.delete(policy_path)
        point_configuration(self.api, SLIMGUARD_CONFIGURATION, self.url(variant), self.ca)
        if variant == "kyverno":
            self._wait_gone(policy_path)
            self._post_policy(kyverno_policy_body or kyverno_policy())
        # Kyverno reconciles its webhooks in seconds, and its configuration may still be catching up for a moment
        # after a probe reached it: see it twice in a row.
        probe = app_pod("probe", self.images.slim_app.ref)
        wait_reviewed_by(self.api, variant, probe, self.reviews, timeout=120, every=0.5, times=2)
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

    # -- latency batches --

    def batch(
        self, registry_mode: str, variant: str, kind: str, image: str, count: int, clients: int, round_: int
    ) -> BatchResult:
        prefix = f"{variant.replace('-', '')}-{registry_mode}-{kind.lower()}"

        def job() -> tuple[str, dict[str, Any]]:
            name = self.name(prefix)
            return (kind, app_pod(name, image) if kind == "Pod" else app_deployment(name, image))

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
        ("fat image (shop/api:1.0-fat)", "Pod", app_pod(c.name("v"), fat)),
        ("slim image (shop/api:1.0-slim)", "Pod", app_pod(c.name("v"), slim)),
        (
            "multi-arch index: amd64 slim, arm64 over the limit",
            "Pod",
            app_pod(c.name("v"), extra["mixed"].ref),
        ),
        ("arm64-only image (slim)", "Pod", app_pod(c.name("v"), images.arm64_only.ref)),
        (
            "private image, readable with the Pod's imagePullSecrets",
            "Pod",
            app_pod(c.name("v"), images.private_slim.ref, pull_secrets=("registry-pull",)),
        ),
        (
            "Deployment on the fat image",
            "Deployment",
            app_deployment(c.name("v"), fat),
        ),
        ("init container on the fat image", "Pod", app_pod(c.name("v"), slim, init_image=fat)),
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
        "Pod", app_pod(c.name("v"), c.images.fat_app.ref)
    )
    c.register("none")
    rows[mistake]["slimguard"] = slimguard_mistake(c)

    # The registry stopped: an image seen before, and one never seen. Each tool is registered while the
    # registry is up (the switch is checked with a create that reads an image), then the registry stops.
    unseen = c.images.huge_layers.ref
    stopped = {
        "registry stopped, fat image seen before": (
            "Pod",
            app_pod(c.name("v"), c.images.fat_app.ref),
        ),
        "registry stopped, image never seen": ("Pod", app_pod(c.name("v"), unseen)),
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
        said += "; then the fat image: " + c.decide("Pod", app_pod(c.name("v"), c.images.fat_app.ref))
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
    results.command = "python -m bench.kyverno_comparison " + " ".join(sys.argv[1:])
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
        work = stack.enter_context(workdir("slimguard-kyverno-", keep=args.keep))
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
        api = Apiserver(plane)
        stack.callback(api.close)
        images = publish_fixture_images(registry.endpoint, None, log=log)
        extra = {"mixed": push_mixed_index(registry, images)}

        kubeconfig = prepare_namespace(plane, api)
        api.post(f"/api/v1/namespaces/{NAMESPACE}/secrets", pull_secret(registry))
        # Strict: a field the CRD does not know must fail here, not be pruned (as `platforms` once was).
        api.post("/apis/slimguard.dev/v1alpha1/imagepolicies?fieldValidation=Strict", slimguard_policy())

        kyverno = Kyverno(binary, plane, registry, work)
        kyverno.install()
        stack.callback(kyverno.stop)
        kyverno.start()
        log(f"Kyverno up (pid {kyverno.pid}, webhook port {kyverno.port})")
        extra_args = ("--tag-ttl", f"{args.tag_ttl:g}") if args.tag_ttl is not None else ()
        replicas, always = start_webhooks(
            stack, work, ca=ca, kubeconfig=kubeconfig, registry=registry, extra_args=extra_args
        )
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
    return results


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
