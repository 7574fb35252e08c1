"""What audit_scale.py reads off the cluster and the machine while it runs: the apiserver's request counters,
which Deployments carry a verdict (one metadata-only watch), and the CPU and memory of processes (/proc)."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common.apiserver import METADATA_ONLY, Apiserver
from bench.common.measure import cpu_seconds, memory_kib
from slimguard_testbed import TestbedError

STATUS = "slimguard.dev/status"
OWN_PREFIX = "slimguard.dev/"
NAMESPACE_PREFIX = "bench-"
METADATA_ONLY_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

# --- the apiserver's own counters -------------------------------------------------------------------------

_SAMPLE = re.compile(
    r"^(?P<name>apiserver_request_(?:total|duration_seconds_sum))\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class RequestCounts:
    """The apiserver's own request counters at one moment: `apiserver_request_total` and the latency sums."""

    series: tuple[tuple[str, dict[str, str], float], ...]

    @classmethod
    def parse(cls, text: str) -> RequestCounts:
        found = []
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match:
                found.append((match["name"], dict(_LABEL.findall(match["labels"])), float(match["value"])))
        return cls(tuple(found))

    def _sum(self, metric: str, labels: dict[str, str]) -> float:
        return sum(
            value
            for name, have, value in self.series
            if name == metric and all(have.get(k) == v for k, v in labels.items())
        )

    def count(self, **labels: str) -> int:
        return int(self._sum("apiserver_request_total", labels))

    def by_code(self, **labels: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for name, have, value in self.series:
            if name == "apiserver_request_total" and all(have.get(k) == v for k, v in labels.items()):
                found[have.get("code", "?")] += int(value)
        return found

    def seconds(self, **labels: str) -> float:
        """Time the apiserver spent serving the matching requests (the latency histogram's sum)."""
        return self._sum("apiserver_request_duration_seconds_sum", labels)


def request_counts(api: Apiserver) -> RequestCounts:
    """The apiserver's counters now, from its /metrics (read as admin)."""
    response = api.http.get("/metrics")
    response.raise_for_status()
    return RequestCounts.parse(response.text)


def bench_metadata(api: Apiserver, plural: str = "deployments") -> list[dict[str, Any]]:
    """The metadata of every bench object of a kind: one metadata-only LIST across namespaces."""
    response = api.http.get(f"/apis/apps/v1/{plural}", headers={"Accept": METADATA_ONLY})
    response.raise_for_status()
    return [
        item["metadata"]
        for item in response.json()["items"]
        if item["metadata"]["namespace"].startswith(NAMESPACE_PREFIX)
    ]


# --- verdicts -----------------------------------------------------------------------------------------------


def verdict_of(metadata: dict[str, Any]) -> str | None:
    """slimguard's verdict on an object: its status label, or the annotation builds before the label wrote."""
    return (metadata.get("labels") or {}).get(STATUS) or (metadata.get("annotations") or {}).get(STATUS)


def carries_own_annotations(metadata: dict[str, Any]) -> bool:
    return any(key.startswith(OWN_PREFIX) for key in metadata.get("annotations") or {})


class StatusWatch:
    """Which Deployments carry a verdict, kept by one metadata-only WATCH on a thread of its own.

    A LIST of 10,000 Deployments every half second cost the apiserver more CPU than the controller it was
    measuring (88 LISTs: 60 s of apiserver request time, on the two cores the audit needs); a watch costs it one
    encoding per change, and the main loop reads the count without asking the apiserver anything.
    """

    def __init__(self, api: Apiserver) -> None:
        self.http = httpx.Client(base_url=api.server, verify=api.context, timeout=httpx.Timeout(60.0, read=None))
        self.annotated: set[tuple[str, str]] = set()
        self.events = 0
        self.cpu_seconds = 0.0
        self.error: BaseException | None = None
        self._stop = False
        listed = self.http.get("/apis/apps/v1/deployments", headers={"Accept": METADATA_ONLY})
        listed.raise_for_status()
        decoded = listed.json()
        for item in decoded["items"]:
            self._note(item["metadata"])
        self._version = str(decoded["metadata"]["resourceVersion"])
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)
        self._thread.start()

    def _note(self, metadata: dict[str, Any], deleted: bool = False) -> None:
        key = (str(metadata.get("namespace")), str(metadata.get("name")))
        if not deleted and verdict_of(metadata) is not None:
            self.annotated.add(key)
        else:
            self.annotated.discard(key)

    def _run(self) -> None:
        params = {"watch": "true", "resourceVersion": self._version, "allowWatchBookmarks": "true"}
        try:
            with self.http.stream(
                "GET", "/apis/apps/v1/deployments", params=params, headers={"Accept": METADATA_ONLY_WATCH}
            ) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if not line:
                        continue
                    started = time.thread_time()
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        raise TestbedError(f"the status watch failed: {event['object']}")
                    if event["type"] != "BOOKMARK":
                        self.events += 1
                        self._note(event["object"]["metadata"], deleted=event["type"] == "DELETED")
                    self.cpu_seconds += time.thread_time() - started
        except BaseException as error:  # read by the main loop: the measurement is void
            if not self._stop:
                self.error = error

    def count(self) -> int:
        if self.error is not None:
            raise TestbedError(f"the status watch stopped: {self.error!r}")
        return len(self.annotated)

    def close(self) -> None:
        self._stop = True
        self.http.close()


