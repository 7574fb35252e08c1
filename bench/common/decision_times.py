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


def parse_samples(text: str) -> list[DecisionSample]:
    """Every complete line; the header (#) and a line still being written (no newline yet) are skipped."""
    samples = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#") or not line.endswith("\n"):
            continue
        started, took, kind, stage, decision = line.split()
        samples.append(DecisionSample(int(started), int(took), kind, stage, decision))
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
