"""Small caches with injected clocks: facts by digest (LRU), TTLs, and tag → digest (stale-while-revalidate)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from slimguard.tasks import BackgroundTasks

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Least recently used out first, once the items' total weight (by default: their number) passes ``capacity``."""

    def __init__(self, capacity: int, weigh: Callable[[V], int] | None = None) -> None:
        self.capacity = capacity
        self._weigh = weigh or (lambda _value: 1)
        self._items: OrderedDict[K, V] = OrderedDict()
        self.weight = 0

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        before = self._items.get(key)
        if before is not None:
            self.weight -= self._weigh(before)
        self._items[key] = value
        self._items.move_to_end(key)
        self.weight += self._weigh(value)
        while self.weight > self.capacity and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self.weight -= self._weigh(evicted)
        if self.weight > self.capacity:  # one item heavier than the whole cache: not kept
            self._items.clear()
            self.weight = 0

    def __len__(self) -> int:
        return len(self._items)


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, clock: Callable[[], float], capacity: int = 65536) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: LruCache[K, tuple[float, V]] = LruCache(capacity)

    def get(self, key: K) -> V | None:
        entry = self._items.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        self._items.put(key, (self._clock() + self.ttl, value))


class Coalescer(Generic[K, V]):
    """Concurrent callers asking for the same key share one in-flight computation.

    The computation runs as its own task: a caller that gives up (an admission deadline) does not cancel it,
    so the facts still land in the cache for the next request. That task belongs to ``tasks``, which the owner
    closes at shutdown before closing what the computation uses.
    """

    def __init__(self, tasks: BackgroundTasks | None = None) -> None:
        self.tasks = tasks if tasks is not None else BackgroundTasks("a coalescer")
        self._inflight: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        task = self._inflight.get(key)
        if task is None:
            task = self.tasks.spawn(_awaited(compute))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so nobody is warned when every caller gave up

    def __len__(self) -> int:
        return len(self._inflight)


async def _awaited(compute: Callable[[], Awaitable[V]]) -> V:
    return await compute()


@dataclass
class _Resolved(Generic[V]):
    value: V
    resolved_at: float
    retry_at: float  # no background re-resolve before this (one is in flight, or the last one failed)


class RevalidatingCache(Generic[K, V]):
    """Tag → digest, stale-while-revalidate: a seen key is answered from memory and re-resolved in the background.

    - Younger than ``refresh_after``: answered, nothing else.
    - From ``refresh_after`` on (ahead of the TTL, so an image in use never reaches it): answered, and each
      answer makes sure one background re-resolve runs (not again within ``retry_seconds`` of a failed one).
    - Older than ``ttl`` and younger than ``ttl + max_stale``: still answered while re-resolving.
    - Older than ``ttl + max_stale``: forgotten; the caller waits for the registry.

    So an answer is never older than ``ttl + max_stale`` seconds since the registry last said it.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_stale: float,
        refresh_after: float,
        retry_seconds: float,
        clock: Callable[[], float],
        capacity: int = 65536,
        tasks: BackgroundTasks | None = None,
    ) -> None:
        if not 0 <= refresh_after <= ttl:
            raise ValueError(f"refresh_after ({refresh_after}) must lie between 0 and the TTL ({ttl})")
        self.ttl = ttl
        self.max_stale = max_stale
        self.refresh_after = refresh_after
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._items: LruCache[K, _Resolved[V]] = LruCache(capacity)
        self.tasks = tasks if tasks is not None else BackgroundTasks("a tag cache")
        """Owns the background re-resolves: closing it (before the client closes) cancels them."""
        self._background: set[asyncio.Task[object]] = set()
        self.revalidation_failures = 0

    def get(self, key: K, revalidate: Callable[[], Coroutine[Any, Any, object]] | None = None) -> V | None:
        """The value if it may still be answered; with ``revalidate``, starts it in the background when due.

        ``revalidate`` must ``put`` the new value itself (it is the same resolution a miss waits for).
        """
        entry = self._items.get(key)
        if entry is None:
            return None
        now = self._clock()
        age = now - entry.resolved_at
        if age >= self.ttl + self.max_stale:
            return None
        if revalidate is not None and age >= self.refresh_after and now >= entry.retry_at:
            entry.retry_at = float("inf")  # until this one finishes
            self._start(entry, revalidate)
        return entry.value

    def put(self, key: K, value: V) -> None:
        now = self._clock()
        self._items.put(key, _Resolved(value, now, now))

    def _start(self, entry: _Resolved[V], revalidate: Callable[[], Coroutine[Any, Any, object]]) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop running (a synchronous caller): the next async one will
            entry.retry_at = self._clock()
            return
        if self.tasks.closed:  # shutting down: answer from memory, re-resolve nothing
            return
        task: asyncio.Task[object] = self.tasks.spawn(revalidate())
        self._background.add(task)
        task.add_done_callback(lambda done: self._finished(entry, done))

    def _finished(self, entry: _Resolved[V], task: asyncio.Task[object]) -> None:
        self._background.discard(task)
        if task.cancelled() or task.exception() is not None:
            # The old value stays (until its staleness runs out); the registry is asked again after a pause.
            self.revalidation_failures += 1
            entry.retry_at = self._clock() + self.retry_seconds

    async def settled(self) -> None:
        """Returns once no background re-resolve is in flight (their failures are kept, not raised)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    @property
    def revalidating(self) -> int:
        """Background re-resolves in flight."""
        return len(self._background)

    def __len__(self) -> int:
        return len(self._items)
