"""What ``slimguard.metrics`` counts with when prometheus-client is not installed: metrics that keep nothing.

``pip install slimguard`` (the CLI, for CI) leaves prometheus-client out with the rest of the operator's
dependencies. The registry client, the inspector and the evaluator count their work wherever they run, but a
``slimguard check`` serves no /metrics, so there nobody could read the counts. The controller and the webhook,
which serve /metrics, need ``slimguard[operator]`` and say so at start without it.

Only what ``slimguard.metrics`` calls is here; mypy checks that module against the real library.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Self


class NoopMetric:
    """A Counter, Gauge or Histogram that accepts every call and keeps nothing."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), **options: object) -> None:
        pass

    def labels(self, *values: str, **labels: str) -> Self:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def time(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


Counter = Gauge = Histogram = NoopMetric


class GaugeMetricFamily:
    """A fleet family nobody will scrape."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        pass

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        pass


class Collector:
    """The base of ``metrics.FleetCollector``."""


class NoopRegistry:
    def register(self, collector: Collector) -> None:
        pass


REGISTRY = NoopRegistry()
