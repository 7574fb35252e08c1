"""/metrics on its own thread reads the fleet from snapshots the event loop publishes: a scrape that meets the
loop changing the verdicts serves the whole fleet, never a torn or an empty one.

The race is made deterministic by a hook: the audit's verdicts dict lets one of the loop's changes land in the
middle of any read made from another thread, as the loop would between two steps of a scrape's copy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from core.builders import NOW, policy, verdict, workload
from prometheus_client.core import Metric

from slimguard import metrics
from slimguard.controller.audit import AuditController
from slimguard.controller.fleet import FleetUnavailable, PublishedFleet
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.model.workload import WorkloadKey
from slimguard.engine.view import ClusterView

WORKLOADS = 5


class ChangedWhileRead(dict[WorkloadKey, Verdict]):
    """The audit's verdicts, with one of the loop's changes (a new workload's verdict) landing between two steps
    of every read made off the loop; a read on the loop meets none, as nothing else runs there meanwhile."""

    def __init__(self, verdicts: dict[WorkloadKey, Verdict], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(verdicts)
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.changes = 0

    def values(self) -> Any:
        if threading.get_ident() == self.loop_thread:
            return super().values()
        return self._interleaved()

    def _interleaved(self) -> Iterator[Verdict]:
        values = iter(super().values())
        yield next(values)
        asyncio.run_coroutine_threadsafe(self._change(), self.loop).result(timeout=5)
        yield from values  # "dictionary changed size during iteration"

    async def _change(self) -> None:
        self.changes += 1
        extra = workload(namespace="shop", name=f"new-{self.changes}")
        self[WorkloadKey("Deployment", "shop", f"new-{self.changes}")] = verdict(policy("slim"), extra)


def leading_controller() -> AuditController:
    view = ClusterView()
    view.observe_policy({"metadata": {"name": "slim", "generation": 1}, "spec": {"rules": {"maxLayers": 100}}})
    controller = AuditController(evaluator=None, view=view, kube=None, clock=lambda: NOW)  # type: ignore[arg-type]
    controller.leading = True
    for n in range(WORKLOADS):
        subject = workload(namespace="shop", name=f"api-{n}")
        controller.verdicts[subject.key] = verdict(policy("slim"), subject)
    return controller


def workloads_counted(families: list[Metric]) -> float:
    (family,) = [f for f in families if f.name == "slimguard_workloads"]
    return sum(sample.value for sample in family.samples)


def scrape(fleet: PublishedFleet) -> list[Metric]:
    """What the collector computes on /metrics' thread."""
    return metrics.fleet_metrics(fleet.snapshot())


def test_a_scrape_while_the_loop_changes_the_verdicts_serves_the_whole_fleet() -> None:
    async def main() -> tuple[float, int]:
        controller = leading_controller()
        verdicts = controller.verdicts = ChangedWhileRead(controller.verdicts, asyncio.get_running_loop())
        fleet = PublishedFleet(controller, asyncio.get_running_loop())
        families = await asyncio.to_thread(scrape, fleet)  # the loop runs meanwhile, as it does under /metrics
        return workloads_counted(families), verdicts.changes

    counted, changes = asyncio.run(main())
    assert counted == WORKLOADS  # not 0: the fleet the loop held when it published
    assert changes == 0  # the loop read its own dict: no change could land inside the read


def test_a_scrape_on_the_loop_itself_is_answered_at_once() -> None:
    async def main() -> float:
        controller = leading_controller()
        return workloads_counted(scrape(PublishedFleet(controller, asyncio.get_running_loop())))

    assert asyncio.run(main()) == WORKLOADS


def test_a_loop_that_does_not_answer_has_its_last_snapshot_served_again() -> None:
    controller = leading_controller()
    stalled = asyncio.new_event_loop()  # never run: a callback handed to it waits forever
    try:
        fleet = PublishedFleet(controller, stalled, wait_seconds=0.01)
        with pytest.raises(FleetUnavailable):  # nothing published yet: the scrape fails, it shows no made-up fleet
            fleet.snapshot()
        fleet.publish()  # as the loop did at an earlier scrape
        del controller.verdicts[next(iter(controller.verdicts))]
        assert workloads_counted(scrape(fleet)) == WORKLOADS
    finally:
        stalled.close()
    assert workloads_counted(scrape(fleet)) == WORKLOADS  # a closed loop too


def test_a_standby_publishes_no_fleet() -> None:
    async def main() -> float:
        controller = leading_controller()
        controller.leading = False
        return workloads_counted(scrape(PublishedFleet(controller, asyncio.get_running_loop())))

    assert asyncio.run(main()) == 0  # the leader counts each workload once
