"""Every review's decision time as a raw sample, for benchmarks (``slimguard webhook --decision-times FILE``).

The `slimguard_admission_decision_seconds` histogram is what production needs, but a histogram cannot give a p99
below its first bucket (0.5 ms): inside it any percentile is an interpolation. This records the very duration the
histogram observes (``Answer.took_ns``, one clock read shared by both), one line per review, so a benchmark computes
p50/p99/p99.9 from the samples themselves.

Off by default, and then it costs the request path one ``is None`` check. On, a review costs one list append; the
lines are formatted and written by ``flush``, which the server calls every ``FLUSH_INTERVAL`` seconds from a task
of its own and once more on shutdown, after the last review has been answered.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import IO

from slimguard.admission.costs import DecisionCosts
from slimguard.admission.decision import Answer

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
"""Seconds between writes: a benchmark reading the file waits at most this long for a review's line."""

HEADER = "# started_ns took_ns kind stage decision cpu_ns gc_ns gc_generation\n"
"""The file's columns, written whenever the file is opened (appended to): ``started_ns`` is CLOCK_MONOTONIC
(Python's ``time.monotonic_ns()``) when the review began, the clock every process on the host shares, so a
benchmark selects the reviews of its own batches by its own ``time.monotonic_ns()`` readings; ``took_ns`` is
the decision time the histogram observes; ``stage`` is where the decision ended (``Answer.stage``); ``cpu_ns``,
``gc_ns`` and ``gc_generation`` say where the time went (``admission.costs.DecisionCosts``)."""


def server_timing(answer: Answer) -> str:
    """The standard ``Server-Timing`` header value (``dur`` in milliseconds) of a review's decision time."""
    return f"decision;dur={answer.took_ns / 1_000_000:.6f}"


def _line(answer: Answer) -> str:
    costs = answer.costs or DecisionCosts()
    return (
        f"{answer.started_ns} {answer.took_ns} {answer.kind} {answer.stage} {answer.decision} "
        f"{costs.cpu_ns} {costs.gc_ns} {costs.gc_generation}\n"
    )


class DecisionTimes:
    """A buffered writer of decision-time samples, owned by the webhook server."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pending: list[Answer] = []
        self._file: IO[str] | None = None
        self.written = 0

    def record(self, answer: Answer) -> None:
        """On the request path: an append, nothing else."""
        self._pending.append(answer)

    def flush(self) -> None:
        """Write every sample recorded so far and hand it to the OS (a reader sees it)."""
        pending, self._pending = self._pending, []
        if self._file is None:
            self._file = self.path.open("a", encoding="ascii")
            self._file.write(HEADER)
        self._file.writelines(map(_line, pending))
        self._file.flush()
        self.written += len(pending)

    async def flush_every(self, interval: float = FLUSH_INTERVAL) -> None:
        """Until cancelled. A failed write is logged and its samples dropped: a benchmark's file never takes the
        webhook down."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.flush()
            except OSError as error:
                log.warning("could not write decision times to %s: %s", self.path, error)

    def close(self) -> None:
        """The last samples written, the file closed (the server calls it after the last review)."""
        try:
            self.flush()
        except OSError as error:
            log.warning("could not write decision times to %s: %s", self.path, error)
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
        log.info("%d decision times written to %s", self.written, self.path)
