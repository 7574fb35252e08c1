"""``--decision-times``: every review's decision time as a raw sample for benchmarks, the very duration the
`slimguard_admission_decision_seconds` histogram observes, in a file and in a ``Server-Timing`` header; off by
default, and then nothing is recorded, written or sent.

The reviewer's clock is injected (each reading 250 µs after the last), so the durations are known exactly; no
test here depends on how fast anything runs."""

from __future__ import annotations

import asyncio
import gc
import itertools
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from admission.test_decision import create, policy, reviewer
from slimguard.admission.costs import NO_COLLECTION, DecisionCosts
from slimguard.admission.decision import Answer
from slimguard.admission.decision_times import HEADER, DecisionTimes
from slimguard.admission.server import ServerSettings, WebhookServer

TICK_NS = 250_000


def serving(times: Path | None) -> WebhookServer:
    checking = reviewer(policy("Enforce"))
    checking.timer = itertools.count(10**12, TICK_NS).__next__  # two readings per review: 250 µs each
    settings = ServerSettings(shutdown_delay=0, decision_times_file=str(times or ""))
    return WebhookServer(reviewer=checking, view=checking.view, settings=settings)


def review(request: dict[str, Any], uid: str) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {**request, "uid": uid}}


def histogram_sum() -> float:
    return REGISTRY.get_sample_value("slimguard_admission_decision_seconds_sum") or 0.0


async def test_n_reviews_are_n_samples_of_the_time_the_histogram_observed(tmp_path: Path) -> None:
    times = tmp_path / "decision-times.txt"
    server = serving(times)
    secret = {"kind": {"kind": "Secret"}, "operation": "CREATE", "object": {"metadata": {"name": "s"}}}
    requests = [create(), secret, create(), create()]
    observed = histogram_sum()
    async with TestClient(TestServer(server.app())) as client:
        for number, request in enumerate(requests):
            answer = await client.post("/validate", json=review(request, f"uid-{number}"))
            assert answer.status == 200
            assert answer.headers["Server-Timing"] == "decision;dur=0.250000"
    await server.stop()  # the last samples are written on shutdown, after the last review
    lines = times.read_text().splitlines()
    assert lines[0] == HEADER.strip()
    samples = [line.split() for line in lines[1:]]
    assert [(took, kind, stage) for _, took, kind, stage, *_ in samples] == [
        (str(TICK_NS), "Deployment", "evaluated"),
        (str(TICK_NS), "other", "ignored"),
        (str(TICK_NS), "Deployment", "evaluated"),
        (str(TICK_NS), "Deployment", "evaluated"),
    ]
    started = [int(sample[0]) for sample in samples]
    assert started == sorted(started)
    assert histogram_sum() - observed == pytest.approx(len(requests) * TICK_NS / 1e9)


async def test_off_by_default_nothing_is_recorded_written_or_sent(tmp_path: Path) -> None:
    server = serving(None)
    assert server.decision_times is None
    async with TestClient(TestServer(server.app())) as client:
        answer = await client.post("/validate", json=review(create(), "uid"))
        assert answer.status == 200
        assert "Server-Timing" not in answer.headers
    await server.stop()
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (a test's own directory, empty)


async def test_samples_are_written_while_the_webhook_runs_not_only_at_its_end(tmp_path: Path) -> None:
    times = DecisionTimes(tmp_path / "decision-times.txt")
    flushing = asyncio.create_task(times.flush_every(0))
    times.record(Answer(True, kind="Pod", stage="unmatched", started_ns=5, took_ns=7))
    for _ in range(100):
        await asyncio.sleep(0)
        if times.written:
            break
    flushing.cancel()
    assert (tmp_path / "decision-times.txt").read_text() == HEADER + "5 7 Pod unmatched allowed 0 0 -1\n"


async def test_a_file_that_cannot_be_written_never_stops_the_webhook(tmp_path: Path) -> None:
    times = DecisionTimes(tmp_path / "gone" / "decision-times.txt")
    flushing = asyncio.create_task(times.flush_every(0))
    times.record(Answer(True, took_ns=1))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not flushing.done()
    flushing.cancel()
    times.close()
    assert times.written == 0


async def test_each_sample_says_how_much_of_its_time_was_cpu_and_garbage_collection(tmp_path: Path) -> None:
    times = tmp_path / "decision-times.txt"
    server = serving(times)
    collected = False

    async def collecting(kind: str, request: Any) -> Any:  # the collector runs inside a review, as it may anywhere
        nonlocal collected
        if not collected:
            collected = True
            gc.collect()
        return await decide(kind, request)

    decide, server.reviewer._decide = server.reviewer._decide, collecting  # type: ignore[method-assign]
    async with TestClient(TestServer(server.app())) as client:
        for number in range(2):
            assert (await client.post("/validate", json=review(create(), f"uid-{number}"))).status == 200
    await server.stop()
    assert server.reviewer.meter is not None
    assert server.reviewer.meter._on_gc not in gc.callbacks, "the hook goes with the file"
    first, _ = [line.split() for line in times.read_text().splitlines()[1:]]
    cpu_ns, gc_ns, generation = map(int, first[5:])
    assert generation == 2, "the full collection inside the first review is counted in it"
    assert gc_ns > 0
    assert cpu_ns > 0


async def test_without_a_collection_a_sample_says_none(tmp_path: Path) -> None:
    times = DecisionTimes(tmp_path / "decision-times.txt")
    times.record(Answer(True, kind="Pod", stage="unmatched", started_ns=5, took_ns=7, costs=DecisionCosts(6, 0)))
    times.close()
    assert times.path.read_text().splitlines()[1].split()[5:] == ["6", "0", str(NO_COLLECTION)]
