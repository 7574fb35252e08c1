"""Which ImageReports the controller removes: those of digests no workload has used for the grace period."""

from __future__ import annotations

from datetime import timedelta

from core.builders import NOW, digest, facts, policy, workload

from slimguard.controller.image_reports import ReportKeeper, UnusedReports, digests_in_use, slimmer_bases_by_digest
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import ImageSize, Verdict
from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.model.platform import Platform
from slimguard.core.model.workload import Workload
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


SIDECAR = "registry.example.com/shop/sidecar:1.0"
NODE = "registry.example.com/base/node:20-bookworm"
ALPINE = "registry.example.com/base/node:20-alpine"


def hint(policy_name: str, image: str = APP) -> SlimmerBase:
    return SlimmerBase(policy_name, image, NODE, 380, ALPINE, 45, Platform("linux", "amd64"))


def verdict_of(subject: Workload, *hints: SlimmerBase, read: tuple[str, ...] = (APP, SIDECAR)) -> Verdict:
    return Verdict(
        workload=subject.key,
        policies=("hinting", "other", "quiet"),
        image_sizes=tuple(ImageSize(image, 100) for image in read),
        hints=hints,
    )


def test_the_hints_each_digest_gets_are_those_of_the_policies_that_look_for_them() -> None:
    subject = workload(APP, SIDECAR)
    hinting, quiet = policy("hinting", slimmerBases={}), policy("quiet", slimmerBases={})
    other = policy("other")  # no slimmerBases: it never looked, so it says nothing either way
    found = slimmer_bases_by_digest(
        plan([hinting, quiet, other], subject, {}), verdict_of(subject, hint("hinting")), {APP: OLD, SIDECAR: NEW}
    )
    assert found == {OLD: {"hinting": hint("hinting"), "quiet": None}, NEW: {"hinting": None, "quiet": None}}


def test_an_image_whose_facts_were_not_read_says_nothing_about_its_hints() -> None:
    subject = workload(APP)
    found = slimmer_bases_by_digest(
        plan([policy("hinting", slimmerBases={})], subject, {}), verdict_of(subject, read=()), {APP: OLD}
    )
    assert found == {}  # pending or unreachable: the report keeps what it says


def test_the_keeper_queues_a_write_only_when_a_digests_hints_change() -> None:
    keeper = ReportKeeper(reports=ImageReports(), kube=None, in_use=set, clock=lambda: NOW)  # type: ignore[arg-type]
    keeper.hinted({OLD: {"hinting": hint("hinting"), "quiet": None}})
    assert not keeper.idle
    keeper._pending.clear()  # as if written
    keeper.hinted({OLD: {"hinting": hint("hinting"), "quiet": None}})  # every re-audit tells it again
    assert keeper.idle
    keeper.hinted({OLD: {"hinting": None}})  # the policy no longer finds a slimmer base
    assert keeper._hints[OLD] == {}
    assert not keeper.idle
    keeper._pending.clear()
    keeper.hinted({OLD: {"hinting": hint("hinting")}})
    keeper._pending.clear()
    keeper.policy_gone("hinting")
    assert keeper._hints[OLD] == {}
    assert not keeper.idle
