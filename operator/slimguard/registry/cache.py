"""Small caches with injected clocks: facts by digest (LRU) and tag → digest (TTL)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

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
    """Concurrent callers asking for the same key share one in-flight computation."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        existing = self._inflight.get(key)
        if existing is not None:
            return await asyncio.shield(existing)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters may be none
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]
