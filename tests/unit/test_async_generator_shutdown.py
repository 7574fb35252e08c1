"""A stopped operator logs no error for the watch streams kopf leaves open.

kopf's watcher, cancelled at shutdown, leaves each watch stream parked at its ``yield`` inside kopf's own
``streaming_block`` context manager. These tests build that state with kopf's real ``streaming_block`` (no API
needed: without a pause toggle it waits on nothing) and stop the loop as ``slimguard controller`` and
``slimguard webhook`` do.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from kopf._cogs.clients.watching import streaming_block  # the context manager kopf's infinite_watch enters
from kopf._cogs.structs.references import Resource

from slimguard.kube.kopf_tuning import run_operator
from slimguard.tasks import AsyncGeneratorsClosedOutermostFirst

PODS = Resource(group="", version="v1", plural="pods")
STREAMS = 4


class Watches:
    """Watch streams shaped as kopf's ``infinite_watch``, each read once and then abandoned, as a cancelled
    watcher abandons them (its traceback keeps them alive until the loop ends)."""

    def __init__(self) -> None:
        self.streams: list[AsyncGenerator[int, None]] = []
        self.blocks: list[AsyncGenerator[Any, None]] = []  # the generator inside each streaming_block
        self.stopped: list[int] = []

    async def stream(self, number: int) -> AsyncGenerator[int, None]:
        try:
            while True:
                block = streaming_block(resource=PODS, namespace=None)
                self.blocks.append(block.gen)
                async with block:
                    yield number
        finally:
            self.stopped.append(number)

    async def operator(self) -> None:
        for number in range(STREAMS):
            stream = self.stream(number)
            await anext(stream)
            self.streams.append(stream)

    def open(self) -> list[AsyncGenerator[Any, None]]:
        return [generator for generator in self.streams + self.blocks if generator.ag_frame is not None]


async def test_a_stopped_operator_closes_the_watch_streams_it_left_open_before_its_loop_ends() -> None:
    """asyncio would close what is left in no set order; nothing is left for it."""
    watches = Watches()

    await AsyncGeneratorsClosedOutermostFirst().run(watches.operator())

    assert watches.open() == []
    assert sorted(watches.stopped) == list(range(STREAMS))


def test_an_operator_stopped_with_watch_streams_open_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    watches = Watches()

    run_operator(watches.operator())

    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert sorted(watches.stopped) == list(range(STREAMS))


async def test_why_the_order_matters_kopfs_streaming_block_closed_before_its_stream_breaks_the_stream() -> None:
    """What asyncio did on some stops. When this stops raising, kopf or asyncio has fixed it and
    ``AsyncGeneratorsClosedOutermostFirst`` can go."""
    watches = Watches()
    await watches.operator()
    stream, block = watches.streams[0], watches.blocks[0]

    await block.aclose()
    with pytest.raises(RuntimeError, match="generator didn't stop after athrow"):
        await stream.aclose()
