"""The ``coordination.k8s.io/v1`` Lease a leader election is held on: its record, read and written as the
Kubernetes controllers' own (client-go's ``resourcelock.LeaseLock``) are, so ``kubectl get lease`` reads it alike.

Writes are optimistic: a replace names the resourceVersion it read, so of two candidates that read the same
record only one can write the next; the other gets a conflict (None here) and reads again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from slimguard.kube.errors import Conflict, NotFound, translated

API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """Who holds the lease, for how long a silence counts, and when it last said so."""

    holder: str | None
    """``spec.holderIdentity``; None (or empty) when released."""
    duration_seconds: int
    """``spec.leaseDurationSeconds``: how long another candidate waits, after it saw the record last change."""
    acquired: datetime | None = None
    renewed: datetime | None = None
    transitions: int = 0
    """``spec.leaseTransitions``: how often the holder has changed."""
    resource_version: str | None = None
    """What a replace names, so it fails (409) if anyone wrote in between."""

    @staticmethod
    def from_body(body: Mapping[str, Any]) -> LeaseRecord:
        spec = body.get("spec") or {}
        metadata = body.get("metadata") or {}
        return LeaseRecord(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquired=_parse_time(spec.get("acquireTime")),
            renewed=_parse_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=metadata.get("resourceVersion"),
        )

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": _format_time(self.acquired),
            "renewTime": _format_time(self.renewed),
            "leaseTransitions": self.transitions,
        }


def _format_time(moment: datetime | None) -> str | None:
    """A MicroTime as the apiserver writes it: always six fractional digits, UTC, ``Z``."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None  # unreadable: it says nothing about when; elections go by when a record changed anyway


class LeaseClient:
    """Reads and writes one Lease through the ``kubernetes`` client the controller already uses.

    Its calls run on a thread of their own, never on the default executor the gateway's writes share: with the
    audit's workers waiting on a slow apiserver there, a renewal queued behind them would cost the leadership it
    is meant to keep. ``timeout`` bounds each request, so a hung connection cannot stall the election.
    """

    def __init__(self, api: k8s.ApiClient, *, namespace: str, name: str, timeout: float) -> None:
        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        self._api = k8s.CoordinationV1Api(api)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slimguard-lease")

    async def _run(self, call: Callable[[], Any]) -> Any:
        """``call`` on the lease's own thread; what the apiserver refuses raised as ``kube.errors``."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except ApiException as error:
            raise translated(error) from error

    def _body(self, record: LeaseRecord) -> Any:
        """A plain dict (the client sends it as it is): its MicroTimes formatted as the apiserver wants them."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.resource_version is not None:
            metadata["resourceVersion"] = record.resource_version
        return {"apiVersion": API_VERSION, "kind": "Lease", "metadata": metadata, "spec": record.spec()}

    @staticmethod
    def _decoded(response: Any) -> LeaseRecord:
        return LeaseRecord.from_body(json.loads(response.data))

    async def get(self) -> LeaseRecord | None:
        """The lease as it is now; None when there is none."""

        def call() -> LeaseRecord | None:
            response = self._api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False, _request_timeout=self.timeout
            )
            return self._decoded(response)

        try:
            found: LeaseRecord = await self._run(call)
        except NotFound:
            return None
        return found

    async def create(self, record: LeaseRecord) -> LeaseRecord | None:
        """Create it holding ``record``; None when another candidate created it first."""

        def call() -> LeaseRecord | None:
            response = self._api.create_namespaced_lease(
                self.namespace, self._body(record), _preload_content=False, _request_timeout=self.timeout
            )
            return self._decoded(response)

        try:
            created: LeaseRecord = await self._run(call)
        except Conflict:  # another candidate created it first
            return None
        return created

    async def replace(self, record: LeaseRecord) -> LeaseRecord | None:
        """Write ``record`` over the version it names; None when someone wrote in between (or deleted it)."""

        def call() -> LeaseRecord | None:
            response = self._api.replace_namespaced_lease(
                self.name, self.namespace, self._body(record), _preload_content=False, _request_timeout=self.timeout
            )
            return self._decoded(response)

        try:
            replaced: LeaseRecord = await self._run(call)
        except (NotFound, Conflict):  # someone wrote in between, or deleted it
            return None
        return replaced

    def close(self) -> None:
        """Let go of the thread; a request still on it (bounded by ``timeout``) finishes there unawaited."""
        self._executor.shutdown(wait=False, cancel_futures=True)
