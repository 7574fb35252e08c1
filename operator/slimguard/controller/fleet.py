"""/metrics for the controller: the fleet families, computed at each scrape from a snapshot of the verdicts
that the event loop publishes (``PublishedFleet``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from collections.abc import Mapping
from types import MappingProxyType

from prometheus_client import REGISTRY, start_http_server

from slimguard import metrics
from slimguard.controller.audit import AuditController
from slimguard.controller.settings import ControllerSettings
from slimguard.core.evaluation.pull_costs import saveables
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.facts.pulls import ImagePulls
from slimguard.core.facts.vulnerabilities import SeverityCounts
from slimguard.engine.view import ClusterView

log = logging.getLogger(__name__)


class FleetUnavailable(RuntimeError):
    """The event loop has not answered a scrape, and has published no snapshot yet: the scrape fails (Prometheus
    marks it so) rather than show a fleet that is not the controller's."""


class PublishedFleet:
    """The fleet /metrics reads: immutable snapshots the event loop builds and hands over whole.

    The controller's verdicts, policies and reports are dicts the event loop changes between any two of its
    steps. Copied from the scrape's thread, a copy could fail mid-way ("changed size during iteration") or mix
    two moments; the copy used to be retried and, after ten failures, an empty fleet was served. So the scrape
    asks the loop instead: ``publish`` runs on the loop, between two of its steps, where nothing changes under
    it, and the snapshot it builds is handed to the scrape's thread and kept as the last published (replaced as
    one reference, never changed). A loop that does not answer within ``wait_seconds`` (stalled, or stopping)
    has its last snapshot served again, at the scrape's time: late, never torn and never empty.

    Built when asked rather than after every change: a snapshot copies every verdict, and rebuilt per reconcile
    that would be quadratic in the fleet over a full audit; asked per scrape it costs what the copy cost before.
    """

    def __init__(
        self, controller: AuditController, loop: asyncio.AbstractEventLoop, *, wait_seconds: float = 5.0
    ) -> None:
        self.controller = controller
        self.loop = loop
        self.wait_seconds = wait_seconds
        self.published: metrics.FleetSnapshot | None = None
        self.pulls: Mapping[str, ImagePulls] | None = None
        """The pull ledger's records (digest → pulls), read on the loop with the verdicts."""

    def publish(self) -> metrics.FleetSnapshot:
        """On the event loop: the fleet as it is now, kept as the last published."""
        snapshot = fleet_snapshot(self.controller, self.pulls)
        self.published = snapshot
        return snapshot

    def snapshot(self) -> metrics.FleetSnapshot:
        """From any thread (the collector's source): what the loop publishes now, or the last it published."""
        if _running_loop() is self.loop:  # asked on the loop itself: nothing can change meanwhile
            return self.publish()
        answer: concurrent.futures.Future[metrics.FleetSnapshot] = concurrent.futures.Future()

        def publish() -> None:
            if not answer.set_running_or_notify_cancel():
                return  # the scrape gave up waiting
            try:
                answer.set_result(self.publish())
            except Exception as error:
                answer.set_exception(error)

        try:
            self.loop.call_soon_threadsafe(publish)
        except RuntimeError:  # the loop is closed
            pass
        else:
            try:
                return answer.result(timeout=self.wait_seconds)
            except TimeoutError:
                answer.cancel()
        last = self.published
        if last is None:
            raise FleetUnavailable(f"the controller's event loop did not answer within {self.wait_seconds:g}s")
        log.warning("/metrics: the event loop did not answer within %gs; the last fleet is served", self.wait_seconds)
        return dataclasses.replace(last, now=self.controller.clock())


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def fleet_snapshot(controller: AuditController, pulls: Mapping[str, ImagePulls] | None = None) -> metrics.FleetSnapshot:
    """The controller's verdicts and policies as they are now; nothing on a standby, so a Prometheus that sums
    over replicas counts each workload once. On the event loop only (``PublishedFleet`` runs it there): the
    dicts it reads are the loop's."""
    if not controller.leading:
        return metrics.FleetSnapshot(verdicts=(), policies=(), now=controller.clock())
    verdicts = tuple(controller.verdicts.values())
    policies = tuple(record.policy for record in controller.view.policies.values() if record.policy is not None)
    return metrics.FleetSnapshot(
        verdicts=verdicts,
        policies=policies,
        now=controller.clock(),
        vulnerabilities=MappingProxyType(_vulnerabilities_in_use(controller.view, verdicts)),
        pull_seconds_saveable=MappingProxyType(pull_seconds_saveable(verdicts, pulls or {})),
    )


def pull_seconds_saveable(
    verdicts: tuple[Verdict, ...], pulls: Mapping[str, ImagePulls]
) -> dict[tuple[str, ...], float]:
    """(namespace, policy) → seconds slim images would have saved on the cold pulls counted there, each image once
    per namespace and policy (its largest saving)."""
    per_image: dict[tuple[str, str, str], float] = {}
    for verdict in verdicts:
        namespace = verdict.workload.namespace
        for saveable in saveables(verdict, pulls):
            key = (namespace, saveable.policy, saveable.image)
            per_image[key] = max(per_image.get(key, 0.0), saveable.seconds_in(namespace))
    summed: dict[tuple[str, ...], float] = {}
    for (namespace, policy, _), seconds in per_image.items():
        summed[(namespace, policy)] = summed.get((namespace, policy), 0.0) + seconds
    return summed


def _vulnerabilities_in_use(view: ClusterView, verdicts: tuple[Verdict, ...]) -> dict[tuple[str, str], SeverityCounts]:
    """Each distinct image in use, per namespace: the worst report for its digests, as the view holds them."""
    found: dict[tuple[str, str], SeverityCounts] = {}
    for verdict in verdicts:
        namespace = verdict.workload.namespace
        for size in verdict.image_sizes:
            key = (namespace, size.image)
            if key in found or not size.digests:
                continue
            counts = view.image_vulnerabilities(namespace, size.digests)
            if counts is not None:
                found[key] = counts
    return found


class MetricsServer:
    """/metrics with the fleet collector; stopped and unregistered at cleanup, so an operator can run again."""

    def __init__(
        self,
        settings: ControllerSettings,
        controller: AuditController,
        pulls: Mapping[str, ImagePulls] | None = None,
    ) -> None:
        """On the event loop: the loop the fleet is published from."""
        self.fleet = PublishedFleet(controller, asyncio.get_running_loop())
        self.fleet.pulls = pulls
        self.collector = metrics.register_fleet(self.fleet.snapshot, per_image_limit=settings.image_metrics)
        metrics.BUILD_INFO.labels(component="controller", version=metrics.VERSION).set(1)
        self.server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_address)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        REGISTRY.unregister(self.collector)
