"""The control plane's REST API as its admin: what a benchmark creates, reads and counts, over keep-alive httpx
(kubectl would cost a process and a round trip of its own per object)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from slimguard_testbed import ControlPlane, TestbedError

METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def collection(kind: str, namespace: str) -> str:
    """Where a Pod or a Deployment of ``namespace`` is created."""
    if kind == "Pod":
        return f"/api/v1/namespaces/{namespace}/pods"
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


class Apiserver:
    """Admin REST calls with the admin client certificate. `create` may run on many threads at once (a benchmark's
    concurrent clients), each with its own keep-alive client; everything else uses one client."""

    def __init__(self, plane: ControlPlane) -> None:
        pki = plane.workdir / "pki"
        self.context = ssl.create_default_context(cafile=str(plane.ca_file))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.server = plane.server
        self.http = self._new_client()
        self._local = threading.local()
        self._all: list[httpx.Client] = [self.http]
        self._lock = threading.Lock()
        self.errors: list[str] = []  # failed creates, as the benchmark words them

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server, verify=self.context, timeout=60.0)

    def close(self) -> None:
        for client in self._all:
            client.close()

    def _thread_client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client()
            with self._lock:
                self._all.append(client)
        return client

    def create(self, kind: str, body: dict[str, Any], *, dry_run: bool = False) -> tuple[int, str, float]:
        """POST one Pod or Deployment from the calling thread; (status, text, seconds)."""
        client = self._thread_client()
        payload = json.dumps(body).encode()  # serialised before the clock starts, as a client would
        params = {"dryRun": "All"} if dry_run else None
        path = collection(kind, body["metadata"]["namespace"])
        started = time.perf_counter()
        response = client.post(path, content=payload, params=params, headers={"Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        return response.status_code, response.text, elapsed

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code >= 300:
            raise TestbedError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def delete(self, path: str) -> None:
        response = self.http.delete(path)
        if response.status_code not in (200, 202, 404):
            raise TestbedError(f"DELETE {path} answered {response.status_code}: {response.text[:500]}")

    def exists(self, path: str) -> bool:
        return self.http.get(path).status_code == 200

    def count(self, path: str) -> int:
        """Objects in a collection: one item and the apiserver's remainingItemCount, not a LIST of 10,000."""
        response = self.http.get(path, params={"limit": 1}, headers={"Accept": METADATA_ONLY})
        response.raise_for_status()
        listed = response.json()
        items = len(listed.get("items") or ())  # an empty metadata-only list has "items": null
        metadata = listed.get("metadata") or {}
        if not metadata.get("continue"):
            return items
        if metadata.get("remainingItemCount") is not None:
            return items + int(metadata["remainingItemCount"])
        response = self.http.get(path, headers={"Accept": METADATA_ONLY})
        response.raise_for_status()
        return len(response.json().get("items") or ())

    async def create_many(self, objects: Sequence[tuple[str, dict[str, Any]]], *, concurrency: int = 16) -> None:
        """POST many objects at once: kubectl creates them one round trip at a time."""
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=self.server, verify=self.context, timeout=120.0, limits=limits) as client:
            gate = asyncio.Semaphore(concurrency)

            async def create(path: str, body: dict[str, Any]) -> None:
                async with gate:
                    response = await client.post(path, json=body)
                if response.status_code >= 300:
                    raise TestbedError(f"POST {path} answered {response.status_code}: {response.text[:500]}")

            await asyncio.gather(*(create(path, body) for path, body in objects))
