"""Tasks that outlive the call that started them, owned so that shutdown can cancel and await them first.

A coalesced registry fetch runs as its own task (a caller that gives up must not cancel it for the others), and a
tag is re-resolved in the background. Left alone, such a task may still be sending when its client is closed; the
error it then raises surfaces through kopf at shutdown as a traceback, and a controller restart fails. So every
such task is spawned into a ``BackgroundTasks`` its component owns, and ``aclose`` cancels and awaits them all
before the component closes what they use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


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
