"""The direct drive: one webhook process pinned to one core, driven with the AdmissionReviews the apiserver sent
by a client in a child process pinned to the other core, so neither the apiserver nor the benchmark's own threads
and GIL stand between them: the reviews/s one replica sustains on one core."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import multiprocessing
import os
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.common.decision_times import DecisionSummary, server_timing_ms
from bench.common.measure import cpu_seconds, percentile
from slimguard_testbed import CertificateAuthority

WEBHOOK_CORE, CLIENT_CORE = 1, 0


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
    decision: DecisionSummary | None = None
    """The webhook's own decision time of each measured review, from its Server-Timing header (slimguard with
    --decision-times); None when the webhook sends none (always-allow)."""

    @property
    def per_second(self) -> float:
        return self.reviews / self.seconds if self.seconds else 0.0


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
    decisions: list[float] = []
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
                    decided_ms = server_timing_ms(response.headers.get("Server-Timing"))
            except aiohttp.ClientError as error:
                status, answer, decided_ms = 0, repr(error).encode(), None
            elapsed = time.perf_counter() - started
            if not (counted and measuring):
                continue
            if status == 200 and b'"allowed": true' in answer:
                result.reviews += 1
                latencies.append(elapsed * 1000)
                if decided_ms is not None:
                    decisions.append(decided_ms)
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
    result.decision = DecisionSummary.of(decisions) if decisions else None
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
