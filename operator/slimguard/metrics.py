"""Prometheus metrics: what slimguard inspected, decided and wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

EVALUATIONS = Counter("slimguard_evaluations_total", "Workload evaluations.", ["status"])
EVALUATION_SECONDS = Histogram(
    "slimguard_evaluation_seconds",
    "Time to evaluate one workload, facts included.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10),
)
ADMISSION_DECISIONS = Counter(
    "slimguard_admission_reviews_total", "Admission reviews answered, by kind and decision.", ["kind", "decision"]
)
ADMISSION_SECONDS = Histogram(
    "slimguard_admission_decision_seconds",
    "Time from receiving an AdmissionReview to its answer, inside the webhook.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ADMISSION_UNKNOWN = Counter(
    "slimguard_admission_unknown_total",
    "Images whose facts could not be had before the admission deadline (onUnknown decided).",
    ["policy"],
)
ADMISSION_FAILURES = Counter(
    "slimguard_admission_failures_total", "Reviews that failed inside slimguard and were admitted unchecked."
)


class ComplianceCollector(Collector):
    """Workloads per policy and status, computed at scrape time from the controller's verdicts: never stale."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "slimguard_workloads",
            "Workloads an ImagePolicy applies to, by verdict status.",
            labels=["policy", "status"],
        )
        for policy, status, count in self.source():
            family.add_metric([policy, status], count)
        yield family


def register_compliance(source: Callable[[], Iterable[tuple[str, str, int]]]) -> ComplianceCollector:
    collector = ComplianceCollector(source)
    REGISTRY.register(collector)
    return collector
