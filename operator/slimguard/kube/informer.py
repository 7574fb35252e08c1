"""slimguard's own informer: LIST in pages, then WATCH, each object handed on as decoded; for the workload kinds,
and for the report kinds (ImageReports, and Trivy Operator's VulnerabilityReports while a policy reads them).

kopf LISTs a kind in one response and turns every watch event into a worker task, a cause, a logger and a
handler call. At 10,000 Deployments that was 45 % of the controller's CPU, and the decoded list (~19 KB per
object, held until each object's worker ran) took the controller past 500 MB (bench/README.md). Here at most
one page of ``page_size`` objects is decoded at a time, each object is handed to ``observe`` and dropped, and a
watch event is one line decoded and handed on: nothing of a body outlives the call but what ``observe`` keeps.

What client-go's reflector does, in the small: a watch that ends is resumed from the last resourceVersion seen
(bookmarks included); one the apiserver calls expired (410) is replaced by a fresh LIST, and every object known
before but missing from it is handed on as deleted, so a deletion made while no watch was open is never lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx
import kopf

from slimguard.exhaustion import exit_exhausted, is_exhaustion
from slimguard.kube.resources import Resource

log = logging.getLogger(__name__)

Observe = Callable[[str, Mapping[str, Any], bool], None]
"""(kind, body, deleted): told every object listed or watched, and every deletion."""
Credentials = Callable[[], kopf.ConnectionInfo]
"""Read again now and then (``_FreshToken``), so a rotated ServiceAccount token is picked up."""

METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# client-go pages by 500; half that here: a page of 500 Deployments decodes to ~7 MB (managedFields and all),
# and each page's peak stays in the process's high-water mark after it is freed.
PAGE_SIZE = 250
# A VulnerabilityReport with its vulnerability list is tens of KB (~40 KB for a Debian image's ~100 findings), so
# a page of 100 decodes to about what a page of 250 Deployments does.
REPORT_PAGE_SIZE = 100
WATCH_SECONDS = 270  # as kopf's server_timeout here (kube/kopf_tuning.py): the apiserver ends the watch, cleanly
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
ABSENT_SECONDS = 10.0
"""How often a kind not served (``absent_is_empty``) is asked for again: a CRD installed later is seen so soon."""


class ResourceExpired(Exception):
    """410 Gone: the resourceVersion (or a list's continue token) is older than the apiserver keeps."""


class ApiFailure(Exception):
    """The apiserver answered a LIST or WATCH with an error other than 410."""


class KindAbsent(ApiFailure):
    """404 on the collection: the kind is not served (its CRD is not installed)."""


def resource_path(resource: Resource, namespace: str = "") -> str:
    """The collection's path: across namespaces, or within ``namespace``."""
    group, version, plural = resource
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"


class _FreshToken(httpx.Auth):
    """The bearer token of the newest credentials, read again at most every ``refresh_seconds``: a projected
    ServiceAccount token is rotated on disk while the watches run."""

    def __init__(self, credentials: Credentials, first: kopf.ConnectionInfo, refresh_seconds: float = 60.0) -> None:
        self._credentials = credentials
        self._info = first
        self._refresh_seconds = refresh_seconds
        self._read_at = time.monotonic()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if time.monotonic() - self._read_at > self._refresh_seconds:
            self._info, self._read_at = self._credentials(), time.monotonic()
        if self._info.token:
            request.headers["Authorization"] = f"{self._info.scheme or 'Bearer'} {self._info.token}"
        yield request


def http_client(credentials: Credentials) -> httpx.AsyncClient:
    """One pooled HTTPS client for the apiserver, with the identity kopf and the ``kubernetes`` client use."""
    info = credentials()
    if info.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=info.ca_path)
    if info.certificate_path:
        context.load_cert_chain(info.certificate_path, info.private_key_path)
    return httpx.AsyncClient(
        base_url=str(info.server),
        verify=context,
        auth=_FreshToken(credentials, info),
        headers={"Accept": "application/json"},
        # A pause between watch events is normal; the apiserver ends the watch itself after WATCH_SECONDS.
        timeout=httpx.Timeout(30.0, read=WATCH_SECONDS + 30.0),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
    )