# --- processes and the machine -------------------------------------------------------------------------------


class ProcessProbe:
    """CPU seconds and memory of one process (all its threads), read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_kib = 0

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM): now and the peak the kernel recorded since the process started."""
        values = memory_kib(self.pid)
        self.peak_rss_kib = max(self.peak_rss_kib, values.get("VmHWM", 0))
        return values.get("VmRSS", 0), values.get("VmHWM", 0)

    def wait_quiet(
        self, *, timeout: float, window: float = 2.0, busy: float = 0.05, check: Callable[[], None] | None = None
    ) -> float:
        """Wait until the process used under ``busy`` of a core over ``window`` seconds; returns the time taken."""
        start = time.monotonic()
        samples: list[tuple[float, float]] = []
        while time.monotonic() - start < timeout:
            if check is not None:
                check()
            now = time.monotonic()
            samples.append((now, self.cpu_seconds()))
            old = [s for s in samples if now - s[0] >= window]
            if old:
                then, cpu_then = old[-1]
                if (samples[-1][1] - cpu_then) / (now - then) < busy:
                    return now - start
            time.sleep(0.25)
        raise TestbedError(f"the controller was still busy after {timeout:.0f}s")


_TICK = os.sysconf("SC_CLK_TCK")
_PROCESS_NAMES = ("kube-apiserver", "kube-controller-manager", "etcd", "docker-registry", "slimguard")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far: the whole machine (both cores, everyone's) and each of this run's processes."""

    machine_busy: float
    processes: dict[str, float]
    stolen: float = 0.0  # time the hypervisor gave this VM's cores to others: on a shared host, a slower machine

    @classmethod
    def take(cls) -> CpuSnapshot:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        stolen = values[7]
        busy = sum(values) - values[3] - values[4] - stolen  # all but idle, iowait and steal
        stats: dict[int, tuple[int, str, float]] = {}  # pid -> (parent, name, cpu seconds)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            # Three words: `python -m slimguard.cli.main` (another build, --controller-command) is slimguard too.
            head = " ".join(Path(arg.decode(errors="replace")).name for arg in argv[:3])
            name = next((known for known in _PROCESS_NAMES if known in head), head)
            stats[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / _TICK)
        # This run's processes are this process's descendants (the test bed starts them all).
        ours: set[int] = set()
        frontier = {os.getpid()}
        while frontier:
            frontier = {pid for pid, (parent, _, _) in stats.items() if parent in frontier} - ours
            ours |= frontier
        processes: dict[str, float] = {}
        for pid in ours:
            _, name, seconds = stats[pid]
            processes[name] = processes.get(name, 0.0) + seconds
        own = os.times()
        processes["benchmark (poller, token issuer)"] = own.user + own.system
        return cls(busy / _TICK, processes, stolen / _TICK)

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        used = {name: round(seconds - before.processes.get(name, 0.0), 1) for name, seconds in self.processes.items()}
        used["machine, all processes"] = round(self.machine_busy - before.machine_busy, 1)
        used["machine, other sessions"] = round(
            used["machine, all processes"]
            - sum(value for name, value in used.items() if not name.startswith("machine")),
            1,
        )
        used["machine, stolen by the hypervisor"] = round(self.stolen - before.stolen, 1)
        return used
