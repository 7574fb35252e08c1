"""One controller replica, wired once: the keeper is the inspector's digest store and hears every verdict, its
sweeps count what the audit's workloads resolved to, and a replica whose start never ran stops cleanly.

Built for real with an unconfigured kubernetes client: construction makes no request, and nothing here starts.
"""

from __future__ import annotations

import asyncio

from core.builders import facts
from kubernetes.client import ApiClient

from controller.test_audit import deployment_body
from slimguard.controller.replica import ControllerReplica
from slimguard.controller.settings import ControllerSettings

IMAGE = "registry.example.com/shop/api:1.0"


def test_the_keeper_is_the_inspectors_digest_store_and_hears_every_verdict() -> None:
    async def main() -> None:
        replica = ControllerReplica(ControllerSettings(), ApiClient(), network_backend=None)
        assert replica.engine.inspector.store is replica.keeper
        assert replica.keeper.reports is replica.reports
        assert replica.audit.evaluated == replica.keeper.evaluated
        assert replica.audit.evaluator is replica.engine.evaluator
        assert replica.audit.view is replica.engine.view
        await replica.engine.aclose()

    asyncio.run(main())


def test_the_sweeps_count_the_digests_the_audits_workloads_resolved_to() -> None:
    async def main() -> None:
        replica = ControllerReplica(ControllerSettings(), ApiClient(), network_backend=None)
        replica.audit.observe_workload("Deployment", deployment_body(IMAGE))
        image = facts()
        replica.keeper.remember(IMAGE, image, learned=True)  # as the inspector tells it
        replica.keeper.remember("registry.example.com/gone:1", facts(seed="gone"), learned=True)
        used = replica.digests_in_use()
        await replica.engine.aclose()
        assert used == {image.digest}  # the workload's image, not one nobody runs

    asyncio.run(main())


def test_a_replica_whose_start_never_ran_stops_cleanly() -> None:
    async def main() -> None:
        replica = ControllerReplica(ControllerSettings(), ApiClient(), network_backend=None)
        assert replica.enforcing() == "starting"
        await replica.stop()

    asyncio.run(main())
