"""A work queue that never hands one key to two workers at once (client-go's workqueue "dirty/processing").

Two workers reconciling the same workload both read the annotations as they were before either wrote, so
both would write and both would emit the Event. Here a key that is being processed is not handed out again;
asked for meanwhile, it is marked dirty and queued once more when the current pass finishes, so the change
that asked for it is still seen, by one worker, after the first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()  # wanted: queued, or waiting for its current pass to finish
        self._processing: set[K] = set()  # handed to a worker and not yet done

    def add(self, key: K) -> None:
        """Ask for ``key`` to be processed; asking again before it is taken adds nothing."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:  # else done() queues it, so it never runs twice at once
            self._queue.put_nowait(key)

    async def get(self) -> K:
        """The next key; the caller must call ``done(key)`` when it has finished with it."""
        key = await self._queue.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)
        self._queue.task_done()  # after the re-queue, so join() never sees a moment with nothing to do

    async def join(self) -> None:
        """Wait until every key asked for has been processed, including those re-queued meanwhile."""
        await self._queue.join()

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing being processed: a pass over everything asked for has finished."""
        return not self._dirty and not self._processing
