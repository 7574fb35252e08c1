"""A component sets aside what start-up made: later garbage collections no longer walk it, and still collect
what is made after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from slimguard.heap import set_aside_start_up_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # other tests' objects go back to the collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_start_up_objects_are_out_of_every_collections_sight_and_later_cycles_are_still_collected(
    unfrozen: None,
) -> None:
    loaded = Node()
    assert any(tracked is loaded for tracked in gc.get_objects())

    assert set_aside_start_up_objects("test") >= 1

    assert not any(tracked is loaded for tracked in gc.get_objects()), "no generation holds it any more"
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle made after start-up
    del first, second
    assert gc.collect() >= 2
