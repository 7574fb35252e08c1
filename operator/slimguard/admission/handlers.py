"""kopf wiring for the webhook: watches feed the cluster view; the HTTPS server answers reviews from it.

kopf watches the policies and namespaces; the report kinds come through the webhook's own paged watches
(engine/report_feed.py), Trivy Operator's VulnerabilityReports only while a policy reads them."""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from typing import Any

import kopf

from slimguard import metrics
from slimguard.admission.certificate_manager import CertificateManager
from slimguard.admission.decision import Reviewer
from slimguard.admission.server import WebhookServer
from slimguard.admission.settings import WebhookSettings
from slimguard.engine.node_watch import watch_nodes
from slimguard.engine.report_feed import VulnerabilityReportFeed, watch_image_reports
from slimguard.engine.view import ClusterView
from slimguard.engine.wiring import Engine, build_engine
from slimguard.heap import set_aside_start_up_objects
from slimguard.kube.gateway import KubeGateway, load_api_client
from slimguard.kube.image_reports import ImageReports
from slimguard.kube.kopf_tuning import is_deletion, own_identity, run_operator, tune
from slimguard.kube.login import connection_info
from slimguard.kube.resources import NAMESPACE_RESOURCE, POLICY_RESOURCE
from slimguard.kube.webhook_certificates import WebhookCertificateStore

log = logging.getLogger(__name__)


def build_registry(settings: WebhookSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    webhook_settings = settings  # kopf passes its own `settings` to startup handlers, by that name
    view = ClusterView(trusted_report_namespaces=settings.trusted_report_namespaces)
    reports = ImageReports()
    credentials = partial(connection_info, settings.kubeconfig)
    image_reports = watch_image_reports(reports, credentials, page_size=settings.report_page_size, component="webhook")
    vulnerability_reports = VulnerabilityReportFeed(
        view, credentials, page_size=settings.report_page_size, component="webhook"
    )
    nodes = watch_nodes(
        lambda body, deleted: view.observe_node(body, deleted=deleted), credentials, component="webhook"
    )

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(settings.kubeconfig)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.enabled = False  # the webhook writes nothing to the cluster
        tune(settings)
        api = load_api_client(webhook_settings.kubeconfig)
        kube = KubeGateway(api, component="slimguard-webhook")
        reports.read_from(kube.get_image_report)  # a report the watch shows, read when its digest is asked for
        server_settings = webhook_settings.server
        own = webhook_settings.certificates
        if own is not None:  # its certificate first: without one there is nothing to listen with
            store = WebhookCertificateStore(
                api, namespace=own.namespace, secret_name=own.secret_name, configuration_name=own.webhook_configuration
            )
            certificates = memo["certificates"] = CertificateManager(store=store, settings=own)
            await certificates.start()
            pem = str(certificates.pem_file)
            server_settings = dataclasses.replace(server_settings, cert_file=pem, key_file=pem)
        await view.sync_policies(kube)
        # A new replica answers from the reports from its first review: it serves none (so is not ready) before
        # the ImageReports, and the VulnerabilityReports if a policy reads them, are listed; nor before the
        # Nodes are, so its first reviews judge the nodes' platforms, not linux/amd64 for want of them.
        image_reports.start()
        nodes.start()
        vulnerability_reports.follow_policies()
        await image_reports.wait_listed()
        await vulnerability_reports.wait_listed()
        await nodes.wait_listed()
        # The webhook reads no layer (admission has seconds): the controller reads them and writes the report.
        engine = build_engine(
            registry=webhook_settings.registry, kube=kube, view=view, store=reports, read_layers=False
        )
        reviewer = Reviewer(evaluator=engine.evaluator, view=view, deadline=webhook_settings.deadline_seconds)
        server = WebhookServer(reviewer=reviewer, view=view, settings=server_settings)
        if webhook_settings.own_process:  # before the first review: no collection walks what start-up loaded
            set_aside_start_up_objects("webhook")
        await server.start()
        if own is not None:
            certificates.serve_through(server.certificates)
            certificates.run()
        memo["server"], memo["engine"] = server, engine
        metrics.admission_started(webhook_settings.timeout_seconds)
        metrics.BUILD_INFO.labels(component="webhook", version=metrics.VERSION).set(1)
        log.info("slimguard webhook started: %s", webhook_settings.describe())

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        # No rotation starts while the replica shuts down (one in flight is one request: done or not). Reviews in
        # flight finish first (the server drains them); then the engine's own reads, which a review that met its
        # deadline left running, are cancelled before the registry connections close.
        certificates: CertificateManager | None = memo.get("certificates")
        if certificates is not None:
            await certificates.aclose()
        server: WebhookServer | None = memo.get("server")
        if server is not None:
            await server.stop()
        if certificates is not None:
            certificates.remove_files()
        await vulnerability_reports.stop()
        await image_reports.stop()
        await nodes.stop()
        engine: Engine | None = memo.get("engine")
        if engine is not None:
            await engine.aclose()

    @kopf.on.event(*POLICY_RESOURCE, registry=registry)
    async def observe_policy(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        view.observe_policy(body, deleted=is_deletion(event))
        vulnerability_reports.follow_policies()

    @kopf.on.event(*NAMESPACE_RESOURCE, registry=registry)
    async def observe_namespace(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        view.observe_namespace(body, deleted=is_deletion(event))

    # No ReplicaSet watch: at admission a Deployment's new image has no ReplicaSet (nor report) yet, and the
    # watch cost the webhook more CPU than its reviews did (bench/README.md, "Why slimguard missed, from profiles").

    return registry


def run(settings: WebhookSettings) -> None:
    run_operator(
        kopf.operator(
            registry=build_registry(settings),
            standalone=True,
            clusterwide=True,
            identity=own_identity("slimguard-webhook"),
        )
    )
