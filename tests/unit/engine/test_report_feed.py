"""VulnerabilityReports are watched only while a policy in force reads them: the first such policy starts the
watch (and until its first LIST is in, vulnerability rules wait), the last one's going stops it and drops every
record. Every task it started is gone when it stops.

Nothing here reaches an apiserver: the watch's credentials name a closed loopback port, so the informer only
retries; what it lists from a real one is tests/e2e/test_report_watches.py's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from slimguard.engine.report_feed import VulnerabilityReportFeed
from slimguard.engine.view import ClusterView

NOWHERE = kopf.ConnectionInfo(server="https://127.0.0.1:1", insecure=True)


def policy(name: str, rules: dict[str, Any], *, generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": generation}, "spec": {"rules": rules}}


SIZES = policy("sizes", {"maxLayers": 100})
SCANS = policy("scans", {"vulnerabilities": {"maxCritical": 0}})


def report(name: str) -> dict[str, Any]:
    labels = {"trivy-operator.resource.kind": "ReplicaSet", "trivy-operator.resource.name": "api-1"}
    return {"metadata": {"name": name, "namespace": "shop", "labels": labels}, "report": {}}


def other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


def test_only_a_policy_with_a_vulnerabilities_or_a_current_base_rule_reads_reports() -> None:
    view = ClusterView()
    assert not view.reads_reports
    view.observe_policy(SIZES)
    assert not view.reads_reports
    view.observe_policy(SCANS)
    assert view.reads_reports
    view.observe_policy(policy("scans", {"maxLayers": 10}, generation=2))
    assert not view.reads_reports, "a policy that drops its vulnerabilities rule no longer reads them"
    # A stale base's finding says what Trivy Operator counts in the base it was built on and in the current one.
    view.observe_policy(policy("bases", {"requireCurrentBase": True}))
    assert view.reads_reports


async def test_the_watch_runs_while_a_policy_reads_reports_and_its_records_go_with_it() -> None:
    view = ClusterView()
    listed: list[bool] = []
    feed = VulnerabilityReportFeed(view, lambda: NOWHERE, listed=lambda: listed.append(True))
    before = other_tasks()

    view.observe_policy(SIZES)
    feed.follow_policies()
    assert (feed.watch, feed.watches_started) == (None, 0), "no policy reads reports: nothing is listed"
    await feed.wait_listed()  # nothing to wait for

    view.observe_policy(SCANS)
    feed.follow_policies()
    watch = feed.watch
    assert watch is not None
    assert watch.running
    assert view.reports_pending, "vulnerability rules wait for the first LIST"
    feed.follow_policies()
    assert (feed.watch, feed.watches_started) == (watch, 1), "one watch, however often the policies change"

    # What the informer does when its first LIST is in (against an apiserver: tests/e2e/test_report_watches.py).
    view.observe_report(report("replicaset-api-1-api"))
    assert watch.informer.on_listed is not None
    watch.informer.on_listed()
    assert (view.reports_pending, listed) == (False, [True])
    watch.informer.on_listed()  # a LIST again after an expired watch: the reports were listed already
    assert listed == [True]

    view.observe_policy(SCANS, deleted=True)
    feed.follow_policies()
    assert (feed.watch, watch.running) == (None, False)
    assert (view.reports, view.reports_pending) == ({}, False), "no report speaks for anything once none is read"

    view.observe_policy(SCANS)
    feed.follow_policies()
    assert feed.watch not in (None, watch), "a new watch, which lists everything again"
    assert view.reports_pending

    await feed.stop()
    assert feed.watch is None
    assert other_tasks() == before, "every watch and every stop it started is done"
