"""Which ImageReports the controller removes: those of digests no workload has used for the grace period."""

from __future__ import annotations

from datetime import timedelta

from core.builders import NOW, digest, facts, policy, workload

from slimguard.controller.image_reports import ReportKeeper, UnusedReports, digests_in_use
from slimguard.kube.image_reports import ImageReports

HOUR = timedelta(hours=1)
APP = "registry.example.com/shop/api:1.0"
OLD, NEW, BASE = digest("old"), digest("new"), digest("base")


def name(of: str) -> str:
    return of.replace(":", "-")


def test_a_report_nobody_uses_is_removed_once_the_grace_period_has_passed_since_it_was_last_used() -> None:
    unused = UnusedReports(grace=24 * HOUR)
    reports = {name(OLD): OLD, name(NEW): NEW}
    assert unused.due(reports, {OLD, NEW}, NOW) == []
    # The tag moved: the workloads run NEW now.
    assert unused.due(reports, {NEW}, NOW + HOUR) == []
    assert unused.due(reports, {NEW}, NOW + 24 * HOUR) == []
    assert unused.due(reports, {NEW}, NOW + 25 * HOUR) == [name(OLD)]


def test_a_digest_used_again_within_the_grace_period_keeps_its_report() -> None:
    unused = UnusedReports(grace=24 * HOUR)
    reports = {name(OLD): OLD}
    unused.due(reports, set(), NOW)
    unused.due(reports, {OLD}, NOW + 20 * HOUR)  # a rollback, seen by the sweep at 20h
    assert unused.due(reports, set(), NOW + 21 * HOUR) == []  # rolled forward again: unused since this sweep
    assert unused.due(reports, set(), NOW + 44 * HOUR) == []
    assert unused.due(reports, set(), NOW + 45 * HOUR) == [name(OLD)]


def test_after_a_restart_the_grace_period_starts_afresh() -> None:
    """The controller has not seen every workload yet when it first sweeps: nothing goes at once."""
    assert UnusedReports(grace=HOUR).due({name(OLD): OLD}, set(), NOW) == []


def test_a_garbled_report_has_no_digest_in_use_and_goes_after_the_grace_period() -> None:
    unused = UnusedReports(grace=HOUR)
    assert unused.due({"sha256-garbled": None}, {OLD}, NOW) == []
    assert unused.due({"sha256-garbled": None}, {OLD}, NOW + HOUR) == ["sha256-garbled"]


def test_digests_in_use_are_what_containers_and_named_bases_last_resolved_to_and_pinned_ones() -> None:
    pinned = f"registry.example.com/shop/worker@{NEW}"
    base_policy = policy(rules={"deniedBaseImages": ["registry.example.com/base/debian:12"]})
    used = digests_in_use(
        [workload(APP, pinned)],
        [base_policy],
        {APP: OLD, "registry.example.com/base/debian:12": BASE, "registry.example.com/gone:1": digest("gone")},
    )
    assert used == {OLD, NEW, BASE}


def test_the_keeper_queues_a_write_only_for_news() -> None:
    keeper = ReportKeeper(reports=ImageReports(), kube=None, in_use=set, clock=lambda: NOW)  # type: ignore[arg-type]
    image = facts()
    keeper.learned(APP, image)
    assert not keeper.idle
    keeper._pending.clear()  # as if written
    keeper.learned(APP, image)  # every warm evaluation tells it again
    assert keeper.idle
    keeper.learned("registry.example.com/shop/api:latest", image)  # a new reference for the digest
    assert not keeper.idle
