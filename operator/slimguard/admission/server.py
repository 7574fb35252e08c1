"""The webhook's HTTPS server: plain aiohttp, because it must do three things kopf's WebhookServer does not.

1. Reload its serving certificate when the files change (cert-manager rotates them under a running pod) or its
   own certificate manager rotates it (``admission.certificate_manager``), and turn unready when it has expired
   or the apiserver is known not to trust it (``admission.certificates``).
2. Report readiness, and on shutdown stop being ready first, then finish in-flight reviews before closing,
   so a rolling restart or a killed replica fails no admission.
3. Share the listening port between replicas on one host (SO_REUSEPORT), which the e2e tests use to put two
   replicas behind the single URL an apiserver can call here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from aiohttp import web

from slimguard.admission.certificates import CertificateReloader
from slimguard.admission.costs import CostMeter
from slimguard.admission.decision import Reviewer
from slimguard.admission.decision_times import DecisionTimes, server_timing
from slimguard.engine.view import ClusterView
from slimguard.listen import ANY_ADDRESS, site_host

log = logging.getLogger(__name__)


DEFAULT_REVIEW_PATH = "/validate"


@dataclass
class ServerSettings:
    host: str = ANY_ADDRESS
    port: int = 8443
    path: str = DEFAULT_REVIEW_PATH
    """Where reviews are posted: the ValidatingWebhookConfiguration's clientConfig path (Helm ``webhook.path``)."""
    cert_file: str = ""
    key_file: str = ""
    reload_interval: float = 10.0
    shutdown_delay: float = 5.0
    """Seconds between turning unready and closing the listener: time for endpoints to drop this replica."""
    shutdown_timeout: float = 30.0
    decision_times_file: str = ""
    """For benchmarks: append every review's decision time to this file and answer with a ``Server-Timing``
    header (``--decision-times``; ``admission.decision_times``). Empty: off, at the cost of a None check."""

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path in ("/healthz", "/readyz"):
            raise ValueError(
                f"--path {self.path!r} must start with / and differ from /healthz and /readyz, e.g. /validate"
            )


class WebhookServer:
    def __init__(self, *, reviewer: Reviewer, view: ClusterView, settings: ServerSettings) -> None:
        self.reviewer = reviewer
        self.view = view
        self.settings = settings
        self.draining = False
        self.in_flight = 0
        self._runner: web.AppRunner | None = None
        self._reloader: CertificateReloader | None = None
        self._watch: asyncio.Task[None] | None = None
        self.decision_times = DecisionTimes(settings.decision_times_file) if settings.decision_times_file else None
        self._meter: CostMeter | None = None
        """Made here with the file, so each sample says where its time went; closed with the file."""
        if self.decision_times is not None and reviewer.meter is None:
            reviewer.meter = self._meter = CostMeter()
        self._flushing: asyncio.Task[None] | None = None

    @property
    def certificates(self) -> CertificateReloader:
        """The serving certificate as loaded (after ``start``): a self-managed one is reloaded through it."""
        if self._reloader is None:
            raise RuntimeError("the webhook server has not started")
        return self._reloader

    def app(self) -> web.Application:
        app = web.Application(client_max_size=3 * 1024 * 1024)
        app.router.add_post(self.settings.path, self.validate)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    async def validate(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        try:
            try:
                review = json.loads(await request.read())
                admission = review["request"]
                uid = str(admission["uid"])
            except (ValueError, KeyError, TypeError):
                return web.json_response({"error": "expected an admission.k8s.io/v1 AdmissionReview"}, status=400)
            answer = await self.reviewer.review(admission)
            response = web.json_response(answer.response(uid))
            if self.decision_times is not None:
                self.decision_times.record(answer)
                response.headers["Server-Timing"] = server_timing(answer)
            if self.draining:
                # The apiserver's kept-alive connections outlive this replica's endpoint (conntrack keeps them on
                # this Pod); closed idle when the drain ends, they race a POST it cannot retry (1 create in 5,723
                # failed with EOF on the real node). Closed after an answer, the next review dials the live replica.
                response.force_close()
            return response
        finally:
            self.in_flight -= 1

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when this replica should get reviews, 503 (naming why) when it should not; ``?verbose`` lists each
        check as the apiserver's /readyz does (``[+]`` passed, ``[-]`` failed, ``[!]`` passed but degraded).

        A replica whose reviews are all decided by onUnknown (its registries unreadable: a CA missing, private
        addresses refused) stays ready, deliberately: unready, it would leave the Service, and the apiserver's
        failurePolicy would decide every review instead (Ignore: admitted without a word; Fail: nothing admitted),
        which is worse than onUnknown's warnings and not what the policy says. It says so instead, here, in the
        ImagePolicy's Enforcing condition and in SlimguardNothingEnforced."""
        problem = self._reloader.problem() if self._reloader else None
        failing = [
            ("shutdown", "shutting down" if self.draining else None),
            ("certificate", problem or None),
            ("policies", None if self.view.policies_synced else "policies not loaded yet"),
        ]
        decided = self.reviewer.recent.enforcement(now=self.reviewer.monotonic())
        enforcing = decided.describe(within=f"reviewed {self.reviewer.recent.window_text}")
        # A replica starts serving only once its VulnerabilityReports are listed (admission.handlers); a policy
        # that reads them added later starts their watch while it serves. Until that LIST is in, it stays ready
        # (unready, every review would go to failurePolicy) and says its vulnerability rules are not decided.
        listing = (
            "VulnerabilityReports are being listed: vulnerability rules are decided by onUnknown (ReportsPending) "
            "until they are"
            if self.view.reports_pending
            else None
        )
        failed = next((why for _, why in failing if why), None)
        if "verbose" in request.query:
            lines = [f"[-]{name} failed: {why}" if why else f"[+]{name} ok" for name, why in failing]
            lines.append(f"[!]vulnerabilityreports degraded: {listing}" if listing else "[+]vulnerabilityreports ok")
            lines.append(f"[!]enforcing degraded: {enforcing}" if decided.degraded else f"[+]enforcing ok: {enforcing}")
            lines.append("readyz check failed" if failed else "readyz check passed")
            return web.Response(status=503 if failed else 200, text="\n".join(lines) + "\n")
        if failed:
            return web.Response(status=503, text=failed)
        if listing:
            return web.Response(text=f"degraded: {listing}")
        return web.Response(text=f"degraded: {enforcing}" if decided.degraded else "ok")

    async def start(self) -> None:
        self._reloader = CertificateReloader(self.settings.cert_file, self.settings.key_file)
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=self.settings.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            site_host(self.settings.host),
            self.settings.port,
            ssl_context=self._reloader.context,
            reuse_port=True,
        )
        await site.start()
        self._watch = asyncio.create_task(self._reloader.watch(self.settings.reload_interval))
        if self.decision_times is not None:
            self._flushing = asyncio.create_task(self.decision_times.flush_every())
        log.info(
            "webhook serving reviews at %s, HTTPS port %d of %s",
            self.settings.path,
            self.settings.port,
            self.settings.host,
        )

    async def stop(self) -> None:
        """Unready first, then stop accepting, then let in-flight reviews finish."""
        self.draining = True
        await asyncio.sleep(self.settings.shutdown_delay)
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._runner is not None:
            await self._runner.cleanup()
        # After the last review: every one answered is in the file.
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        if self.decision_times is not None:
            self.decision_times.close()
        if self._meter is not None:
            self._meter.close()
        log.info("webhook stopped")
