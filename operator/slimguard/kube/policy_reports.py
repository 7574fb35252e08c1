"""Writes PolicyReports (wgpolicyk8s.io or openreports.io) through the gateway's API client; what the apiserver
refuses is raised as ReportApiMissing or ReportWriteFailed (both ``kube.errors``)."""

from __future__ import annotations

import logging
from typing import Any

from slimguard.core.reports.policy_report import MANAGED_BY, MANAGED_BY_LABEL, OMITTED_ANNOTATION, ReportApi
from slimguard.kube.errors import Conflict, KubeError, NotFound
from slimguard.kube.gateway import KubeGateway

log = logging.getLogger(__name__)


class ReportApiMissing(NotFound):
    """The apiserver does not serve the report API: its CRD is not installed."""


class ReportWriteFailed(KubeError):
    """The apiserver refused a report write (its namespace terminating, a quota, a webhook): tried again later."""


class PolicyReportWriter:
    def __init__(self, kube: KubeGateway, api: ReportApi) -> None:
        self.kube = kube
        self.api = api

    @property
    def _resource(self) -> tuple[str, str]:
        return self.api.group, self.api.version

    async def list_ours(self) -> list[dict[str, Any]]:
        """Every report slimguard wrote, in every namespace. ReportApiMissing without the CRD, ReportWriteFailed
        when the apiserver refuses (a role without the report kinds)."""
        try:
            listed = await self.kube._call(
                self.kube.custom.list_cluster_custom_object,
                *self._resource,
                self.api.plural,
                label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
            )
        except NotFound:
            raise ReportApiMissing(f"{self.api.plural}.{self.api.group} is not served") from None
        except KubeError as error:
            raise ReportWriteFailed(
                f"listing {self.api.plural}.{self.api.group}: {error.status} {error.reason}"
            ) from None
        return list(listed.get("items") or [])

    async def write(self, body: dict[str, Any], *, exists: bool) -> None:
        """Create the report, or merge-patch it (lists are replaced whole, so its results are exactly ``body``'s)."""
        try:
            await self._write(body, exists=exists)
        except ReportApiMissing:
            raise
        except KubeError as error:
            metadata = body["metadata"]
            raise ReportWriteFailed(
                f"{self.api.kind} {metadata['namespace']}/{metadata['name']}: {error.status} {error.reason}"
            ) from None

    async def _write(self, body: dict[str, Any], *, exists: bool) -> None:
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        if self.kube.dry_run:
            log.info(
                "dry-run: would write %s %s/%s with %d results", self.api.kind, namespace, name, len(body["results"])
            )
            return
        if not exists:
            try:
                await self.kube._write_call(
                    self.kube.custom.create_namespaced_custom_object, *self._resource, namespace, self.api.plural, body
                )
                return
            except NotFound:
                raise ReportApiMissing(f"{self.api.plural}.{self.api.group} is not served") from None
            except Conflict:  # it exists after all (written before a restart): patch it
                pass
        patch = {**body, "metadata": {**metadata, "annotations": {OMITTED_ANNOTATION: None, **metadata["annotations"]}}}
        try:
            await self.kube._write_call(
                self.kube.custom.patch_namespaced_custom_object,
                *self._resource,
                namespace,
                self.api.plural,
                name,
                patch,
            )
        except NotFound:
            # Deleted meanwhile (its workload went, and the garbage collector with it): written anew if it comes back.
            await self._write(body, exists=False)

    async def delete(self, namespace: str, name: str) -> None:
        if self.kube.dry_run:
            log.info("dry-run: would delete %s %s/%s", self.api.kind, namespace, name)
            return
        try:
            await self.kube._write_call(
                self.kube.custom.delete_namespaced_custom_object, *self._resource, namespace, self.api.plural, name
            )
        except NotFound:
            pass
        except KubeError as error:
            raise ReportWriteFailed(f"{self.api.kind} {namespace}/{name}: {error.status} {error.reason}") from None
