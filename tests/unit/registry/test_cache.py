"""The small caches the inspector is built on: LRU by digest, TTL by tag, and shared in-flight work."""

from __future__ import annotations

import asyncio

import pytest

from slimguard.registry.cache import Coalescer, LruCache, RevalidatingCache, TtlCache


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


class TagRegistry:
    """Where a tag points, and every HEAD asked of it; HEADs wait at `gate` until the test opens it."""

    def __init__(self, cache: RevalidatingCache[str, str], digest: str) -> None:
        self.cache = cache
        self.digest = digest
        self.heads = 0
        self.down = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def head(self) -> str:
        self.heads += 1
        await self.gate.wait()
        if self.down:
            raise RuntimeError("registry down")
        self.cache.put("app:1.0", self.digest)
        return self.digest

    def lookup(self) -> str | None:
        return self.cache.get("app:1.0", self.head)


def tags(clock: Clock, *, ttl: float = 120, max_stale: float = 300, refresh_after: float = 90) -> TagRegistry:
    cache: RevalidatingCache[str, str] = RevalidatingCache(
        ttl=ttl, max_stale=max_stale, refresh_after=refresh_after, retry_seconds=15, clock=clock
    )
    cache.put("app:1.0", "sha256:old")
    return TagRegistry(cache, "sha256:old")


async def settle(registry: TagRegistry) -> None:
    await asyncio.sleep(0)  # let a re-resolve just started begin
    await registry.cache.settled()


async def test_a_fresh_tag_is_answered_without_asking_the_registry() -> None:
    clock = Clock()
    registry = tags(clock)
    clock.now += 89.9
    assert registry.lookup() == "sha256:old"
    await settle(registry)
    assert registry.heads == 0


async def test_a_tag_in_use_is_re_resolved_in_the_background_ahead_of_its_ttl() -> None:
    clock = Clock()
    registry = tags(clock)
    registry.digest = "sha256:new"  # the tag moved
    registry.gate.clear()
    clock.now += 90
    assert registry.lookup() == "sha256:old", "answered at once, from memory"
    assert registry.lookup() == "sha256:old"
    await asyncio.sleep(0)
    assert (registry.heads, registry.cache.revalidating) == (1, 1), "one re-resolve, however many lookups"
    registry.gate.set()
    await settle(registry)
    assert registry.lookup() == "sha256:new"
    clock.now += 119.9  # the re-resolve started a new TTL
    assert registry.lookup() == "sha256:new"
    await settle(registry)
    assert registry.heads == 2  # due again after 90 s


async def test_past_its_ttl_the_last_digest_is_answered_until_the_staleness_runs_out() -> None:
    clock = Clock()
    registry = tags(clock, ttl=120, max_stale=300)
    registry.gate.clear()  # a registry that does not answer
    clock.now += 419.9
    assert registry.lookup() == "sha256:old"
    clock.now += 0.1  # 420 s = TTL + longest staleness
    assert registry.lookup() is None, "now the caller waits for the registry"


async def test_no_staleness_means_an_expired_tag_waits_for_the_registry() -> None:
    clock = Clock()
    registry = tags(clock, ttl=120, max_stale=0)
    clock.now += 119.9
    assert registry.lookup() == "sha256:old"
    clock.now += 0.1
    assert registry.lookup() is None


async def test_a_failed_re_resolve_keeps_the_old_digest_and_is_retried_after_a_pause() -> None:
    clock = Clock()
    registry = tags(clock)
    registry.down = True
    clock.now += 100
    assert registry.lookup() == "sha256:old"
    await settle(registry)
    assert (registry.heads, registry.cache.revalidation_failures) == (1, 1)
    clock.now += 14.9
    assert registry.lookup() == "sha256:old"
    await settle(registry)
    assert registry.heads == 1, "a failing registry is not asked on every lookup"
    registry.down = False
    registry.digest = "sha256:new"
    clock.now += 0.1
    assert registry.lookup() == "sha256:old"
    await settle(registry)
    assert (registry.heads, registry.lookup()) == (2, "sha256:new")


def test_a_lookup_outside_an_event_loop_answers_and_leaves_the_re_resolve_to_the_next() -> None:
    clock = Clock()
    registry = tags(clock)
    clock.now += 100
    assert registry.lookup() == "sha256:old"
    assert registry.cache.revalidating == 0

    async def from_a_loop() -> None:
        assert registry.lookup() == "sha256:old"
        await settle(registry)

    asyncio.run(from_a_loop())
    assert registry.heads == 1


def test_the_refresh_must_come_before_the_ttl() -> None:
    with pytest.raises(ValueError, match="refresh_after"):
        RevalidatingCache(ttl=60, max_stale=0, refresh_after=90, retry_seconds=15, clock=Clock())


async def test_background_re_resolves_are_cancelled_before_shutdown_and_leave_the_old_digest() -> None:
    """At shutdown the client closes: a re-resolve still in flight would otherwise use it closed."""
    clock = Clock()
    registry = tags(clock)
    registry.gate.clear()  # the registry does not answer before the shutdown
    clock.now += 90
    registry.lookup()
    await asyncio.sleep(0)
    assert registry.cache.revalidating == 1
    await registry.cache.tasks.aclose()
    assert registry.cache.revalidating == 0
    assert registry.lookup() == "sha256:old"
