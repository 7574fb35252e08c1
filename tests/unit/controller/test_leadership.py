"""The audit loop as a standby and as the leader: a standby watches and writes nothing; the leader's writes stop
with its leadership, and what a lapsed leadership refused is written by the next one, Event included."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from core.builders import NOW

from controller.test_audit import FakeKube, GatedInspector, deployment_body, fat, policy_body
from slimguard.controller.audit import AuditController
from slimguard.controller.replica import enforcement_summary
from slimguard.engine.credentials import PullCredentials
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.kube.gateway import NotLeader


class FencedKube(FakeKube):
    """Refuses every write while ``refusing``, as the gateway does once the leader lease has lapsed."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = False
        self.refused = 0

    def _fence(self) -> None:
        if self.refusing:
            self.refused += 1
            raise NotLeader("slimguard-controller is not the leader: the write was not sent")

    async def patch_metadata(self, *args: Any, **kwargs: Any) -> bool:
        self._fence()
        return await super().patch_metadata(*args, **kwargs)

    async def emit_event(self, **fields: Any) -> None:
        self._fence()
        await super().emit_event(**fields)


async def standing_by(inspector: GatedInspector, kube: FakeKube) -> AuditController:
    view = ClusterView()
    evaluator = Evaluator(
        inspector=inspector,  # type: ignore[arg-type]
        view=view,
        credentials=PullCredentials(kube).for_workload,  # type: ignore[arg-type]
    )
    controller = AuditController(evaluator=evaluator, view=view, kube=kube, clock=lambda: NOW)  # type: ignore[arg-type]
    await controller.start(lead=False)
    controller.observe_policy(policy_body())
    return controller


async def settle() -> None:
    for _ in range(200):
        await asyncio.sleep(0)


async def test_a_standby_watches_but_evaluates_and_writes_nothing_until_it_leads_and_stops_when_it_follows() -> None:
    inspector, kube = GatedInspector(fat()), FakeKube()
    inspector.gate.set()
    controller = await standing_by(inspector, kube)
    try:
        controller.observe_workload("Deployment", deployment_body())
        await settle()
        assert (inspector.calls, kube.writes, controller.leading) == (0, [], False)
        assert len(controller.workloads) == 1, "seen and kept: a takeover starts warm"
        # Its liveness body does not say "ok" about images it never judged.
        assert enforcement_summary(controller) == "standby: the leading replica judges the images in use"

        await controller.lead()
        await controller._queue.join()
        assert kube.writes == ["event", "metadata"]
        assert controller.leading

        await controller.follow()
        controller.observe_workload("Deployment", deployment_body("registry.example.com/shop/api:2.0"))
        await settle()
        assert inspector.calls == 1, "a standby evaluates nothing: the next leader does"
        assert kube.writes == ["event", "metadata"]
        assert not controller.leading
    finally:
        await controller.stop()


async def test_what_a_lapsed_leadership_refused_is_written_by_the_next_one_event_included(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inspector, kube = GatedInspector(fat()), FencedKube()
    inspector.gate.set()
    controller = await standing_by(inspector, kube)
    caplog.set_level(logging.DEBUG, logger="slimguard")
    try:
        await controller.lead()
        kube.refusing = True  # the lease lapsed just as the first verdict was to be written
        controller.observe_workload("Deployment", deployment_body())
        await controller._queue.join()
        assert (kube.refused, kube.writes) == (1, [])
        await controller.follow()

        kube.refusing = False  # leading again (or another replica, with the same picture of the cluster)
        await controller.lead()
        await controller._queue.join()
    finally:
        await controller.stop()
    # The Event was not lost with the refused write: announced once, by the leadership that wrote the label.
    assert kube.writes == ["event", "metadata"]
    assert len(kube.events) == 1
    # A refused write is no failure of the audit: no traceback, no error.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
