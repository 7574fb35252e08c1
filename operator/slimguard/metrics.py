"""Prometheus metrics: what slimguard inspected, decided and wrote."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INSPECTIONS = Counter(
    "slimguard_image_inspections_total", "Images inspected from their registry (cache misses).", ["outcome"]
)
EVALUATIONS = Counter("slimguard_evaluations_total", "Workload evaluations.", ["status"])
EVALUATION_SECONDS = Histogram(
    "slimguard_evaluation_seconds",
    "Time to evaluate one workload, facts included.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10),
)
