"""/metrics for the controller: the fleet families, computed at each scrape from the controller's verdicts."""

from __future__ import annotations

from prometheus_client import REGISTRY, start_http_server

from slimguard import metrics
from slimguard.controller.audit import AuditController
from slimguard.controller.settings import ControllerSettings
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.facts.vulnerabilities import SeverityCounts
from slimguard.engine.view import ClusterView


def fleet_snapshot(controller: AuditController) -> metrics.FleetSnapshot:
    """The controller's verdicts and policies as they are now, read from the scrape's thread; nothing on a
    standby, so a Prometheus that sums over replicas counts each workload once.

    Copying a dict another thread mutates can fail mid-way ("changed size during iteration"): try again, it
    is a matter of microseconds.
    """
    if not controller.leading:
        return metrics.FleetSnapshot(verdicts=(), policies=(), now=controller.clock())
    for _ in range(10):
        try:
            verdicts = tuple(controller.verdicts.values())
            records = tuple(controller.view.policies.values())
            vulnerabilities = _vulnerabilities_in_use(controller.view, verdicts)
            break
        except (RuntimeError, KeyError, IndexError):  # a report indexed or dropped while read: read again
            continue
    else:
        verdicts, records, vulnerabilities = (), (), {}
    policies = tuple(record.policy for record in records if record.policy is not None)
    return metrics.FleetSnapshot(
        verdicts=verdicts, policies=policies, now=controller.clock(), vulnerabilities=vulnerabilities
    )


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

    def __init__(self, settings: ControllerSettings, controller: AuditController) -> None:
        self.collector = metrics.register_fleet(
            lambda: fleet_snapshot(controller), per_image_limit=settings.image_metrics
        )
        metrics.BUILD_INFO.labels(component="controller", version=metrics.VERSION).set(1)
        self.server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_address)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        REGISTRY.unregister(self.collector)
