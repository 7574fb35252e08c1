"""One wiring for every in-cluster entry point: registry client → inspector (asking a digest store, the
ImageReports, between resolving and fetching) → pull credentials (and the kubelet's credential providers, when
configured) → evaluator."""

from __future__ import annotations

from dataclasses import dataclass

import httpcore

from slimguard.engine.alternatives import SlimmerBaseFinder
from slimguard.engine.bases import BaseLookups
from slimguard.engine.credentials import PullCredentials
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.facts import FactsSource
from slimguard.engine.kubelet_keyring import with_credential_providers
from slimguard.engine.view import ClusterView
from slimguard.kube.gateway import KubeGateway
from slimguard.registry.client import RegistryClient
from slimguard.registry.guard import GuardedNetworkBackend
from slimguard.registry.inspector import DigestStore, ImageInspector
from slimguard.registry.settings import RegistrySettings
from slimguard.tasks import BackgroundTasks


@dataclass
class Engine:
    """What the controller and the webhook evaluate with.

    Every task the engine starts on its own (coalesced registry and Secret reads, tag re-resolves, slimmer-base
    lookups, layer walks) belongs to ``tasks``: ``stop_background`` cancels and awaits them all, and ``aclose``
    does that before it closes the registry connections they use.
    """

    client: RegistryClient
    inspector: ImageInspector
    view: ClusterView
    evaluator: Evaluator
    tasks: BackgroundTasks

    async def stop_background(self) -> None:
        await self.tasks.aclose()

    async def aclose(self) -> None:
        await self.stop_background()
        await self.client.aclose()


def build_engine(
    *,
    registry: RegistrySettings,
    kube: KubeGateway,
    view: ClusterView,
    store: DigestStore | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    read_layers: bool = True,
) -> Engine:
    """``store``: what the inspector asks between resolving a reference and fetching it, and tells what it
    answered: the ImageReports the webhook watches, or the controller's ReportKeeper over them, which writes
    reports from what it is told (none: every fact from the registry). ``network_backend`` replaces
    the connector under the SSRF guard (tests instrument it); the guard stays.

    ``read_layers``: whether content rules may stream whole layers (the controller); the webhook passes False,
    answering within its deadline from what it has, and content rules say ContentPending until a report does.
    """
    backend = network_backend and GuardedNetworkBackend(registry.address_policy, inner=network_backend)
    client = RegistryClient(registry, backend=backend)
    tasks = BackgroundTasks("the engine")
    inspector = ImageInspector(client, read_layers=read_layers, tasks=tasks, store=store)
    facts: FactsSource = with_credential_providers(inspector, registry, tasks=tasks)
    evaluator = Evaluator(
        inspector=facts,
        view=view,
        credentials=PullCredentials(kube, tasks=tasks).for_workload,
        bases=BaseLookups(facts, SlimmerBaseFinder(client, tasks=tasks)),
    )
    return Engine(client=client, inspector=inspector, view=view, evaluator=evaluator, tasks=tasks)
