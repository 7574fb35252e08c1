"""The work queue: a key is handed to one worker at a time, and a request made meanwhile is kept, once."""

from __future__ import annotations

import asyncio

from slimguard.controller.queue import WorkQueue


async def test_a_key_asked_for_twice_before_it_is_taken_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    queue.done("a")
    queue.done("b")
    assert queue.idle
    await asyncio.wait_for(queue.join(), timeout=1)


async def test_a_key_asked_for_while_it_is_processed_waits_and_then_runs_once_more() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    queue.add("a")
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not second.done(), "a second worker must not get a key that is still being processed"
    assert not queue.idle
    queue.done("a")
    assert await asyncio.wait_for(second, timeout=1) == "a"
    queue.done("a")
    assert queue.idle


async def test_join_waits_for_a_key_queued_again_while_it_was_processed() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    await queue.get()
    queue.add("a")
    joined = asyncio.create_task(queue.join())
    queue.done("a")
    await asyncio.sleep(0)
    assert not joined.done()
    await queue.get()
    queue.done("a")
    await asyncio.wait_for(joined, timeout=1)
