"""What bloat costs where it happens: the kubelet's pulls of an image, as its ``Pulled`` Events tell them.

Since Kubernetes v1.30 every kubelet records each pull as an Event of reason ``Pulled`` on the Pod, in the words of
``pkg/kubelet/images/image_manager.go`` (v1.36, quoted in ``parse_pulled_message``). Pure: an Event's body (a
mapping) in, a ``PullEvent`` out; pulls folded per image digest into ``ImagePulls``, bounded; the body of
``report.pulls`` in the ImageReport and back; and what a slimmer image would save at the measured throughput.

Events live an hour by default (the apiserver's ``--event-ttl``): what is folded into the report outlives them, and
an Event is folded once, by its uid and count (the kubelet's recorder raises ``count`` on an Event it repeats, as
"already present" is when a container restarts): each node's record remembers the last ``MAX_SEEN_EVENTS`` it
folded, and the time of the newest one it has forgotten; an Event older than that and not remembered is taken as
folded. So after a restart nothing is counted twice; what could be missed is an Event older than 32 later ones of
the same image on the same node, listed for the first time only after them.
"""

from __future__ import annotations

import enum
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slimguard.core.model.quantity import format_bytes

MAX_NODES = 64
"""Node records kept per image (the least recently pulled one goes first); the totals count every node."""
MAX_NAMESPACES = 32
"""Namespaces counted apart per image; pulls in any further one are counted in the totals only."""
MAX_SEEN_EVENTS = 32
"""Events remembered per image and node, to fold each once (module docstring)."""
MAX_RECENT_SECONDS = 64
"""Durations of the latest cold pulls kept per image, for the median."""

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_SUCCESS = re.compile(
    rf"^Successfully pulled image {_QUOTED} in (\S+) \((\S+) including waiting\)\. Image size: (\d+) bytes\.$"
)
_PRESENT = re.compile(rf"^Container image {_QUOTED} already present on machine( and can be accessed by the pod)?$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_CONTAINER_FIELD = re.compile(r"^spec\.(?:initContainers|containers|ephemeralContainers)\{(.+)\}$")


class SizeKind(enum.StrEnum):
    """What the kubelet's "Image size" counts: the CRI's answer, compressed on containerd and uncompressed on
    CRI-O (kubernetes/kubernetes#120698), so throughputs are compared only between nodes that count alike."""

    COMPRESSED = "compressed"
    UNCOMPRESSED = "uncompressed"
    UNKNOWN = "unknown"


def size_kind(container_runtime_version: str) -> SizeKind:
    """From a Node's ``status.nodeInfo.containerRuntimeVersion`` (``containerd://1.6.20``, ``cri-o://1.30.2``)."""
    runtime = container_runtime_version.partition("://")[0].lower()
    if runtime == "containerd":
        return SizeKind.COMPRESSED
    if runtime in ("cri-o", "crio"):
        return SizeKind.UNCOMPRESSED
    return SizeKind.UNKNOWN


def go_duration_seconds(text: str) -> float:
    """Go's ``time.Duration.String()`` (``12.3s``, ``1m2.345s``, ``345ms``, ``0s``) in seconds; ValueError if not."""
    if text == "0":
        return 0.0
    position, seconds = 0, 0.0
    for part in _GO_DURATION_PART.finditer(text):
        if part.start() != position:
            break
        seconds += float(part.group(1)) * _GO_UNITS[part.group(2)]
        position = part.end()
    if position != len(text) or not text:
        raise ValueError(f"not a Go duration: {text!r}")
    return seconds


def _unquote(quoted: str) -> str:
    """Go's ``%q`` of an image reference: only a backslash or a quote is ever escaped in one."""
    return re.sub(r"\\(.)", r"\1", quoted)


@dataclass(frozen=True, slots=True)
class PulledMessage:
    """One ``Pulled`` message: a cold pull (its duration, with the wait behind other pulls, and the size the
    runtime reported) or an image already present (a warm start, nothing pulled)."""

    image: str
    cold: bool
    seconds: float = 0.0
    """The pull itself, as the runtime's puller timed it."""
    seconds_with_waiting: float = 0.0
    """From asking to pull until pulled: with serial pulls (the default) the wait behind other images counts here."""
    size: int = 0


def parse_pulled_message(message: str) -> PulledMessage | None:
    """The kubelet's ``Pulled`` messages, exactly as image_manager.go writes them (v1.36)::

        Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.
        Container image %q already present on machine
        Container image %q already present on machine and can be accessed by the pod

    None for anything else (another kubelet's wording, a message cut by the apiserver).
    """
    if (success := _SUCCESS.match(message)) is not None:
        try:
            seconds = go_duration_seconds(success.group(2))
            waiting = go_duration_seconds(success.group(3))
        except ValueError:
            return None
        return PulledMessage(
            _unquote(success.group(1)), True, seconds=seconds, seconds_with_waiting=waiting, size=int(success.group(4))
        )
    if (present := _PRESENT.match(message)) is not None:
        return PulledMessage(_unquote(present.group(1)), False)
    return None


@dataclass(frozen=True, slots=True)
class PullEvent:
    """One kubelet ``Pulled`` Event, as much of it as is kept: who pulled what, where, when, and how it went."""

    uid: str
    count: int
    at: datetime
    namespace: str
    pod: str
    container: str | None
    node: str
    pulled: PulledMessage


def pull_event(body: Mapping[str, Any]) -> PullEvent | None:
    """A core/v1 Event's body → the pull it tells of; None when it is not a kubelet's ``Pulled`` Event on a Pod
    whose message reads as one (see ``parse_pulled_message``)."""
    if body.get("reason") != "Pulled":
        return None
    involved = body.get("involvedObject")
    metadata = body.get("metadata")
    if not isinstance(involved, Mapping) or not isinstance(metadata, Mapping) or involved.get("kind") != "Pod":
        return None
    pulled = parse_pulled_message(str(body.get("message") or ""))
    if pulled is None:
        return None
    source = _mapping_or_empty(body.get("source"))
    node = str(source.get("host") or body.get("reportingInstance") or "")
    at = _event_time(body)
    uid = str(metadata.get("uid") or "")
    if not node or at is None or not uid:
        return None
    try:
        count = max(int(body.get("count") or 1), 1)
    except (TypeError, ValueError):
        count = 1
    container = _CONTAINER_FIELD.match(str(involved.get("fieldPath") or ""))
    return PullEvent(
        uid=uid,
        count=count,
        at=at,
        namespace=str(involved.get("namespace") or metadata.get("namespace") or ""),
        pod=str(involved.get("name") or ""),
        container=container.group(1) if container else None,
        node=node,
        pulled=pulled,
    )


def _event_time(body: Mapping[str, Any]) -> datetime | None:
    """When the Event last happened: ``lastTimestamp`` (the kubelet's recorder), else ``eventTime``, else when
    the object was made."""
    series = _mapping_or_empty(body.get("series"))
    metadata = _mapping_or_empty(body.get("metadata"))
    for value in (
        body.get("lastTimestamp"),
        series.get("lastObservedTime"),
        body.get("eventTime"),
        body.get("firstTimestamp"),
        metadata.get("creationTimestamp"),
    ):
        if value and (at := parse_time(str(value))) is not None:
            return at
    return None


def _mapping_or_empty(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_time(value: str) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``Z`` or an offset, seconds or microseconds); None if it is none."""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Tally:
    """Pulls counted: cold ones (with their seconds and the bytes the runtime reported), and warm ones."""

    cold: int = 0
    warm: int = 0
    seconds: float = 0.0
    bytes: int = 0

    def add(self, pulled: PulledMessage, times: int) -> None:
        if pulled.cold:
            self.cold += times
            self.seconds += pulled.seconds * times
            self.bytes += pulled.size * times
        else:
            self.warm += times


@dataclass(slots=True)
class NodePulls:
    """One image's pulls on one node, and the Events folded (to fold each once)."""

    node: str
    size_kind: SizeKind
    tally: Tally = field(default_factory=Tally)
    last: datetime | None = None
    seen: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    """Event uid → (count folded, its time), the latest ``MAX_SEEN_EVENTS``."""
    forgotten_through: datetime | None = None
    """The time of the newest Event forgotten from ``seen``: one at or before it is taken as folded."""

    def new_occurrences(self, event: PullEvent) -> int:
        """How many of the Event's occurrences are not folded yet."""
        if (known := self.seen.get(event.uid)) is not None:
            return max(event.count - known[0], 0)
        if self.forgotten_through is not None and event.at <= self.forgotten_through:
            return 0
        return event.count

    def remember(self, event: PullEvent) -> None:
        known = self.seen.get(event.uid)
        if known is not None and known[0] >= event.count:
            return  # an older state of an Event already folded (a relist, out of order)
        self.seen[event.uid] = (event.count, event.at)
        if self.last is None or event.at > self.last:
            self.last = event.at
        while len(self.seen) > MAX_SEEN_EVENTS:
            uid = min(self.seen, key=lambda key: self.seen[key][1])
            at = self.seen.pop(uid)[1]
            if self.forgotten_through is None or at > self.forgotten_through:
                self.forgotten_through = at


@dataclass(slots=True)
class ImagePulls:
    """Every pull of one image digest the kubelets reported: totals, per namespace (bounded), per node (bounded)."""

    digest: str
    total: Tally = field(default_factory=Tally)
    max_seconds: float = 0.0
    recent_seconds: list[float] = field(default_factory=list)
    """The latest cold pulls' durations (``MAX_RECENT_SECONDS``), for the median."""
    compressed: Tally = field(default_factory=Tally)
    """Cold pulls on nodes that report compressed sizes (containerd): what the throughput is measured on."""
    namespaces: dict[str, Tally] = field(default_factory=dict)
    nodes: dict[str, NodePulls] = field(default_factory=dict)
    node_count: int = 0
    """Distinct nodes that reported a pull (those no longer in ``nodes`` included)."""
    first: datetime | None = None

    def fold(self, event: PullEvent, kind: SizeKind) -> int:
        """Count the Event's occurrences not folded yet; returns how many were (0: folded before)."""
        record = self.nodes.get(event.node)
        if record is None:
            record = NodePulls(event.node, kind)
            new = event.count if self._still_new(event) else 0
        else:
            new = record.new_occurrences(event)
        if record.node not in self.nodes:
            if not new:
                return 0
            self.nodes[record.node] = record
            self.node_count += 1
            self._bound_nodes()
        if kind is not SizeKind.UNKNOWN:
            record.size_kind = kind
        record.remember(event)
        if not new:
            return 0
        pulled = event.pulled
        self.total.add(pulled, new)
        record.tally.add(pulled, new)
        if event.namespace in self.namespaces or len(self.namespaces) < MAX_NAMESPACES:
            self.namespaces.setdefault(event.namespace, Tally()).add(pulled, new)
        if pulled.cold:
            if record.size_kind is SizeKind.COMPRESSED:
                self.compressed.add(pulled, new)
            self.max_seconds = max(self.max_seconds, pulled.seconds)
            self.recent_seconds.extend([pulled.seconds] * min(new, MAX_RECENT_SECONDS))
            del self.recent_seconds[:-MAX_RECENT_SECONDS]
        if self.first is None or event.at < self.first:
            self.first = event.at
        return new

    def _still_new(self, event: PullEvent) -> bool:
        """A node not recorded: new unless the node was dropped (``_bound_nodes``) after this Event's time."""
        return self.dropped_through is None or event.at > self.dropped_through

    dropped_through: datetime | None = None
    """The latest pull of a node record dropped to keep ``MAX_NODES``: Events of unrecorded nodes before it are
    taken as folded."""

    def _bound_nodes(self) -> None:
        while len(self.nodes) > MAX_NODES:
            oldest = min(self.nodes.values(), key=lambda record: record.last or datetime.min.replace(tzinfo=UTC))
            del self.nodes[oldest.node]
            if oldest.last is not None and (self.dropped_through is None or oldest.last > self.dropped_through):
                self.dropped_through = oldest.last

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(self.recent_seconds) if self.recent_seconds else None

    @property
    def throughput(self) -> float | None:
        """Bytes per second of the cold pulls on nodes that report compressed sizes (what a registry sends);
        None without one (CRI-O's uncompressed sizes would overstate it)."""
        if self.compressed.cold == 0 or self.compressed.seconds < 0.001:  # the kubelet's durations are in ms
            return None
        return self.compressed.bytes / self.compressed.seconds

    def seconds_saved_per_pull(self, saved_bytes: int) -> float | None:
        """What a cold pull of an image ``saved_bytes`` smaller would save, at this image's measured throughput."""
        throughput = self.throughput
        if throughput is None or saved_bytes <= 0:
            return None
        return saved_bytes / throughput


def pull_cost_note(pulls: ImagePulls, saved_bytes: int, cure: str) -> str | None:
    """``pulled cold 6 times on 3 nodes since 2026-12-07T22:10:00Z, 41 s each at the median; <cure> would save
    ~33 s per cold pull (12.1 MB/s measured)``, or None when no cold pull was measured."""
    median = pulls.median_seconds
    if pulls.total.cold == 0 or median is None:
        return None
    times = "once" if pulls.total.cold == 1 else f"{pulls.total.cold} times"
    nodes = "1 node" if pulls.node_count == 1 else f"{pulls.node_count} nodes"
    since = f" since {format_time(pulls.first)}" if pulls.first is not None else ""
    note = f"pulled cold {times} on {nodes}{since}, {_seconds(median)} each at the median"
    saved = pulls.seconds_saved_per_pull(saved_bytes)
    throughput = pulls.throughput
    if saved is not None and throughput is not None:
        note += f"; {cure} would save ~{_seconds(saved)} per cold pull ({format_bytes(int(throughput))}/s measured)"
    return note


def _seconds(seconds: float) -> str:
    """A pull's time as a reader compares it: milliseconds under a second, as the kubelet writes them (a registry
    on the node's own network pulls hundreds of MB in tens of ms, which one decimal of a second showed as 0.0 s)."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


# --- report.pulls ------------------------------------------------------------------------------------------


def _seconds_out(seconds: float) -> float | int:
    """Milliseconds, as the kubelet measures; a whole number as an integer, as the apiserver gives it back (so
    the report written and the report read are the same, and nothing is written again for nothing)."""
    rounded = round(seconds, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def _tally_out(tally: Tally) -> dict[str, Any]:
    return {"cold": tally.cold, "warm": tally.warm, "seconds": _seconds_out(tally.seconds), "bytes": tally.bytes}


def pulls_out(pulls: ImagePulls) -> dict[str, Any]:
    """The ImageReport's ``report.pulls``: bounded by the caps above (a few KB at most)."""
    out: dict[str, Any] = {
        "coldPulls": pulls.total.cold,
        "warmPulls": pulls.total.warm,
        "pullSeconds": {
            "sum": _seconds_out(pulls.total.seconds),
            "max": _seconds_out(pulls.max_seconds),
            "p50": _seconds_out(pulls.median_seconds or 0.0),
        },
        "bytesPulled": pulls.total.bytes,
        "nodes": pulls.node_count,
        "total": _tally_out(pulls.total),
        "compressed": _tally_out(pulls.compressed),
        "recentSeconds": [_seconds_out(seconds) for seconds in pulls.recent_seconds],
        "byNamespace": [{"namespace": name, **_tally_out(pulls.namespaces[name])} for name in sorted(pulls.namespaces)],
        "byNode": [_node_out(pulls.nodes[name]) for name in sorted(pulls.nodes)],
    }
    if (throughput := pulls.throughput) is not None:
        out["throughputBytesPerSecond"] = int(throughput)
    if pulls.first is not None:
        out["since"] = format_time(pulls.first)
    if pulls.dropped_through is not None:
        out["droppedThrough"] = _precise(pulls.dropped_through)
    return out


def _precise(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _node_out(record: NodePulls) -> dict[str, Any]:
    out: dict[str, Any] = {
        "node": record.node,
        "sizes": record.size_kind.value,
        **_tally_out(record.tally),
        "events": [
            {"uid": uid, "count": count, "at": _precise(at)}
            for uid, (count, at) in sorted(record.seen.items(), key=lambda item: (item[1][1], item[0]))
        ],
    }
    if record.last is not None:
        out["lastPull"] = _precise(record.last)
    if record.forgotten_through is not None:
        out["forgottenThrough"] = _precise(record.forgotten_through)
    return out


def pulls_in(digest: str, value: Mapping[str, Any]) -> ImagePulls:
    """``report.pulls`` back; raises KeyError, TypeError or ValueError on a garbled one (the report reader's)."""
    pulls = ImagePulls(digest)
    pulls.total = _tally_in(value["total"])
    pulls.compressed = _tally_in(value.get("compressed") or {})
    pulls.max_seconds = float(value["pullSeconds"]["max"])
    pulls.recent_seconds = [float(seconds) for seconds in value.get("recentSeconds") or ()][-MAX_RECENT_SECONDS:]
    for item in (value.get("byNamespace") or ())[:MAX_NAMESPACES]:
        pulls.namespaces[str(item["namespace"])] = _tally_in(item)
    for item in (value.get("byNode") or ())[:MAX_NODES]:
        record = NodePulls(str(item["node"]), SizeKind(item.get("sizes", SizeKind.UNKNOWN.value)), _tally_in(item))
        record.last = _time_in(item.get("lastPull"))
        record.forgotten_through = _time_in(item.get("forgottenThrough"))
        for seen in (item.get("events") or ())[-MAX_SEEN_EVENTS:]:
            at = _time_in(seen["at"])
            if at is None:
                raise ValueError("pulls: an event without a time")
            record.seen[str(seen["uid"])] = (int(seen["count"]), at)
        pulls.nodes[record.node] = record
    pulls.node_count = max(int(value.get("nodes") or 0), len(pulls.nodes))
    pulls.first = _time_in(value.get("since"))
    pulls.dropped_through = _time_in(value.get("droppedThrough"))
    return pulls


def _tally_in(item: Mapping[str, Any]) -> Tally:
    tally = Tally(
        int(item.get("cold", 0)), int(item.get("warm", 0)), float(item.get("seconds", 0)), int(item.get("bytes", 0))
    )
    if min(tally.cold, tally.warm, tally.seconds, tally.bytes) < 0:
        raise ValueError("pulls: a negative count")
    return tally


def _time_in(value: Any) -> datetime | None:
    if value is None:
        return None
    at = parse_time(str(value))
    if at is None:
        raise ValueError(f"pulls: not a time: {value!r}")
    return at
