"""Pulled Events at scale (issue 27): the controller's memory with thousands of kubelet ``Pulled`` Events in the
cluster, against the same controller with none, in the same run.

10,000 real pulls cannot be made here (one node, one fat image: a cold pull takes seconds and a node holds an image
once), so the Events are created through the API exactly as a kubelet v1.36 records them
(``slimguard_testbed.kubelet_events``: its messages, its recorder's object); what slimguard reads of them is what
it reads of a kubelet's. They name their images by digest (a kubelet prints the reference the Pod names: a digest
reference is one), so the controller resolves them without reading the Pods, which do not exist; ``--digests``
made-up images pulled on ``--nodes`` nodes, four in five cold, in ``--namespaces`` namespaces.

Starts its own control plane and token-auth registry on 127.0.0.1, slimguard's CRDs, one small image, a Deployment
running it and an Audit ImagePolicy on it; then runs `slimguard controller` (no leader election) under the
install's RBAC twice: before any Event exists, then with the N Events. For each start: the time to its first
evaluation, the time until every Event is folded (the pull counters' sum reaches the occurrences created), and
the peak RSS (VmHWM) a few seconds (--settle) later. The ratios of the second start to the first are the finding;
they are reported, never asserted.

    python -m bench.pull_events_scale --events 500          # a quick look that it works
    python -m bench.pull_events_scale                       # 10,000 Events, 200 images, 50 nodes, 20 namespaces
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
from bench.common.tables import table
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, free_port
from slimguard_testbed.images import close_clients, push_image
from slimguard_testbed.install import install_controller_rbac
from slimguard_testbed.kubelet_events import present_message, pulled_event, pulled_message
from slimguard_testbed.process import ManagedProcess
from slimguard_testbed.workloads import deployment, image_policy, namespace

REPO = Path(__file__).resolve().parents[1]
BENCH_NAMESPACE = "pulls-bench"
EVENT_NAMESPACE_PREFIX = "pulls-"
POLICY = "bench-pulls"
EVALUATIONS = "slimguard_evaluations_total"
PULLS = "slimguard_image_pulls_total"


def event_namespaces(count: int) -> list[str]:
    return [f"{EVENT_NAMESPACE_PREFIX}{n:03d}" for n in range(count)]


def pulled_events(
    count: int, namespaces: Sequence[str], digests: int, nodes: int, now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of ``count`` Pulled Events: made-up images by digest, four in five pulled cold."""
    chooser = random.Random(f"pulls-{count}")
    made = []
    for n in range(count):
        where = namespaces[n % len(namespaces)]
        image_number = chooser.randrange(digests)
        digest = "sha256:" + hashlib.sha256(f"pulled image {image_number}".encode()).hexdigest()
        image = f"registry.example/shop/app-{image_number:04d}@{digest}"
        if chooser.random() < 0.8:
            seconds = chooser.uniform(2.0, 60.0)
            message = pulled_message(image, seconds, seconds + chooser.uniform(0, 5), chooser.randint(50, 900) << 20)
        else:
            message = present_message(image)
        pod = f"app-{image_number:04d}-{n:05d}"
        body = pulled_event(
            namespace=where,
            pod=pod,
            container="app",
            node=f"node-{chooser.randrange(nodes):03d}",
            message=message,
            at=now - timedelta(seconds=chooser.uniform(0, 3000)),  # within the apiserver's default --event-ttl (1h)
        )
        body["metadata"]["name"] = f"{pod}.{n:x}"
        made.append((f"/api/v1/namespaces/{where}/events", body))
    return made


@dataclass
class Start:
    name: str
    first_evaluation_seconds: float = float("nan")
    folded_seconds: float = float("nan")
    peak_rss_mb: float = float("nan")
    rss_mb: float = float("nan")


@dataclass
class Results:
    events: int
    digests: int
    nodes: int
    namespaces: int
    event_bytes: int = 0
    setup_seconds: dict[str, float] = field(default_factory=dict)
    starts: list[Start] = field(default_factory=list)
    machine: str = ""
    load_average: str = ""


