"""Background work has an owner: closing it cancels and awaits every task, and no new one starts after."""

from __future__ import annotations

import asyncio

import pytest

from slimguard.registry.cache import Coalescer, RevalidatingCache
from slimguard.tasks import BackgroundTasks, ShuttingDown


async def test_closing_the_owner_ends_a_coalesced_read_that_every_caller_gave_up_on() -> None:
    tasks = BackgroundTasks("the engine")
    coalescer: Coalescer[str, int] = Coalescer(tasks)
    started, ended = asyncio.Event(), asyncio.Event()

    async def held_read() -> int:
        started.set()
        try:
            await asyncio.Event().wait()  # a registry that never answers
        finally:
            ended.set()
        return 0

    caller = asyncio.create_task(coalescer.run("image", held_read))
    await started.wait()
    caller.cancel()  # an admission deadline: the read goes on for the next caller
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not ended.is_set()
    assert len(tasks) == 1

    await tasks.aclose()

    assert ended.is_set(), "the read was still running when its owner said it had stopped"
    assert len(tasks) == 0


async def test_after_close_new_background_work_is_refused_with_a_clear_error() -> None:
    tasks = BackgroundTasks("the engine")
    await tasks.aclose()

    async def read() -> int:
        return 1

    with pytest.raises(ShuttingDown, match="the engine is shutting down"):
        await Coalescer[str, int](tasks).run("image", read)


async def test_a_tag_cache_whose_owner_closed_answers_from_memory_and_re_resolves_nothing() -> None:
    now = [0.0]
    tasks = BackgroundTasks("the inspector")
    cache: RevalidatingCache[str, str] = RevalidatingCache(
        ttl=60, max_stale=60, refresh_after=30, retry_seconds=5, clock=lambda: now[0], tasks=tasks
    )
    cache.put("app:1.0", "sha256:a")
    await tasks.aclose()
    now[0] = 45.0  # due for a background re-resolve
    resolves = 0

    async def resolve() -> None:
        nonlocal resolves
        resolves += 1

    assert cache.get("app:1.0", resolve) == "sha256:a"
    await asyncio.sleep(0)
    assert resolves == 0
    assert cache.revalidating == 0
