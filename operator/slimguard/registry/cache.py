"""Small caches with injected clocks: facts by digest (LRU) and tag → digest (TTL)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

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
    so the facts still land in the cache for the next request.
    """

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(compute())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so nobody is warned when every caller gave up

    def __len__(self) -> int:
        return len(self._inflight)
