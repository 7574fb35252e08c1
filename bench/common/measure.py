"""Measuring processes and the machine: CPU seconds and memory from /proc, percentiles, Prometheus counters."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q of all values at or below it, i.e. the
    ceil(q * n)-th smallest; always one of the values, never interpolated. NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(round(q * len(ordered), 9))  # round: 0.99 * 100 is 99.00000000000001, rank 99 not 100
    return ordered[max(rank, 1) - 1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak the kernel recorded since the process started), those it reports."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def peak_rss_mb(pid: int) -> float:
    """VmHWM in MB; NaN when the kernel does not report it."""
    peak = memory_kib(pid).get("VmHWM")
    return math.nan if peak is None else peak / 1024


def counter_total(metrics: str, name: str) -> float:
    """A Prometheus counter summed over its label sets, read from a /metrics page."""
    prefix = name + "{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"