@dataclass
class ResourceInformer:
    """One workload kind: its objects handed to ``observe`` as they are listed and as they change."""

    kind: str
    resource: Resource
    client: Callable[[], httpx.AsyncClient]
    observe: Observe
    page_size: int = PAGE_SIZE
    watch_seconds: int = WATCH_SECONDS
    needs_body: Callable[[Mapping[str, Any]], bool] | None = None
    """Set: list and watch metadata only (``PartialObjectMetadata``), and GET the whole object only where this
    says so from its metadata. ReplicaSets and Pods are nearly all made by a workload controller, and such an
    object is judged on its owner: its owner references and annotations are all the controller reads of it."""
    absent_is_empty: bool = False
    """A kind not served (404: its CRD not installed, as Trivy Operator's may not be) counts as listed and empty,
    and is listed again every ``ABSENT_SECONDS`` so an install is noticed; otherwise a 404 is retried as any
    failure, and ``synced`` waits."""
    on_listed: Callable[[], None] | None = None
    """Told after every full LIST has been handed on (the first, and each after an expired watch)."""
    component: str = "controller"
    """Who runs this informer, for the one line said when memory runs out."""
    field_selector: str | None = None
    """Only the objects it selects are listed and watched (``reason=Pulled`` of the Events): the apiserver filters."""
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first full LIST has been handed on."""
    lists: int = 0
    """Full LISTs made (the first, and one after every expired watch)."""
    pages: int = 0
    """LIST pages read, over all LISTs: a LIST of more than ``page_size`` objects takes several."""

    def __post_init__(self) -> None:
        self.path = resource_path(self.resource)
        # (namespace, name) → uid of every object handed on and not deleted: what a relist compares against.
        self._known: dict[tuple[str, str], str] = {}
        self.resource_version: str | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    self.resource_version = await self._list()
                    self.synced.set()
                    if self.on_listed is not None:
                        self.on_listed()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ResourceExpired:
                log.info("watch of %s expired: listing them again", self.resource[2])
                self.resource_version = None
            except KindAbsent as error:
                if self.absent_is_empty:
                    await self._absent()
                else:
                    failures = await self._failed(error, failures)
            except Exception as error:
                failures = await self._failed(error, failures)

    async def _failed(self, error: Exception, failures: int) -> int:
        """Wait before trying again, longer with each failure in a row; returns the failures so far."""
        if is_exhaustion(error):
            exit_exhausted(self.component, error)
        # The apiserver unreachable or refusing, a line that is not JSON (a proxy's error page, a cut stream), an
        # answer of the wrong shape: whatever it was, this kind's watch must not end with it.
        delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
        if failures == 0 or delay == RETRY_SECONDS[-1]:  # the first of a streak, then every 30 s
            log.warning("watching %s failed (%s); retrying in %.1f s", self.resource[2], error, delay)
        await asyncio.sleep(delay)
        return failures + 1

    async def _absent(self) -> None:
        """The kind is not served: none of it exists (what was known is handed on as deleted). Asked again later."""
        if not self.synced.is_set() or self._known:
            every = ABSENT_SECONDS
            log.warning("no %s are served (no CRD): none to read; asking again every %.0f s", self.resource[2], every)
        self._forget_all()
        self.resource_version = None
        self.synced.set()
        if self.on_listed is not None:
            self.on_listed()
        await asyncio.sleep(ABSENT_SECONDS)

    async def _list(self) -> str:
        listed: dict[tuple[str, str], str] = {}
        params: dict[str, str] = {"limit": str(self.page_size), **self._selected()}
        try:
            while True:
                response = await self.client().get(self.path, params=params, headers=self._accept(METADATA_LIST))
                page = _json_or_raise(response)
                self.pages += 1
                for item in page.get("items") or ():
                    await self._hand_on(item, deleted=False, into=listed)
                metadata = page.get("metadata") or {}
                if not metadata.get("continue"):
                    break
                params["continue"] = str(metadata["continue"])
                del page, response  # one page at a time: the next is read only once this one is gone
        except BaseException:
            # A LIST cut short (its continue token expired, cancelled): what it handed on is known, so the next
            # LIST hands on as deleted whatever of it is gone by then.
            self._known.update(listed)
            raise
        self._forget_all(but=listed)
        self.lists += 1
        return str(metadata.get("resourceVersion") or "")

    def _forget_all(self, *, but: Mapping[tuple[str, str], str] = MappingProxyType({})) -> None:
        """Hand on as deleted every object known before and not in ``but`` (a new LIST's objects)."""
        for key in self._known.keys() - but.keys():
            namespace, name = key
            gone = {"metadata": {"namespace": namespace, "name": name, "uid": self._known[key]}}
            self._deliver(gone, deleted=True)
        self._known = dict(but)

    async def _watch(self) -> None:
        """One WATCH from ``resource_version``, which follows every event: a watch cut short resumes after the
        last event it delivered."""
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
            "resourceVersion": str(self.resource_version),
            **self._selected(),
        }
        headers = self._accept(METADATA_WATCH)
        async with self.client().stream("GET", self.path, params=params, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                _json_or_raise(response)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, body = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise _failure(body)
                if kind != "BOOKMARK":
                    await self._hand_on(body, deleted=kind == "DELETED", into=self._known)
                if version := (body.get("metadata") or {}).get("resourceVersion"):
                    self.resource_version = str(version)

    def _selected(self) -> dict[str, str]:
        return {"fieldSelector": self.field_selector} if self.field_selector else {}

    def _accept(self, metadata_only: str) -> dict[str, str]:
        return {"Accept": metadata_only} if self.needs_body is not None else {}

    async def _hand_on(self, body: Mapping[str, Any], *, deleted: bool, into: dict[tuple[str, str], str]) -> None:
        metadata = body.get("metadata") or {}
        key = (sys.intern(str(metadata.get("namespace") or "")), str(metadata.get("name") or ""))
        if deleted:
            into.pop(key, None)
        elif self.needs_body is not None and self.needs_body(body):
            response = await self.client().get(f"{resource_path(self.resource, key[0])}/{key[1]}")
            if response.status_code == 404:
                return  # deleted since: its DELETED event follows
            body = _json_or_raise(response)
            metadata = body.get("metadata") or {}
        if not deleted:
            into[key] = str(metadata.get("uid") or "")
        self._deliver(body, deleted=deleted)

    def _deliver(self, body: Mapping[str, Any], *, deleted: bool) -> None:
        try:
            self.observe(self.kind, body, deleted)
        except Exception as error:
            if is_exhaustion(error):
                exit_exhausted(self.component, error)
            # One object the controller cannot take must not stop the watch of all the others.
            log.exception("observing %s %s failed", self.kind, (body.get("metadata") or {}).get("name"))


def _json_or_raise(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 410:
        raise ResourceExpired(response.text[:200])
    if response.status_code == 404:
        raise KindAbsent(f"HTTP 404: {response.text[:200]}")
    if response.status_code != 200:
        raise ApiFailure(f"HTTP {response.status_code}: {response.text[:200]}")
    decoded = json.loads(response.content)  # from the bytes: no text copy of a page first
    if not isinstance(decoded, dict):
        raise ValueError("the apiserver's answer is not a JSON object")
    return decoded


def _failure(status: Mapping[str, Any]) -> Exception:
    if status.get("code") == 410:
        return ResourceExpired(str(status.get("message") or "expired"))
    if status.get("code") == 404:
        return KindAbsent(f"HTTP 404: {status.get('message')}")
    return ApiFailure(f"HTTP {status.get('code')}: {status.get('message')}")


class WorkloadInformer:
    """Every workload kind, each with its own LIST and WATCH, over one pooled client."""

    def __init__(
        self,
        resources: Mapping[str, Resource],
        credentials: Credentials,
        observe: Observe,
        *,
        needs_body: Mapping[str, Callable[[Mapping[str, Any]], bool]] | None = None,
        page_size: int = PAGE_SIZE,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        """``needs_body``: the kinds watched as metadata only, each with what says an object's body is needed."""
        self._credentials = credentials
        self._client: httpx.AsyncClient | None = None
        self.informers = [
            ResourceInformer(
                kind,
                resource,
                self._http,
                observe,
                needs_body=(needs_body or {}).get(kind),
                page_size=page_size,
                watch_seconds=watch_seconds,
            )
            for kind, resource in resources.items()
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = http_client(self._credentials)
        return self._client

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(informer.run(), name=f"slimguard-informer-{informer.kind.lower()}")
            for informer in self.informers
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _never(_: Mapping[str, Any]) -> bool:
    return False


class KindWatch:
    """One kind listed and watched by a task and a client of its own, from ``start`` until ``stop``.

    What a component watches for its whole life (the ImageReports) or only while something needs it (Trivy
    Operator's VulnerabilityReports, while a policy reads them: engine.report_feed). A watch stopped and started
    again is a new one: it lists everything again.
    """

    def __init__(
        self,
        kind: str,
        resource: Resource,
        credentials: Credentials,
        observe: Observe,
        *,
        page_size: int = REPORT_PAGE_SIZE,
        watch_seconds: int = WATCH_SECONDS,
        component: str = "controller",
        on_listed: Callable[[], None] | None = None,
        absent_is_empty: bool = True,
        metadata_only: bool = False,
        field_selector: str | None = None,
    ) -> None:
        """``metadata_only``: list and watch ``PartialObjectMetadata`` (names, versions, labels), never a body.
        ``field_selector``: only what it selects is listed and watched."""
        self._credentials = credentials
        self._client: httpx.AsyncClient | None = None
        self.informer = ResourceInformer(
            kind,
            resource,
            self._http,
            observe,
            page_size=page_size,
            watch_seconds=watch_seconds,
            absent_is_empty=absent_is_empty,
            on_listed=on_listed,
            component=component,
            needs_body=_never if metadata_only else None,
            field_selector=field_selector,
        )
        self._task: asyncio.Task[None] | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = http_client(self._credentials)
        return self._client

    @property
    def running(self) -> bool:
        """Started, and neither cancelled nor ended."""
        return self._task is not None and not self._task.done() and not self._task.cancelling()

    @property
    def listed(self) -> bool:
        """The first LIST has been handed on: from here on what it holds is the cluster's, as watched."""
        return self.informer.synced.is_set()

    def start(self) -> None:
        if self._task is None:
            name = f"slimguard-watch-{self.informer.resource[2]}"
            self._task = asyncio.create_task(self.informer.run(), name=name)

    async def wait_listed(self) -> None:
        """Returns once the first LIST has been handed on; raises what ended the watch, if it ended first."""
        if self._task is None:
            raise RuntimeError(f"the watch of {self.informer.resource[2]} is not started")
        listed = asyncio.ensure_future(self.informer.synced.wait())
        try:
            await asyncio.wait({listed, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listed.cancel()
        if not self.listed:
            self._task.result()  # raises what ended it
            raise RuntimeError(f"the watch of {self.informer.resource[2]} ended before its first LIST")

    def cancel(self) -> None:
        """Cancel the watch now (``stop`` waits for it): nothing is handed on after this returns."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Cancel the watch and wait for it, then close the client: nothing is handed on after this returns."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
