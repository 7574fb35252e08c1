"""bench/: the shared pieces every benchmark's figures and tables go through, and each benchmark's command line.

The benchmarks themselves start a control plane and run for minutes; these check, in milliseconds, that they
import (bench is a package: `python -m bench.NAME`, no sys.path edits) and that what they share says the same.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

from bench.common.decision_times import (
    DecisionSample,
    DecisionSummary,
    TailAttribution,
    parse_samples,
    read_samples,
    server_timing_ms,
    within_windows,
)
from bench.common.measure import counter_total, nearest_rank, percentile
from bench.common.tables import met, table

BENCHMARKS = (
    "admission_latency",
    "audit_scale",
    "image_diff",
    "kyverno_comparison",
    "layer_walk",
    "pull_events_scale",
    "reports_scale",
)


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


def test_nearest_rank_is_the_smallest_value_with_q_of_all_values_at_or_below_it() -> None:
    hundred = [float(n) for n in range(100, 0, -1)]
    assert nearest_rank(hundred, 0.5) == 50.0
    assert nearest_rank(hundred, 0.99) == 99.0  # 0.99 * 100 is 99.00000000000001 in floats: still the 99th
    assert nearest_rank([float(n) for n in range(1, 1001)], 0.999) == 999.0
    assert nearest_rank([float(n) for n in range(1, 1001)], 1.0) == 1000.0
    assert nearest_rank([0.3, 0.1, 4.2], 0.5) == 0.3  # a measured value, where interpolation would say otherwise
    assert nearest_rank([7.0], 0.001) == 7.0
    assert math.isnan(nearest_rank([], 0.5))


def test_the_webhooks_decision_times_file_is_read_back_sample_for_sample(tmp_path: Path) -> None:
    from slimguard.admission.costs import NO_COLLECTION, DecisionCosts
    from slimguard.admission.decision import Answer
    from slimguard.admission.decision_times import DecisionTimes

    path = tmp_path / "times.txt"
    writer = DecisionTimes(path)
    writer.record(Answer(False, kind="Deployment", stage="evaluated", decision="denied", started_ns=10, took_ns=250))
    writer.record(Answer(True, kind="other", stage="ignored", started_ns=20, took_ns=30, costs=DecisionCosts(25, 4, 0)))
    writer.close()
    assert read_samples(path) == [
        DecisionSample(10, 250, "Deployment", "evaluated", "denied", 0, 0, NO_COLLECTION),
        DecisionSample(20, 30, "other", "ignored", "allowed", 25, 4, 0),
    ]
    assert read_samples(tmp_path / "not-yet-written.txt") == []


def test_a_line_still_being_written_is_left_for_the_next_read_and_windows_select_by_start() -> None:
    samples = parse_samples("# started_ns took_ns kind stage decision\n100 5 Pod evaluated allowed\n300 7 Pod ev")
    assert samples == [DecisionSample(100, 5, "Pod", "evaluated", "allowed")]
    more = [*samples, DecisionSample(200, 1, "Pod", "unmatched", "allowed"), DecisionSample(400, 2, "Pod", "x", "y")]
    assert [s.started_ns for s in within_windows(more, [(90, 100), (390, 500)])] == [100, 400]


def test_the_slow_decisions_time_is_split_into_collection_other_cpu_and_off_cpu() -> None:
    ms = 1_000_000
    samples = [
        DecisionSample(1, ms // 4, "Pod", "evaluated", "allowed", ms // 4, 0, -1),  # fast: not in the tail
        DecisionSample(2, 4 * ms, "Pod", "evaluated", "allowed", 3 * ms, 2 * ms, 2),  # 2 GC, 1 CPU, 1 off
        DecisionSample(3, 4 * ms, "Pod", "evaluated", "allowed", ms, 0, -1),  # 1 CPU, 3 off
    ]
    tail = TailAttribution.of(samples, over_ms=1.0)
    assert tail is not None
    assert (tail.slow, tail.total, tail.collections) == (2, 3, {2: 1})
    assert (tail.gc_share, tail.cpu_share, tail.off_cpu_share) == (0.25, 0.25, 0.5)
    assert tail.describe() == (
        "2 of 3 over 1 ms; 1 with a collection (gen 2: 1); their time: 25 % GC, 25 % other CPU, 50 % off the CPU"
    )
    older_build = [DecisionSample(1, 4 * ms, "Pod", "evaluated", "allowed")]
    assert TailAttribution.of(older_build) is None


@pytest.mark.parametrize(
    ("header", "ms"),
    [
        ("decision;dur=0.254000", 0.254),
        ('cache;desc="hit", decision;desc="slimguard";dur=1.5', 1.5),
        ('decision;dur="2"', 2.0),
        ("total;dur=9", None),
        (None, None),
        ("decision", None),
    ],
)
def test_the_server_timing_header_gives_the_decision_time_in_ms(header: str | None, ms: float | None) -> None:
    assert server_timing_ms(header) == ms


def test_decision_time_rows_give_raw_percentiles_and_from_the_histogram_only_its_exact_share() -> None:
    from bench.admission_report import HistogramSummary, Results, decision_rows

    results = Results(clients=8, requests=160, rounds=4, replicas=1)
    results.decision = DecisionSummary.of([0.2] * 97 + [0.9, 1.4, 3.0])
    results.decision_reviews = 100
    results.decision_histogram = HistogramSummary(count=100, within=0.98)
    rows = decision_rows(results)
    assert rows == [
        (
            "slimguard decision time, during the rounds: raw samples (100, from its --decision-times file; 100 "
            "reviews on its counter)",
            "p50 0.200 ms, p99 1.400 ms, p99.9 = max, max 3.000 ms",
            "p99 <= 1 ms",
            "NO",
        ),
        (
            "... the histogram on /metrics, during the rounds (100 reviews)",
            '98.00 % within 1 ms (le="0.001" bucket)',
            "",
            "",
        ),
    ]
    assert "p50" not in rows[1][1]


def test_a_webhook_profile_is_split_into_the_stages_of_a_review() -> None:
    from bench.common.stages import stage_samples, stage_table

    root = "<module> (slimguard/cli/main.py:1);run (asyncio/runners.py:190)"
    http = f"{root};_handle_request (aiohttp/web_protocol.py:477)"
    review = f"{http};validate (slimguard/admission/server.py:90);review (slimguard/admission/decision.py:120)"
    profile = "\n".join(
        [
            f"{http};validate (slimguard/admission/server.py:85);loads (json/__init__.py:346) 3",
            f"{review};_decide (slimguard/admission/decision.py:140);plan (slimguard/core/evaluation/plan.py:40) 2",
            f"{review};_decide (slimguard/admission/decision.py:150);"
            "evaluate (slimguard/core/evaluation/evaluate.py:9);dumps (json/__init__.py:231) 4",
            f"{review};inc (prometheus_client/metrics.py:300) 1",
            f"{http};validate (slimguard/admission/server.py:92);json_response (aiohttp/web_response.py:800) 2",
            f"{http};data_received (aiohttp/base_protocol.py:90) 5",
            f"{root};watcher (kopf/_cogs/clients/watching.py:50);loads (json/__init__.py:346) 6",
            f"{root};_run_once (asyncio/base_events.py:1900) 1",
            f"{root};_run_once (asyncio/base_events.py:1880);EpollSelector.select (selectors.py:468) 40",  # idle
            "Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:81) 30",  # an idle pool thread
            "garbled line without a count",
        ]
    )
    assert stage_samples(profile) == {
        "parse the review": 3,
        "plan": 2,
        "evaluate": 4,  # its own JSON is evaluation's, not the review's parse or response
        "metrics": 1,
        "respond": 2,
        "HTTP and TLS (aiohttp, ssl)": 5,
        "kopf watches (policies, namespaces)": 6,
        "event loop and other": 1,
    }
    rows = stage_table(profile, cpu_ms_per_review=2.4)
    assert rows[0] == ("kopf watches (policies, namespaces)", "25.0 %", "0.600")
    assert rows[-1] == ("all", "100 % (24 samples)", "2.400")
