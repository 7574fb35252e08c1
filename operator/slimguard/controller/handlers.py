"""kopf's entry points into the controller: each handler hands its event to the ControllerReplica
(controller/replica.py), which is built at startup, wired once, and stopped at cleanup."""

from __future__ import annotations

import logging
from typing import Any

import httpcore
import kopf

from slimguard import metrics
from slimguard.controller.replica import COMPONENT, ControllerReplica
from slimguard.controller.settings import ControllerSettings
from slimguard.kube.gateway import load_api_client
from slimguard.kube.kopf_tuning import is_deletion, own_identity, run_operator, tune
from slimguard.kube.login import connection_info
from slimguard.kube.resources import NAMESPACE_RESOURCE, POLICY_RESOURCE

log = logging.getLogger(__name__)


def build_registry(
    settings: ControllerSettings, *, network_backend: httpcore.AsyncNetworkBackend | None = None
) -> kopf.OperatorRegistry:
    """All handlers of the controller. ``network_backend`` replaces the registry connector (tests instrument it)."""
    registry = kopf.OperatorRegistry()
    operator_settings = settings  # kopf passes its own `settings` to startup handlers, by that name

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(settings.kubeconfig)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        tune(settings)
        if (failed := memo.get("replica")) is not None:  # kopf retries a start-up that raised: let that one go
            await failed.stop()
        api = load_api_client(operator_settings.kubeconfig, user_agent=_user_agent(operator_settings))
        # In the memo before it starts: a start that fails half-way is stopped at cleanup all the same.
        replica = memo["replica"] = ControllerReplica(operator_settings, api, network_backend=network_backend)
        await replica.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        replica: ControllerReplica | None = memo.get("replica")
        if replica is not None:
            await replica.stop()

    @kopf.on.probe(id="enforcing", registry=registry)
    async def enforcing(memo: kopf.Memo, **_: Any) -> str:
        # In the body of kopf's liveness endpoint (--liveness), which answers 200 whatever this says: restarting
        # a controller that cannot read a registry mends nothing, and a probe that raised would have it
        # restarted. The ImagePolicies' Enforcing conditions say the same per policy. In the loop, not a thread:
        # the verdicts change under it otherwise.
        replica: ControllerReplica | None = memo.get("replica")
        try:
            return "starting" if replica is None else replica.enforcing()
        except Exception as error:
            log.exception("the enforcing probe failed")
            return f"unknown: {error!r}"

    @kopf.on.event(*POLICY_RESOURCE, registry=registry)
    async def observe_policy(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["replica"].observe_policy(body, deleted=is_deletion(event))

    @kopf.on.event(*NAMESPACE_RESOURCE, registry=registry)
    async def observe_namespace(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
        memo["replica"].audit.observe_namespace(body, deleted=is_deletion(event))

    # No report kind and no Nodes here: kopf LISTs a kind in one response and keeps each body until its handler
    # ran; the replica reads ImageReports, VulnerabilityReports and Nodes (each node's platform and runtime)
    # through its own paged watches (engine/report_feed.py, engine/node_watch.py).

    return registry


def _user_agent(settings: ControllerSettings) -> str:
    """``slimguard-controller/VERSION (IDENTITY)``: the apiserver's audit log names the replica that wrote."""
    election = settings.leader_election
    identity = election.identity if election is not None else own_identity(COMPONENT)
    return f"{COMPONENT}/{metrics.VERSION} ({identity})"


def run(settings: ControllerSettings) -> None:
    run_operator(
        kopf.operator(
            registry=build_registry(settings),
            standalone=True,
            clusterwide=True,
            liveness_endpoint=settings.liveness_endpoint,
            identity=own_identity(COMPONENT),
        )
    )
