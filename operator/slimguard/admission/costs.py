"""Where a review's decision time went, for benchmarks (``--decision-times``): the event loop thread's CPU time and
the garbage collector's pauses inside it.

A decision that took 5 ms where its neighbours took 0.3 ms either worked longer (its own CPU, or another task's run
on the same loop while it awaited), paused for a garbage collection (which stops every thread: the GIL is held),
or was off the CPU (waiting on I/O, on the GIL held by another thread, or descheduled by the OS). The two clock
readings and one ``gc.callbacks`` hook here tell which, per review. Off, the webhook pays nothing for them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NO_COLLECTION = -1


@dataclass(frozen=True, slots=True)
class CostReading:
    cpu_ns: int
    gc_ns: int
    collections: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DecisionCosts:
    """Of one decision's time: ``cpu_ns`` on the CPU in the event loop's thread (garbage collection it ran
    included), ``gc_ns`` in garbage collections (in any thread: each holds the GIL), and the oldest generation
    collected meanwhile (``NO_COLLECTION`` if none)."""

    cpu_ns: int = 0
    gc_ns: int = 0
    gc_generation: int = NO_COLLECTION


class CostMeter:
    """Installed in ``gc.callbacks`` from construction until ``close``."""

    def __init__(
        self,
        *,
        thread_time: Callable[[], int] = time.thread_time_ns,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._thread_time = thread_time
        self._clock = clock
        self._gc_ns = 0
        self._gc_started = 0
        self._collections = [0, 0, 0]
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = self._clock()
            return
        self._gc_ns += self._clock() - self._gc_started
        generation = int(info.get("generation", 0))
        if 0 <= generation < len(self._collections):
            self._collections[generation] += 1

    def reading(self) -> CostReading:
        return CostReading(self._thread_time(), self._gc_ns, tuple(self._collections))

    def since(self, before: CostReading) -> DecisionCosts:
        collected = [now - then for now, then in zip(self._collections, before.collections, strict=True)]
        oldest = max((generation for generation, count in enumerate(collected) if count), default=NO_COLLECTION)
        return DecisionCosts(self._thread_time() - before.cpu_ns, self._gc_ns - before.gc_ns, oldest)

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
