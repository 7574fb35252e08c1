"""Tasks that outlive the call that started them, owned so that shutdown can cancel and await them first.

A coalesced registry fetch runs as its own task (a caller that gives up must not cancel it for the others), and a
tag is re-resolved in the background. Left alone, such a task may still be sending when its client is closed; the
error it then raises surfaces through kopf at shutdown as a traceback, and a controller restart fails. So every
such task is spawned into a ``BackgroundTasks`` its component owns, and ``aclose`` cancels and awaits them all
before the component closes what they use.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections.abc import AsyncGenerator, Coroutine
from types import AsyncGeneratorType
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


class ShuttingDown(RuntimeError):
    """New background work was asked for after its owner began to shut down."""


class BackgroundTasks:
    """A set of tasks with one owner: ``spawn`` adds one, ``aclose`` cancels and awaits every one, then refuses more."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coroutine: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Start ``coroutine`` as a task of this set (in the running loop)."""
        if self._closed:
            coroutine.close()  # never awaited: close it so Python does not warn about it
            raise ShuttingDown(f"{self.owner} is shutting down: no new background work")
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Cancel every task and wait until each has finished; errors they raise are theirs, not the caller's."""
        self._closed = True
        while self._tasks:  # a task being cancelled cannot spawn (closed), but check again until none is left
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._tasks)


class AsyncGeneratorsClosedOutermostFirst:
    """Close the async generators a coroutine abandoned, in the order they started, before its loop ends.

    kopf (1.45.2) iterates each watch stream without ``aclosing`` it, so a watcher cancelled at shutdown leaves
    ``infinite_watch`` suspended at its ``yield``, holding the ``streaming_block`` context manager's own
    generator. ``asyncio.run`` then closes every live async generator in no particular order: when the inner one
    goes first, closing the outer raises ``RuntimeError: generator didn't stop after athrow()``, logged as an
    ERROR now and then (once in a 52-minute rehearsal; tests/unit/test_async_generator_shutdown.py shows the
    inner-first close failing). An outer generator always starts before the ones it opens, so closing in start
    order lets each close its own.
    """

    def __init__(self) -> None:
        self._started: dict[int, weakref.ref[AsyncGenerator[Any, Any]]] = {}  # insertion order is start order

    async def run(self, main: Coroutine[Any, Any, T]) -> T:
        loop_firstiter, loop_finalizer = sys.get_asyncgen_hooks()  # asyncio's: it must still see every generator

        def firstiter(generator: AsyncGenerator[Any, Any]) -> None:
            key = id(generator)

            def forget(_: weakref.ref[AsyncGenerator[Any, Any]]) -> None:
                self._started.pop(key, None)

            self._started[key] = weakref.ref(generator, forget)
            if loop_firstiter is not None:
                loop_firstiter(generator)

        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=loop_finalizer)
        try:
            return await main
        finally:
            sys.set_asyncgen_hooks(firstiter=loop_firstiter, finalizer=loop_finalizer)
            await self._close_abandoned()

    async def _close_abandoned(self) -> None:
        for ref in list(self._started.values()):
            generator = ref()
            if not isinstance(generator, AsyncGeneratorType) or generator.ag_frame is None:
                continue  # gone, or already closed (an inner one, by its outer)
            if generator.ag_await is not None:
                continue  # inside an await: a live task is still reading it
            try:
                await generator.aclose()
            except Exception:  # what a stream raises while closing is its own; the rest must still be closed
                logger.debug("An abandoned async generator %r failed to close.", generator, exc_info=True)
        self._started.clear()
