"""One wiring for every in-cluster entry point: registry client → inspector → pull credentials → evaluator."""

from __future__ import annotations

from dataclasses import dataclass

import httpcore

from slimguard.engine.credentials import PullCredentials
from slimguard.engine.facts import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.kube.gateway import KubeGateway
from slimguard.registry.client import RegistryClient
from slimguard.registry.guard import GuardedNetworkBackend
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings


@dataclass
class Engine:
    """What the controller and the webhook evaluate with; ``aclose`` releases the registry connections."""

    client: RegistryClient
    inspector: ImageInspector
    view: ClusterView
    evaluator: Evaluator

    async def aclose(self) -> None:
        await self.client.aclose()


def build_engine(
    *,
    registry: RegistrySettings,
    kube: KubeGateway,
    view: ClusterView,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    read_layers: bool = True,
) -> Engine:
    """``network_backend`` replaces the connector under the SSRF guard (tests instrument it); the guard stays.

    ``read_layers``: whether content rules may stream whole layers (the controller); the webhook passes False,
    answering within its deadline from what it has, and content rules say ContentPending until a report does.
    """
    backend = network_backend and GuardedNetworkBackend(registry.address_policy, inner=network_backend)
    client = RegistryClient(registry, backend=backend)
    inspector = ImageInspector(client, read_layers=read_layers)
    evaluator = Evaluator(inspector=inspector, view=view, credentials=PullCredentials(kube).for_workload)
    return Engine(client=client, inspector=inspector, view=view, evaluator=evaluator)
