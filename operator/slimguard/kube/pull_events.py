"""The kubelets' ``Pulled`` Events, as the controller reads them: listed and watched by slimguard's own informer
with the field selector ``reason=Pulled`` (the apiserver filters; nothing else of the Events is read), each body
handed on as decoded and dropped; and the image IDs a Pod's containers run, read by name when a pull names an
image by tag (the digest the kubelet pulled is in ``status.containerStatuses[].imageID``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slimguard.kube.errors import NotFound
from slimguard.kube.gateway import KubeGateway
from slimguard.kube.informer import Credentials, KindWatch
from slimguard.kube.resources import EVENT_RESOURCE, object_path

PULLED = "reason=Pulled"
EVENT_PAGE_SIZE = 500
"""An Event is ~1 KB decoded: a page of 500 is what a page of ~25 Deployments is."""


def watch_pulled_events(
    credentials: Credentials,
    observe: Callable[[Mapping[str, Any], bool], None],
    *,
    page_size: int = EVENT_PAGE_SIZE,
    component: str = "controller",
) -> KindWatch:
    """The ``Pulled`` Events of every namespace (not started): ``observe(body, deleted)`` for each."""
    return KindWatch(
        "Event",
        EVENT_RESOURCE,
        credentials,
        lambda _kind, body, deleted: observe(body, deleted),
        page_size=page_size,
        component=component,
        absent_is_empty=False,
        field_selector=PULLED,
    )


async def container_image_ids(kube: KubeGateway, namespace: str, pod: str) -> dict[str, str] | None:
    """Container name → the imageID its status reports (init and ephemeral containers too); None when the Pod is
    gone. A container not started yet has none."""
    try:
        body = await kube.read_json(object_path(("", "v1", "pods"), namespace, pod))
    except NotFound:
        return None
    status = body.get("status") or {}
    found: dict[str, str] = {}
    for field in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for item in status.get(field) or ():
            if isinstance(item, Mapping) and item.get("name") and item.get("imageID"):
                found[str(item["name"])] = str(item["imageID"])
    return found
