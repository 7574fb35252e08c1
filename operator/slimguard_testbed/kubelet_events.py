"""``Pulled`` Events exactly as a kubelet v1.36 records them, for the tiers and benchmarks without a kubelet.

The control-plane tier has no kubelet, and a benchmark cannot pull an image 10,000 times here; there the Events are
created through the API as the kubelet's recorder makes them, so slimguard reads them as it reads a kubelet's:
- the messages from ``pkg/kubelet/images/image_manager.go`` (``EnsureImageExists``, ``pullImage``);
- the object from client-go v0.36.3 ``tools/record/event.go`` (``makeEvent``: name ``<pod>.<UnixNano hex>``,
  first and last timestamps the same, count 1; ``generateEvent``: ``source`` and ``reportingController`` /
  ``reportingInstance`` from the recorder's source, the kubelet and its node);
- the reference from the kubelet's ``kubecontainer.GenerateContainerRef`` (``fieldPath: spec.containers{NAME}``).
The real node tier reads the real kubelet's Events instead.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def go_duration(seconds: float) -> str:
    """What Go's ``time.Duration.String()`` prints for a duration truncated to the millisecond, as the kubelet's."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def pulled_message(image: str, seconds: float, with_waiting: float, size: int) -> str:
    return (
        f'Successfully pulled image "{image}" in {go_duration(seconds)} ({go_duration(with_waiting)} including '
        f"waiting). Image size: {size} bytes."
    )


def present_message(image: str) -> str:
    return f'Container image "{image}" already present on machine'


def pulled_event(
    *,
    namespace: str,
    pod: str,
    container: str,
    node: str,
    message: str,
    pod_uid: str = "",
    at: datetime | None = None,
) -> dict[str, Any]:
    """One ``Pulled`` Event as the kubelet on ``node`` records it for ``pod``'s ``container``."""
    when = at or datetime.now(UTC)
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: dict[str, Any] = {
        "kind": "Pod",
        "namespace": namespace,
        "name": pod,
        "apiVersion": "v1",
        "fieldPath": f"spec.containers{{{container}}}",
    }
    if pod_uid:
        involved["uid"] = pod_uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod}.{time.time_ns():x}", "namespace": namespace},
        "involvedObject": involved,
        "reason": "Pulled",
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": "Normal",
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }
