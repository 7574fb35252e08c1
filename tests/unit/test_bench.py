"""bench/: the shared pieces every benchmark's figures and tables go through, and each benchmark's command line.

The benchmarks themselves start a control plane and run for minutes; these check, in milliseconds, that they
import (bench is a package: `python -m bench.NAME`, no sys.path edits) and that what they share says the same.
"""

from __future__ import annotations

import importlib
import math

import pytest

from bench.common.measure import counter_total, percentile
from bench.common.tables import met, table

BENCHMARKS = ("admission_latency", "audit_scale", "kyverno_comparison", "layer_walk", "reports_scale")


def test_percentile_interpolates_between_closest_ranks_as_numpy_does() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.99) == pytest.approx(4.96)
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_a_counter_is_summed_over_its_label_sets_and_no_other_metric() -> None:
    metrics = "\n".join(
        [
            "# HELP slimguard_admission_reviews_total Reviews answered.",
            "# TYPE slimguard_admission_reviews_total counter",
            'slimguard_admission_reviews_total{decision="allowed",kind="Pod"} 12.0',
            'slimguard_admission_reviews_total{decision="denied",kind="Deployment"} 3.0',
            'slimguard_admission_reviews_created{decision="allowed",kind="Pod"} 1.7e+09',
            'slimguard_evaluations_total{status="compliant"} 5.0',
        ]
    )
    assert counter_total(metrics, "slimguard_admission_reviews_total") == 15.0
    assert counter_total(metrics, "slimguard_evaluations_total") == 5.0
    assert counter_total(metrics, "kyverno_admission_requests_total") == 0.0


def test_tables_are_markdown_with_a_met_column_that_never_asserts() -> None:
    assert table(("Measure", "Result"), [("a", "1"), ("b", "2")]) == (
        "| Measure | Result |\n|---|---|\n| a | 1 |\n| b | 2 |"
    )
    assert [met(True), met(False), met(None)] == ["yes", "NO", "n/a"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_imports_as_a_module_of_the_bench_package_and_answers_help(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"bench.{name}")
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_the_admission_bench_reads_the_share_within_a_bound_the_decision_histogram_has() -> None:
    """It printed "nan % within 2 ms" once the buckets no longer had 0.002."""
    from bench.admission_report import WITHIN_SECONDS, summarise_histogram
    from slimguard.metrics import ADMISSION_BUCKETS

    assert WITHIN_SECONDS in ADMISSION_BUCKETS
    bounds = [*ADMISSION_BUCKETS, math.inf]
    after = {
        bound: (90.0 if bound < WITHIN_SECONDS else 99.0 if bound == WITHIN_SECONDS else 100.0) for bound in bounds
    }
    assert summarise_histogram({}, after).within == 0.99