def measure_controller(
    python: str, kubeconfig: Path, registry: Registry, work: Path, name: str, occurrences: int, args: argparse.Namespace
) -> Start:
    """Start the controller; time its first evaluation and its folding of every Event; read its memory; stop it."""
    port = free_port()
    argv = [
        python, "-m", "slimguard.cli.main", "controller", f"--kubeconfig={kubeconfig}", "--no-leader-elect",
        "--allow-loopback-registries", f"--ca-file={registry.ca_file}", f"--metrics-port={port}",
        "--metrics-address=127.0.0.1", "--policy-reports=none",
    ]  # fmt: skip
    log_file = work / f"{name.replace(' ', '-')}.log"
    process = ManagedProcess(log_file.stem, argv, log_file=log_file, cwd=work)
    started = time.monotonic()
    process.start()
    result = Start(name)
    try:

        def metrics() -> str:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text

        wait_serving(
            process,
            lambda: counter_total(metrics(), EVALUATIONS) > 0,
            timeout=args.timeout,
            every=0.05,
            failure="the controller made no evaluation",
        )
        result.first_evaluation_seconds = time.monotonic() - started
        wait_serving(
            process,
            lambda: counter_total(metrics(), PULLS) >= occurrences,
            timeout=args.timeout,
            every=0.1,
            failure=f"the controller did not fold the {occurrences} pulls",
        )
        result.folded_seconds = time.monotonic() - started
        time.sleep(args.settle)
        assert process.pid is not None
        memory = memory_kib(process.pid)
        result.rss_mb, result.peak_rss_mb = memory.get("VmRSS", 0) / 1024, memory.get("VmHWM", 0) / 1024
    finally:
        process.stop()
    log(f"{name}: first evaluation {result.first_evaluation_seconds:.1f} s, all folded {result.folded_seconds:.1f} s, "
        f"peak RSS {result.peak_rss_mb:.0f} MB")  # fmt: skip
    return result


def run(args: argparse.Namespace) -> Results:
    results = Results(args.events, args.digests, args.nodes, args.namespaces)
    results.machine = machine()
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(workdir("slimguard-pulls-bench-", keep=args.keep))
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
        plane.wait_established("imagepolicies.slimguard.dev", "imagereports.slimguard.dev")
        image = push_image(
            registry.endpoint, "shop/pulls-bench", "1.0", [{"/app/data.bin": random.randbytes(64 << 10)}]
        )
        namespaces = event_namespaces(args.namespaces)
        asyncio.run(
            api.create_many([("/api/v1/namespaces", namespace(name)) for name in [*namespaces, BENCH_NAMESPACE]])
        )
        api.post(
            f"/apis/apps/v1/namespaces/{BENCH_NAMESPACE}/deployments",
            deployment("app", BENCH_NAMESPACE, image.ref, replicas=0, container="app"),
        )
        api.post(
            "/apis/slimguard.dev/v1alpha1/imagepolicies",
            image_policy(POLICY, {"maxCompressedSize": "16Ki"}, namespaces=[BENCH_NAMESPACE]),
        )
        kubeconfig = install_controller_rbac(plane, REPO / "deploy" / "kustomize" / "base")
        results.setup_seconds["control plane, registry, CRDs, RBAC"] = time.monotonic() - started

        results.load_average = load_average()
        results.starts.append(measure_controller(args.python, kubeconfig, registry, work, "no Pulled Events", 0, args))

        started = time.monotonic()
        events = pulled_events(args.events, namespaces, args.digests, args.nodes, datetime.now(UTC))
        results.event_bytes = sum(len(json.dumps(body)) for _, body in events)
        asyncio.run(api.create_many(events, concurrency=8))
        del events
        results.setup_seconds["Pulled Events"] = time.monotonic() - started
        log(f"created {args.events} Pulled Events ({results.event_bytes / 1e6:.1f} MB of JSON)")
        name = f"{args.events} Pulled Events"
        results.starts.append(measure_controller(args.python, kubeconfig, registry, work, name, args.events, args))
    return results


def report(results: Results) -> str:
    base = results.starts[0]
    rows = [
        (
            start.name,
            f"{start.first_evaluation_seconds:.1f} s",
            f"{start.folded_seconds:.1f} s",
            f"{start.peak_rss_mb:.0f} MB (now {start.rss_mb:.0f} MB)",
            f"{start.peak_rss_mb / base.peak_rss_mb:.2f}",
        )
        for start in results.starts
    ]
    header = (
        f"{results.events} Pulled Events ({results.event_bytes / 1e6:.1f} MB of JSON; made through the API in the "
        f"kubelet's format) of {results.digests} images on {results.nodes} nodes in {results.namespaces} namespaces; "
        f"{results.machine}; load average {results.load_average} before the first start"
    )
    columns = ("Start", "First evaluation", "Every Event folded", "Peak RSS (VmHWM)", "Peak RSS ÷ first start's")
    return header + "\n\n" + table(columns, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="Pulled Events to create")
    parser.add_argument("--digests", type=int, default=200, help="distinct images they pull")
    parser.add_argument("--nodes", type=int, default=50, help="nodes they are pulled on")
    parser.add_argument("--namespaces", type=int, default=20, help="namespaces their Pods are in")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter whose `slimguard` runs (another build: another venv)"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the folding before memory is read")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a start after this long")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if min(args.events, args.digests, args.nodes, args.namespaces) < 1:
        parser.error("--events, --digests, --nodes and --namespaces must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = run(args)
    print(report(results))
    print(f"setup: {', '.join(f'{k} {v:.1f} s' for k, v in results.setup_seconds.items())}")
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
