"""The report kinds, as the controller and the webhook read them: slimguard's own ImageReports, watched (as
metadata) for the component's life, and Trivy Operator's VulnerabilityReports into the cluster view, only while a
policy reads them.

A VulnerabilityReport with its vulnerability list is tens of KB, and clusters hold thousands. So they are read
by slimguard's own informer (kube/informer.py: a LIST in pages of ``REPORT_PAGE_SIZE``, then a WATCH), each
body decoded, turned into the record evaluation reads (``VulnerabilityReport``: owner, digest, counts by
severity, fixable counts, scan time) and dropped; and only while some policy in force reads them (a
``vulnerabilities`` rule, or ``requireCurrentBase``, whose finding says what Trivy counts in the base: the
policies' ``Reads.vulnerability_reports``). The first such policy starts the watch, the last one's going stops it
and drops every record.

Until a watch's first LIST has been handed on, the view says ``reports_pending`` and vulnerability rules are
undecided (``ReportsPending``, so onUnknown decides): never "no report" because the LIST has not reached it yet;
the controller judges again what it judged meanwhile. At start-up, both components wait for that LIST before they
decide anything (the webhook serves no review, and so is not ready, before it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from slimguard.engine.view import ClusterView
from slimguard.kube.image_reports import ImageReports
from slimguard.kube.informer import REPORT_PAGE_SIZE, Credentials, KindWatch
from slimguard.kube.resources import IMAGE_REPORT_RESOURCE, VULNERABILITY_REPORT_RESOURCE

log = logging.getLogger(__name__)

ObserveReport = Callable[[Mapping[str, Any], bool], None]
"""(body, deleted): one report listed, changed or gone."""


def watch_image_reports(
    reports: ImageReports, credentials: Credentials, *, page_size: int = REPORT_PAGE_SIZE, component: str
) -> KindWatch:
    """The ImageReports' watch, feeding ``reports`` (not started): metadata only, so it says which reports exist
    and at which version; a report's facts are read by name when its digest is asked for (kube.image_reports).

    Watched whatever the policies say: the controller writes one per digest it evaluated and removes those no
    workload has used for the grace period, which it can only do knowing them; with no policy there are none to
    write, so the LIST is of nothing, or of what is left until the grace period ends. Without the CRD (not
    installed) there are none, and every fact comes from the registries."""
    return KindWatch(
        "ImageReport",
        IMAGE_REPORT_RESOURCE,
        credentials,
        lambda _kind, body, deleted: reports.observe(body, deleted=deleted),
        page_size=page_size,
        component=component,
        metadata_only=True,
    )


class VulnerabilityReportFeed:
    """Starts and stops the VulnerabilityReport watch as the policies in ``view`` come to need it or not.

    ``observe`` is told every report (the controller's audit, which also re-queues the workloads it speaks for;
    by default the view alone); ``listed`` is told when a watch's first LIST is in (the controller re-queues the
    verdicts that waited for it).
    """

    def __init__(
        self,
        view: ClusterView,
        credentials: Credentials,
        *,
        observe: ObserveReport | None = None,
        listed: Callable[[], None] | None = None,
        page_size: int = REPORT_PAGE_SIZE,
        component: str = "controller",
    ) -> None:
        self.view = view
        self._credentials = credentials
        self._observe = observe or self._into_view
        self._listed = listed
        self.page_size = page_size
        self.component = component
        self.watch: KindWatch | None = None
        """The running watch; None while no policy reads reports."""
        self.watches_started = 0
        self._stopping: set[asyncio.Task[None]] = set()

    def _into_view(self, body: Mapping[str, Any], deleted: bool) -> None:
        self.view.observe_report(body, deleted=deleted)

    def follow_policies(self) -> None:
        """Start the watch if a policy in force reads reports and none runs; stop it if none does any more.
        Called after every change to the policies (on the event loop)."""
        wanted = self.view.reads_reports
        if wanted and self.watch is None:
            self._start()
        elif not wanted and self.watch is not None:
            self._stop_watch()

    def _start(self) -> None:
        self.view.reports_pending = True
        watch = KindWatch(
            "VulnerabilityReport",
            VULNERABILITY_REPORT_RESOURCE,
            self._credentials,
            lambda _kind, body, deleted: self._observe(body, deleted),
            page_size=self.page_size,
            component=self.component,
            on_listed=lambda: self._first_list_in(watch),
        )
        self.watch = watch
        self.watches_started += 1
        watch.start()
        log.info("a policy reads VulnerabilityReports: listing and watching them")

    def _first_list_in(self, watch: KindWatch) -> None:
        if watch is not self.watch or not self.view.reports_pending:
            return  # a relist after an expired watch, or a watch already stopped
        self.view.reports_pending = False
        log.info("VulnerabilityReports listed: %d held", len(self.view.reports))
        if self._listed is not None:
            self._listed()

    def _stop_watch(self) -> None:
        watch, self.watch = self.watch, None
        assert watch is not None
        # Cancelled here, awaited by ``stop``: nothing is handed on after the cancellation, so the view is
        # emptied at once, and no report speaks for anything while no policy reads them.
        watch.cancel()
        stopping = asyncio.create_task(watch.stop(), name="slimguard-watch-vulnerabilityreports-stop")
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        self.view.forget_reports()
        self.view.reports_pending = False
        log.info("no policy reads VulnerabilityReports any more: their watch stopped")

    async def wait_listed(self) -> None:
        """Returns once the reports are listed, or at once when no policy reads them."""
        if self.watch is not None:
            await self.watch.wait_listed()

    async def stop(self) -> None:
        """Stop the watch, if one runs, and wait for every watch stopping."""
        if self.watch is not None:
            watch, self.watch = self.watch, None
            await watch.stop()
        while self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
