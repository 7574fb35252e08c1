"""The kubelets' pulls, folded per image digest as their ``Pulled`` Events arrive (core.facts.pulls says how).

An Event names the image as the Pod's spec does (a tag, mostly); the digest it pulled is the Pod's container
status ``imageID``, read once per Pod (the Pod's containers all at once) and a few times more while the
container has not started yet, or the reference's own digest when it names one. Failing both, the digest the
controller last resolved the reference to (its inspector's answer). Which sizes a node reports (compressed on
containerd, uncompressed on CRI-O) comes from its Node object, as the controller watches them.

Events are handled one at a time by one task, so the records need no lock; the first pull of a digest starts
from what its ImageReport holds (``load``), so a restart or a new leader adds to the counts, never restarts them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from slimguard.core.errors import InvalidReference
from slimguard.core.facts.pulls import ImagePulls, PullEvent, SizeKind, pull_event, pulls_in, pulls_out, size_kind
from slimguard.core.model.reference import ImageReference
from slimguard.kube.errors import KubeError

log = logging.getLogger(__name__)

PodImageIds = Callable[[str, str], Awaitable[dict[str, str] | None]]
"""(namespace, pod) → container → imageID (None: the Pod is gone)."""
LoadPulls = Callable[[str], Awaitable[ImagePulls | None]]
"""A digest's pulls as its ImageReport holds them (None: none); the ledger folds into a copy."""
Counted = Callable[[PullEvent, str, int], None]
"""(event, digest, occurrences newly folded): for the metrics."""

MAX_IMAGES = 5000
"""Digests whose pulls are held: past it the least recently pulled goes (a digest with an ImageReport is read back
from it when pulled again; one without loses its counts, the metrics keep theirs)."""
POD_CACHE = 512
"""Pods whose image IDs are kept: a scale-up's Pods pull in a burst."""
RETRY_SECONDS = (1.0, 2.0, 4.0, 8.0)
"""While a container has no imageID yet (created just after its image is pulled): how long to wait each time."""


def digest_of_image_id(image_id: str) -> str | None:
    """``registry/repo@sha256:…`` (containerd), ``docker-pullable://repo@sha256:…`` or ``sha256:…`` → the digest."""
    tail = image_id.rpartition("@")[2] if "@" in image_id else image_id.rpartition("://")[2]
    return tail if tail.startswith("sha256:") and len(tail) == 71 else None


def digest_of_reference(image: str) -> str | None:
    try:
        return ImageReference.parse(image).digest
    except InvalidReference:
        return None


@dataclass
class PullLedger:
    """Folds each ``Pulled`` Event into ``pulls`` (digest → record), once; tells ``changed`` which digests moved."""

    pulls: MutableMapping[str, ImagePulls]
    pod_image_ids: PodImageIds
    load: LoadPulls
    resolved: Mapping[str, str]
    """Image reference → digest as the controller's inspector last answered it (the last resort)."""
    changed: Callable[[str, ImagePulls], None]
    counted: Counted | None = None
    retry_seconds: tuple[float, ...] = RETRY_SECONDS
    max_images: int = MAX_IMAGES

    def __post_init__(self) -> None:
        self.size_kinds: dict[str, SizeKind] = {}
        self._queue: asyncio.Queue[PullEvent] = asyncio.Queue()
        self._pods: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.events_seen = 0
        self.unresolved = 0
        self._pod_reads_failed = False

    # --- told by the watches -----------------------------------------------------------------------------------

    def observe_event(self, body: Mapping[str, Any], deleted: bool) -> None:
        """An Event listed or watched: queued if it tells a pull. A deleted one (expired) changes nothing."""
        if deleted:
            return
        event = pull_event(body)
        if event is not None:
            self.events_seen += 1
            self._queue.put_nowait(event)

    def observe_node(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Which sizes a node's runtime reports."""
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            return
        if deleted:
            self.size_kinds.pop(name, None)
            return
        runtime = ((body.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion") or ""
        self.size_kinds[name] = size_kind(str(runtime))

    # --- the one task ------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="slimguard-pull-ledger")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def idle(self) -> bool:
        """Nothing queued (what tests and benchmarks wait for)."""
        return self._queue.empty() and self._queue._unfinished_tasks == 0  # type: ignore[attr-defined]

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.fold(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the pull of %s on %s was not counted", event.pulled.image, event.node)
            finally:
                self._queue.task_done()

    async def fold(self, event: PullEvent) -> int:
        """Fold one Event; returns the occurrences newly counted."""
        digest = await self._digest(event)
        if digest is None:
            self.unresolved += 1
            log.debug("pull of %s in %s/%s: no digest known", event.pulled.image, event.namespace, event.pod)
            return 0
        record = self.pulls.get(digest)
        if record is None:
            stored = await self.load(digest)
            record = self.pulls.get(digest)  # folded meanwhile? (one task: no, but a load may be slow)
            if record is None:
                record = ImagePulls(digest) if stored is None else pulls_in(digest, pulls_out(stored))
        else:
            del self.pulls[digest]  # put back last: the most recently pulled
        self.pulls[digest] = record
        while len(self.pulls) > self.max_images:
            del self.pulls[next(iter(self.pulls))]
        new = record.fold(event, self.size_kinds.get(event.node, SizeKind.UNKNOWN))
        if new:
            if self.counted is not None:
                self.counted(event, digest, new)
            self.changed(digest, record)
        return new

    async def _digest(self, event: PullEvent) -> str | None:
        if (pinned := digest_of_reference(event.pulled.image)) is not None:
            return pinned
        if event.container is not None:
            for delay in (0.0, *self.retry_seconds):
                if delay:
                    await asyncio.sleep(delay)
                ids = await self._image_ids(event.namespace, event.pod, fresh=delay > 0)
                if ids is None:
                    break  # the Pod is gone
                if (image_id := ids.get(event.container)) is not None:
                    return digest_of_image_id(image_id)
        return self.resolved.get(event.pulled.image)

    async def _image_ids(self, namespace: str, pod: str, *, fresh: bool) -> dict[str, str] | None:
        key = (namespace, pod)
        if not fresh and (known := self._pods.get(key)) is not None:
            self._pods.move_to_end(key)
            return known
        try:
            ids = await self.pod_image_ids(namespace, pod)
        except KubeError as error:  # refused or unavailable: the resolved digest answers, and the log says why once
            if not self._pod_reads_failed:
                log.warning("Pods not read for their image IDs (%s %s): pulls by tag count for the digest the "
                            "controller resolved", error.status, error.reason)  # fmt: skip
            self._pod_reads_failed = True
            return None
        if ids is not None:
            self._pods[key] = ids
            while len(self._pods) > POD_CACHE:
                self._pods.popitem(last=False)
        return ids
