"""The PolicyReport effect: each workload's verdict as a report, written only when it changed.

Reports are owned by their workload, so Kubernetes' garbage collector removes them with it, even while
slimguard is down. What was last written (or found at start) is kept, so a re-audit that changes nothing
writes nothing. Without the report CRD in the cluster the effect waits, asking again every few minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Workload
from slimguard.core.reports import policy_report
from slimguard.kube.policy_reports import PolicyReportWriter, ReportApiMissing, ReportWriteFailed
from slimguard.kube.resources import api_version

log = logging.getLogger(__name__)

ReportKey = tuple[str, str]
"""(namespace, report name)."""


@dataclass
class PolicyReports:
    writer: PolicyReportWriter
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    probe_interval: timedelta = timedelta(minutes=5)
    """How often to look again for a report CRD that was not installed."""

    def __post_init__(self) -> None:
        self._written: dict[ReportKey, dict[str, Any]] = {}
        self._next_probe: datetime | None = None  # None: ask now

    @property
    def api(self) -> policy_report.ReportApi:
        return self.writer.api

    async def _available(self) -> bool:
        if self._next_probe is None:
            return True
        if self.clock() < self._next_probe:
            return False
        return await self.start()

    async def start(self) -> bool:
        """Read back the reports slimguard wrote before (a restart must not rewrite them all)."""
        try:
            found = await self.writer.list_ours()
        except (ReportApiMissing, ReportWriteFailed) as missing:
            if self._next_probe is None or self._written:
                log.warning(
                    "not writing PolicyReports: %s (install its CRD; looking again every %s)",
                    missing,
                    self.probe_interval,
                )
            self._written.clear()
            self._next_probe = self.clock() + self.probe_interval
            return False
        self._next_probe = None
        self._written.clear()  # what the cluster holds now; another replica may have written since we last looked
        for item in found:
            metadata = item.get("metadata") or {}
            self._written[(metadata.get("namespace", ""), metadata.get("name", ""))] = policy_report.content_of(item)
        return True

    async def update(
        self, workload: Workload, uid: str | None, verdict: Verdict | None, policies: Sequence[ImagePolicy]
    ) -> None:
        """Make the workload's report say ``verdict`` (None or no policy applied: no report)."""
        if uid is None or not await self._available():
            return  # without a uid there is no owner to collect the report with the workload
        key = (workload.namespace, policy_report.report_name(uid))
        previous = self._written.get(key)
        if verdict is None or not verdict.policies:
            if previous is not None:
                try:
                    await self.writer.delete(*key)
                except ReportWriteFailed as failed:  # best effort, as an Event: the verdict stands without it
                    log.warning("could not delete %s", failed)
                    return
                del self._written[key]
            return
        resource = policy_report.ResourceRef(
            api_version(workload.kind), workload.kind, workload.namespace, workload.name, uid
        )
        body = policy_report.report(
            api=self.api,
            resource=resource,
            results=policy_report.results_for(verdict, policies),
            previous=previous,
            now=self.clock(),
        )
        content = policy_report.content_of(body)
        if content == previous:
            return
        try:
            await self.writer.write(body, exists=previous is not None)
        except ReportApiMissing:
            await self.start()  # the CRD went away: wait for it again
            return
        except ReportWriteFailed as failed:  # written at the next evaluation (re-audit, retry, change)
            log.warning("could not write %s", failed)
            return
        self._written[key] = content

    def forget(self, namespace: str, uid: str | None) -> None:
        """The workload is gone; the garbage collector deletes its report."""
        if uid is not None:
            self._written.pop((namespace, policy_report.report_name(uid)), None)
