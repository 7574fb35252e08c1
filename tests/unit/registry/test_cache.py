"""The small caches the inspector is built on: LRU by digest, TTL by tag, and shared in-flight work."""

from __future__ import annotations

import asyncio

import pytest

from slimguard.registry.cache import Coalescer, LruCache, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lru_forgets_the_least_recently_used_entry_first() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_a_ttl_entry_expires_exactly_at_its_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(15.0, clock)
    cache.put("tag", "sha256:a")
    clock.now += 14.9
    assert cache.get("tag") == "sha256:a"
    clock.now += 0.1
    assert cache.get("tag") is None


def test_putting_again_restarts_the_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(10.0, clock)
    cache.put("tag", "old")
    clock.now += 8
    cache.put("tag", "new")
    clock.now += 8
    assert cache.get("tag") == "new"


def test_the_ttl_cache_is_bounded() -> None:
    cache: TtlCache[int, int] = TtlCache(60.0, Clock(), capacity=3)
    for n in range(5):
        cache.put(n, n)
    assert [cache.get(n) for n in range(5)] == [None, None, 2, 3, 4]


async def test_concurrent_callers_of_one_key_share_one_computation() -> None:
    coalescer: Coalescer[str, int] = Coalescer()
    release = asyncio.Event()
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    waiting = [asyncio.create_task(coalescer.run("k", compute)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [42] * 5
    assert calls == 1
    assert len(coalescer) == 0


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_work() -> None:
    coalescer: Coalescer[str, int] = Coalescer()
    release = asyncio.Event()
    finished: list[int] = []

    async def compute() -> int:
        await release.wait()
        finished.append(1)
        return 7

    impatient = asyncio.create_task(coalescer.run("k", compute))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    patient = asyncio.create_task(coalescer.run("k", compute))
    release.set()
    assert await patient == 7
    assert finished == [1]


async def test_a_failure_reaches_every_waiting_caller_and_the_next_call_starts_afresh() -> None:
    coalescer: Coalescer[str, int] = Coalescer()
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("registry down")
        return 1

    with pytest.raises(RuntimeError, match="registry down"):
        await coalescer.run("k", flaky)
    assert await coalescer.run("k", flaky) == 1
