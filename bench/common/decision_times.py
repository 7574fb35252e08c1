"""slimguard's decision times as raw samples (`slimguard webhook --decision-times FILE`), read from the webhook's
file or from its `Server-Timing` headers, and their exact percentiles.

The `slimguard_admission_decision_seconds` histogram cannot give a percentile below its first bucket (0.5 ms):
inside a bucket, any quantile is an interpolation. These are the durations the histogram observed, one per review.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common.measure import nearest_rank

WEBHOOK_FLAG = "--decision-times"


@dataclass(frozen=True)
class DecisionSample:
    """One line of the webhook's file: see `slimguard.admission.decision_times.HEADER`."""

    started_ns: int  # CLOCK_MONOTONIC, as this process's time.monotonic_ns() reads it
    took_ns: int
    kind: str
    stage: str
    decision: str
    # Where the time went (slimguard.admission.costs), in builds that write it; None in older builds' files.
    cpu_ns: int | None = None
    gc_ns: int | None = None
    gc_generation: int | None = None


def parse_samples(text: str) -> list[DecisionSample]:
    """Every complete line; the header (#) and a line still being written (no newline yet) are skipped."""
    samples = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#") or not line.endswith("\n"):
            continue
        started, took, kind, stage, decision, *costs = line.split()
        cpu, gc, generation = (int(value) for value in costs) if len(costs) == 3 else (None, None, None)
        samples.append(DecisionSample(int(started), int(took), kind, stage, decision, cpu, gc, generation))
    return samples


def read_samples(path: Path) -> list[DecisionSample]:
    return parse_samples(path.read_text(encoding="ascii")) if path.exists() else []


def within_windows(samples: Iterable[DecisionSample], windows: Sequence[tuple[int, int]]) -> list[DecisionSample]:
    """The samples whose review began inside one of the (start, end) windows, in ns of time.monotonic_ns()."""
    return [s for s in samples if any(start <= s.started_ns <= end for start, end in windows)]


def server_timing_ms(header: str | None, metric: str = "decision") -> float | None:
    """``dur`` of ``metric`` in a Server-Timing header (``decision;dur=0.254, other;desc="x"``), in ms."""
    for entry in (header or "").split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if name != metric:
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "dur":
                return float(value.strip().strip('"'))
    return None


@dataclass(frozen=True)
class DecisionSummary:
    """Nearest-rank percentiles of raw samples: each is one of the measured durations, none interpolated."""

    count: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @classmethod
    def of(cls, durations_ms: Sequence[float]) -> DecisionSummary:
        return cls(
            len(durations_ms),
            nearest_rank(durations_ms, 0.5),
            nearest_rank(durations_ms, 0.99),
            nearest_rank(durations_ms, 0.999),
            max(durations_ms, default=math.nan),
        )

    @classmethod
    def of_samples(cls, samples: Sequence[DecisionSample]) -> DecisionSummary:
        return cls.of([s.took_ns / 1e6 for s in samples])

    def describe(self) -> str:
        """``p50 0.254 ms, p99 0.912 ms, p99.9 2.310 ms, max 4.004 ms``; below 1,000 samples p99.9 is the max,
        and says so."""
        if not self.count:
            return "no samples"
        p999 = "= max" if self.count < 1000 else f"{self.p999_ms:.3f} ms"
        return f"p50 {self.p50_ms:.3f} ms, p99 {self.p99_ms:.3f} ms, p99.9 {p999}, max {self.max_ms:.3f} ms"


@dataclass(frozen=True)
class TailAttribution:
    """The decisions slower than ``over_ms`` and where their time went, from each sample's own costs: garbage
    collection, other CPU in the event loop's thread (this review's work, or another task's run while it awaited),
    and time off the CPU (I/O, the GIL held by another thread, the OS running something else)."""

    over_ms: float
    slow: int
    total: int
    collections: dict[int, int]  # slow decisions by the oldest generation collected inside them
    gc_share: float
    cpu_share: float
    off_cpu_share: float

    @classmethod
    def of(cls, samples: Sequence[DecisionSample], over_ms: float = 1.0) -> TailAttribution | None:
        """None when the samples carry no costs (a build before they were written)."""
        measured = [s for s in samples if s.cpu_ns is not None]
        if not measured:
            return None
        slow = [s for s in measured if s.took_ns > over_ms * 1e6]
        collections: dict[int, int] = {}
        gc_ns = cpu_ns = off_ns = 0
        for s in slow:
            if s.gc_generation is not None and s.gc_generation >= 0:
                collections[s.gc_generation] = collections.get(s.gc_generation, 0) + 1
            collected = min(s.gc_ns or 0, s.took_ns)
            other_cpu = max(0, min(s.cpu_ns or 0, s.took_ns) - collected)
            gc_ns, cpu_ns, off_ns = gc_ns + collected, cpu_ns + other_cpu, off_ns + s.took_ns - collected - other_cpu
        spent = max(gc_ns + cpu_ns + off_ns, 1)
        return cls(over_ms, len(slow), len(measured), collections, gc_ns / spent, cpu_ns / spent, off_ns / spent)

    def describe(self) -> str:
        """``7 of 704 over 1 ms; 5 with a collection (gen 2: 4, gen 0: 1); their time: 58 % GC, 30 % other CPU,
        12 % off the CPU``"""
        head = f"{self.slow} of {self.total} over {self.over_ms:g} ms"
        if not self.slow:
            return head
        with_gc = sum(self.collections.values())
        by_generation = ", ".join(f"gen {g}: {n}" for g, n in sorted(self.collections.items(), reverse=True))
        return (
            f"{head}; {with_gc} with a collection{f' ({by_generation})' if with_gc else ''}; their time: "
            f"{self.gc_share * 100:.0f} % GC, {self.cpu_share * 100:.0f} % other CPU, "
            f"{self.off_cpu_share * 100:.0f} % off the CPU"
        )
