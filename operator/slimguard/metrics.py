"""Prometheus metrics: the work slimguard does, and the fleet as the controller sees it.

Two kinds, documented one by one in the README ("Metrics"):
- work done (counters and histograms), counted where the work happens: admission, the registry client, the
  inspector's caches;
- fleet state, computed at scrape time by ``FleetCollector`` from the controller's current verdicts and the
  policies in force, so a workload, namespace or policy that went away leaves no stale series behind.

Every label has a stated bound. Image digests and workload names are never labels; registry hosts come from
image references (user input), so only the first ``REGISTRY_LABELS`` distinct hosts get their own series;
image references are labels only in the opt-in per-image series, capped at the largest N.

Without prometheus-client (``pip install slimguard``, the CLI alone) every metric here is a ``noop_metrics``
stand-in: the code that counts is the same, and nothing is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # checked against the library the controller and the webhook run with
    from prometheus_client import REGISTRY, Counter, Gauge, Histogram
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
else:
    try:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.registry import Collector
    except ModuleNotFoundError:  # the CLI alone (`pip install slimguard`): counts that nobody could scrape
        from slimguard.noop_metrics import REGISTRY, Collector, Counter, Gauge, GaugeMetricFamily, Histogram

from slimguard import __version__
from slimguard.core.evaluation import enforcement
from slimguard.core.evaluation.outcome import DECISIONS as OUTCOME_DECISIONS
from slimguard.core.evaluation.rules.sizes import MAX_COMPRESSED_SIZE
from slimguard.core.evaluation.verdict import FindingKind, ImageContent, ImageSize, Verdict
from slimguard.core.facts.vulnerabilities import SeverityCounts
from slimguard.core.model.kinds import WORKLOAD_KINDS
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.tools import CATEGORY_NAMES

OTHER = "other"


class BoundedValues:
    """At most ``limit`` distinct values of one label; any value first seen after that is reported as ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()  # the webhook and the controller count from one loop, tests from threads

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


def kind_label(kind: str) -> str:
    """The kinds slimguard reviews, and ``other`` for anything else a request might name."""
    return kind if kind in WORKLOAD_KINDS else OTHER


# --- work done: evaluation ---------------------------------------------------------------------------------

EVALUATIONS = Counter("slimguard_evaluations_total", "Workload evaluations by the controller.", ["status"])
EVALUATION_SECONDS = Histogram(
    "slimguard_evaluation_seconds",
    "Time to evaluate one workload in the controller, facts included.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10),
)

# --- work done: admission ----------------------------------------------------------------------------------

DECISIONS = OUTCOME_DECISIONS
"""A review's outcome, mildest first (core.evaluation.outcome decides it); a review with several policies takes the
strictest."""

ADMISSION_REVIEWS = Counter(
    "slimguard_admission_reviews_total",
    "Admission reviews answered, by kind and decision (allowed, warned, unknown: admitted by onUnknown without "
    "facts, denied, failed: admitted unchecked after an internal error).",
    ["kind", "decision"],
)
ADMISSION_POLICY_DECISIONS = Counter(
    "slimguard_admission_policy_decisions_total",
    "Each applicable ImagePolicy's decision in an admission review (a review counts once per policy).",
    ["policy", "mode", "kind", "decision"],
)
# The apiserver's own apiserver_admission_webhook_admission_duration_seconds uses 0.005, 0.025, 0.1, 0.5, 1,
# 2.5, 10 and 25: every one of those is a bucket here, so both sides of the call compare bucket by bucket; the
# others resolve the fast path and the default 3 s timeout.
ADMISSION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 3, 5, 10, 25)
ADMISSION_SECONDS = Histogram(
    "slimguard_admission_decision_seconds",
    "Time from receiving an AdmissionReview to its answer, inside the webhook.",
    buckets=ADMISSION_BUCKETS,
)
ADMISSION_UNKNOWN = Counter(
    "slimguard_admission_unknown_total",
    "Images whose facts could not be had before the admission deadline (onUnknown decided).",
    ["policy"],
)
ADMISSION_FAILURES = Counter(
    "slimguard_admission_failures_total", "Reviews that failed inside slimguard and were admitted unchecked."
)
ADMISSION_TIMEOUT = Gauge(
    "slimguard_admission_timeout_seconds",
    "The webhook configuration's timeoutSeconds this replica answers within (--timeout-seconds).",
)
WEBHOOK_CERTIFICATE_EXPIRY = Gauge(
    "slimguard_webhook_certificate_expiry_timestamp_seconds",
    "When the serving certificate this replica presents stops being valid (Unix time).",
)
WEBHOOK_CERTIFICATE_RELOAD_FAILURES = Counter(
    "slimguard_webhook_certificate_reload_failures_total",
    "Checks that found the certificate files changed but unreadable (a Secret deleted, a rotation half done); "
    "the last good pair is still served.",
)

# --- work done: registry -----------------------------------------------------------------------------------

REGISTRY_LABELS = BoundedValues(32)
REGISTRY_REQUESTS = Counter(
    "slimguard_registry_requests_total",
    "HTTP requests sent to registries (token requests included), by registry host and status class: 2xx, 3xx, "
    "4xx, 429 (rate limited, apart from 4xx), 5xx, error (no answer: unreachable, timeout), refused (by the "
    "address guard, never sent).",
    ["registry", "status"],
)
CACHE_LOOKUPS = Counter(
    "slimguard_cache_lookups_total",
    "Inspector cache lookups: tags (tag to digest), facts (by digest), failures (a recent failure served again), "
    "reports (by digest, in the ImageReports watched).",
    ["cache", "result"],
)
INSPECTION_SECONDS = Histogram(
    "slimguard_inspection_seconds",
    "Time to read one image's facts from its registry: manifests, configs and layer trailers (cache misses only).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INSPECTION_FAILURES = Counter(
    "slimguard_inspection_failures_total",
    "Image inspections that failed, by reason (RegistryUnreachable, RegistryRateLimited, ImageNotFound, ...).",
    ["reason"],
)

# --- work done: the kubelets' pulls, as their Pulled Events tell them (the controller's leader counts them) ------

PULL_LABELS = ["namespace", "image", "pull"]
IMAGE_PULLS = Counter(
    "slimguard_image_pulls_total",
    "Image pulls the kubelets reported in Pulled Events, by namespace and pull: cold (pulled) or warm (already "
    "present on the node); image is empty (absent in Prometheus) unless --image-metrics, then one of the first N "
    "images pulled, or other.",
    PULL_LABELS,
)
IMAGE_PULL_SECONDS = Counter(
    "slimguard_image_pull_seconds_total",
    "Seconds the kubelets spent on cold pulls (the pull itself, without waiting behind other pulls), by namespace.",
    PULL_LABELS,
)
IMAGE_PULLED_BYTES = Counter(
    "slimguard_image_pulled_bytes_total",
    "Bytes of the cold pulls as each node's runtime reports the image size (compressed on containerd, uncompressed "
    "on CRI-O), by namespace.",
    PULL_LABELS,
)


class PullImageLabel:
    """The ``image`` label of the pull counters: empty unless ``--image-metrics N``, then the first N images."""

    def __init__(self, limit: int) -> None:
        self.bounded = BoundedValues(limit) if limit > 0 else None

    def __call__(self, image: str) -> str:
        return "" if self.bounded is None else self.bounded(image)


def image_pulled(namespace: str, image: str, *, cold: bool, times: int, seconds: float, size: int) -> None:
    """Count ``times`` occurrences of one pull (``image`` already labelled by ``PullImageLabel``)."""
    labels = {"namespace": namespace, "image": image, "pull": "cold" if cold else "warm"}
    IMAGE_PULLS.labels(**labels).inc(times)
    if cold:
        IMAGE_PULL_SECONDS.labels(**labels).inc(seconds * times)
        IMAGE_PULLED_BYTES.labels(**labels).inc(size * times)


BUILD_INFO = Gauge("slimguard_build_info", "1 for each running slimguard component.", ["component", "version"])
LEADER = Gauge(
    "slimguard_leader",
    "1 while this controller replica leads (holds the leader Lease, or runs without election) and writes; 0 while "
    "it stands by. Only the leader reports the fleet gauges.",
)
VERSION = __version__


def registry_response(registry: str, status: int | None, *, refused: bool = False) -> None:
    """Count one request to ``registry``: its HTTP status, or None when no answer came."""
    if refused:
        status_class = "refused"
    elif status is None:
        status_class = "error"
    elif status == 429:
        status_class = "429"
    else:
        status_class = f"{status // 100}xx"
    REGISTRY_REQUESTS.labels(registry=REGISTRY_LABELS(registry), status=status_class).inc()


def cache_lookup(cache: str, *, hit: bool) -> None:
    CACHE_LOOKUPS.labels(cache=cache, result="hit" if hit else "miss").inc()


def admission_started(timeout_seconds: float) -> None:
    """The webhook's series exist from its start, at zero: rates and ratios have something to divide."""
    ADMISSION_TIMEOUT.set(timeout_seconds)
    for kind in (*WORKLOAD_KINDS, OTHER):
        for decision in (*DECISIONS, "failed"):
            ADMISSION_REVIEWS.labels(kind=kind, decision=decision)


# --- fleet state, at scrape time ---------------------------------------------------------------------------

SEVERITIES = ("critical", "high", "medium", "low")
SIZE_CLASSES = ((50 << 20, "0-50Mi"), (200 << 20, "50Mi-200Mi"), (500 << 20, "200Mi-500Mi"), (1 << 30, "500Mi-1Gi"))
LARGEST_CLASS = "1Gi+"


def size_class(compressed: int) -> str:
    for limit, name in SIZE_CLASSES:
        if compressed < limit:
            return name
    return LARGEST_CLASS


Counts = dict[tuple[str, ...], float]
"""Label values, in the family's label order, to the value."""


@dataclass(frozen=True)
class FleetSnapshot:
    """What the fleet metrics are computed from: the controller's current verdicts and the policies in force."""

    verdicts: Sequence[Verdict]
    policies: Sequence[ImagePolicy]
    now: datetime
    vulnerabilities: Mapping[tuple[str, str], SeverityCounts] = field(default_factory=dict)
    """(namespace, image) of images in use → what the worst VulnerabilityReport for their digests counts."""
    pull_seconds_saveable: Mapping[tuple[str, ...], float] = field(default_factory=dict)
    """(namespace, policy) → the seconds the cold pulls counted there would have saved with slim images
    (core.evaluation.pull_costs), computed on the event loop with the snapshot."""


def fleet_metrics(snapshot: FleetSnapshot, *, per_image_limit: int = 0) -> list[Metric]:
    """Every fleet family, from one snapshot. Pure: the collector calls it at each scrape; tests call it directly."""
    workloads: Counts = {}
    violations: Counts = {}
    exempted: Counts = {}
    over_limit: dict[tuple[str, str, str], int] = {}  # (namespace, policy, image) -> bytes, one per image
    images: dict[tuple[str, str], ImageSize] = {}  # (namespace, image): an image counts once per namespace
    savings: dict[tuple[str, str, str], int] = {}  # (namespace, policy, image) -> bytes a slimmer base saves
    contents: dict[tuple[str, str], ImageContent] = {}  # (namespace, image), where its layers were read
    decided: dict[tuple[str, str], enforcement.ImageDecision] = {}  # (policy, image): by its facts or by default
    for verdict in snapshot.verdicts:
        key = verdict.workload
        for policy_name in verdict.policies:
            status = verdict.status_for(policy_name).value
            counted = (policy_name, key.namespace, key.kind, status)
            workloads[counted] = workloads.get(counted, 0) + 1
            for decision in enforcement.decisions(verdict, policy_name):
                before = decided.get((policy_name, decision.image))
                if before is None or (decision.by_default and not before.by_default):  # by default anywhere: counted so
                    decided[(policy_name, decision.image)] = decision
        for finding in verdict.findings:
            if finding.kind is not FindingKind.VIOLATION:
                continue
            rule = (finding.policy, key.namespace, finding.rule)
            violations[rule] = violations.get(rule, 0) + 1
            if finding.rule == MAX_COMPRESSED_SIZE.name and finding.excess_bytes is not None:
                image = (key.namespace, finding.policy, finding.image)
                over_limit[image] = max(over_limit.get(image, 0), finding.excess_bytes)
        for finding in verdict.exempted:
            waived = (finding.policy, key.namespace)
            exempted[waived] = exempted.get(waived, 0) + 1
        for hint in verdict.hints:
            hinted = (key.namespace, hint.policy, hint.image)
            savings[hinted] = max(savings.get(hinted, 0), hint.saving)
        for size in verdict.image_sizes:
            seen = images.get((key.namespace, size.image))
            if seen is None or size.compressed > seen.compressed:
                images[(key.namespace, size.image)] = size
        for content in verdict.image_contents:
            read = contents.get((key.namespace, content.image))
            contents[(key.namespace, content.image)] = content if read is None else read.merged(content)

    by_namespace: dict[str, list[ImageSize]] = {}
    for (namespace, _), size in images.items():
        by_namespace.setdefault(namespace, []).append(size)
    classes: Counts = {}
    compressed: Counts = {}
    uncompressed: Counts = {}
    for namespace, sizes in by_namespace.items():
        for size in sizes:
            counted_class = (namespace, size_class(size.compressed))
            classes[counted_class] = classes.get(counted_class, 0) + 1
        compressed[(namespace,)] = sum(size.compressed for size in sizes)
        known = [size.uncompressed for size in sizes if size.uncompressed is not None]
        if known:
            uncompressed[(namespace,)] = sum(known)
    vulnerable: Counts = {}
    for in_use, counts in snapshot.vulnerabilities.items():
        if in_use not in images:
            continue  # not in use (any more): its report says nothing about the fleet
        for severity in SEVERITIES:
            counted_severity = (in_use[0], severity)
            vulnerable[counted_severity] = vulnerable.get(counted_severity, 0) + getattr(counts, severity)
    saved: Counts = {}
    for (namespace, policy_name, _), excess in over_limit.items():
        saved[(namespace, policy_name)] = saved.get((namespace, policy_name), 0) + excess
    base_savings: Counts = {}
    for (namespace, policy_name, _), saving in savings.items():
        base_savings[(namespace, policy_name)] = base_savings.get((namespace, policy_name), 0) + saving
    content_known, packages, wasted, with_tools = _content_counts(contents.items())
    checked: Counts = {}
    by_default: Counts = {}
    for (policy_name, _), decision in decided.items():
        registry = REGISTRY_LABELS(decision.registry)
        checked[(policy_name, registry)] = checked.get((policy_name, registry), 0) + 1
        if decision.unread is not None:
            why = (policy_name, registry, decision.unread.reason or "InspectionFailed")
            by_default[why] = by_default.get(why, 0) + 1
    in_force: Counts = {}
    expiry: Counts = {}
    for policy in snapshot.policies:
        live = 0
        for index, exemption in enumerate(policy.spec.exemptions):
            if exemption.expires is not None and exemption.expires <= snapshot.now:
                continue
            live += 1
            if exemption.expires is not None:
                expiry[(policy.name, str(index))] = exemption.expires.timestamp()
        in_force[(policy.name,)] = live

    families = [
        _gauge(
            "slimguard_workloads",
            "Workloads an ImagePolicy applies to, by namespace, kind and verdict status under that policy.",
            ["policy", "namespace", "kind", "status"],
            workloads,
        ),
        _gauge(
            "slimguard_violations",
            "Violations in the current verdicts (one per container, rule and platform), by policy, namespace, rule.",
            ["policy", "namespace", "rule"],
            violations,
        ),
        _gauge(
            "slimguard_exempted_violations",
            "Violations an exemption waives in the current verdicts, by policy and namespace.",
            ["policy", "namespace"],
            exempted,
        ),
        _gauge(
            "slimguard_images",
            "Distinct images in use whose facts slimguard read, by namespace and compressed size class.",
            ["namespace", "size_class"],
            classes,
        ),
        _gauge(
            "slimguard_image_compressed_bytes",
            "Sum of the compressed sizes (what nodes pull) of the distinct images in use, by namespace.",
            ["namespace"],
            compressed,
        ),
        _gauge(
            "slimguard_image_uncompressed_bytes",
            "Sum of the uncompressed sizes of the distinct images in use whose size is known (a policy with "
            "maxUncompressedSize has the layer trailers read), by namespace.",
            ["namespace"],
            uncompressed,
        ),
        _gauge(
            "slimguard_compressed_bytes_over_limit",
            "Bytes by which the images in use exceed maxCompressedSize, per namespace and policy (each image once): "
            "what slimmer builds would save on every pull.",
            ["namespace", "policy"],
            saved,
        ),
        _gauge(
            "slimguard_slimmer_base_savings_bytes",
            "Bytes per pull that rebuilding the images in use on the slimmer bases slimguard measured would save, "
            "per namespace and policy with slimmerBases (each image once).",
            ["namespace", "policy"],
            base_savings,
        ),
        _gauge(
            "slimguard_image_vulnerabilities",
            "Known vulnerabilities in the distinct images in use, by namespace and severity: for each image the "
            "worst Trivy Operator VulnerabilityReport filed for its digests, all findings counted (read only while a "
            "policy has a vulnerabilities or requireCurrentBase rule).",
            ["namespace", "severity"],
            vulnerable,
        ),
        _gauge(
            "slimguard_images_content_known",
            "Distinct images in use whose layers slimguard read (a content rule had them read, in this namespace "
            "or another), by namespace: what the content sums are over.",
            ["namespace"],
            content_known,
        ),
        _gauge(
            "slimguard_image_os_packages",
            "Sum of the OS packages (dpkg, apk, rpm) installed in the distinct images in use whose layers were "
            "read, by namespace (an image whose package database cannot be counted adds nothing).",
            ["namespace"],
            packages,
        ),
        _gauge(
            "slimguard_image_wasted_bytes",
            "Sum of dive's wasted bytes (every path written in two or more layers, all its copies) of the distinct "
            "images in use whose layers were read, by namespace.",
            ["namespace"],
            wasted,
        ),
        _gauge(
            "slimguard_images_with_tools",
            "Distinct images in use whose layers were read that hold a tool of a built-in forbiddenTools category "
            "(compilers, packageManagers, shells, vcs, downloaders), forbidden or not, by namespace and category.",
            ["namespace", "category"],
            with_tools,
        ),
        _gauge(
            "slimguard_images_checked",
            "Distinct images in use that an ImagePolicy's rules need facts of and that slimguard tried to read, by "
            "policy and registry: what slimguard_images_decided_by_default is a share of.",
            ["policy", "registry"],
            checked,
        ),
        _gauge(
            "slimguard_images_decided_by_default",
            "Distinct images in use whose facts slimguard could not read (registry unreachable, certificate "
            "untrusted, access or address refused, ...), so the policy's onUnknown decides every rule on them, by "
            "policy, registry and reason. Equal to slimguard_images_checked for a registry: nothing from there is "
            "enforced.",
            ["policy", "registry", "reason"],
            by_default,
        ),
        _gauge(
            "slimguard_pull_seconds_saveable",
            "Seconds of cold pulls, by namespace and policy, that slim versions of the images in use would have "
            "saved: for each image with a maxCompressedSize violation or a slimmer-base hint, its cold pulls counted "
            "in the namespace times the bytes a slim version drops, at the throughput its own pulls reached (only "
            "where nodes report compressed sizes). Each image once, with its largest saving.",
            ["namespace", "policy"],
            snapshot.pull_seconds_saveable,
        ),
        _gauge("slimguard_exemptions", "Exemptions in each ImagePolicy that have not expired.", ["policy"], in_force),
        _gauge(
            "slimguard_exemption_expiry_timestamp_seconds",
            "When each unexpired exemption with an expiry stops applying (Unix time); exemption is its index in "
            "spec.exemptions.",
            ["policy", "exemption"],
            expiry,
        ),
    ]
    if per_image_limit > 0:
        largest = sorted(images.items(), key=lambda item: (-item[1].compressed, item[0]))[:per_image_limit]
        families.append(
            _gauge(
                "slimguard_image_bytes",
                f"Compressed size of each image in use, by namespace (opt-in: --image-metrics; the {per_image_limit} "
                "largest only).",
                ["namespace", "image"],
                {key: size.compressed for key, size in largest},
            )
        )
    return families


def _content_counts(
    contents: Iterable[tuple[tuple[str, str], ImageContent]],
) -> tuple[Counts, Counts, Counts, Counts]:
    """Per namespace: images read, packages and wasted bytes summed, images with each category's tools.

    Every category gets a series (0 when no image has it) in each namespace with an image read, so a ratio to
    ``slimguard_images_content_known`` is defined there.
    """
    known: Counts = {}
    packages: Counts = {}
    wasted: Counts = {}
    with_tools: Counts = {}
    for (namespace, _), content in contents:
        known[(namespace,)] = known.get((namespace,), 0) + 1
        if content.packages is not None:
            packages[(namespace,)] = packages.get((namespace,), 0) + content.packages
        wasted[(namespace,)] = wasted.get((namespace,), 0) + content.wasted_bytes
        for category in CATEGORY_NAMES:
            present = 1 if category in content.tool_categories else 0
            with_tools[(namespace, category)] = with_tools.get((namespace, category), 0) + present
    return known, packages, wasted, with_tools


def _gauge(name: str, documentation: str, labels: list[str], values: Mapping[tuple[str, ...], float]) -> Metric:
    """One gauge family, its series in a stable order (label values in the order of ``labels``)."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


class FleetCollector(Collector):
    """The fleet families, computed at scrape time from ``source``: never stale."""

    def __init__(self, source: Callable[[], FleetSnapshot], *, per_image_limit: int = 0) -> None:
        self.source = source
        self.per_image_limit = per_image_limit

    def collect(self) -> Iterable[Metric]:
        return fleet_metrics(self.source(), per_image_limit=self.per_image_limit)

    def describe(self) -> Iterable[Metric]:
        # Registration asks for the names without calling the source (the controller may not be running yet).
        return []


def register_fleet(source: Callable[[], FleetSnapshot], *, per_image_limit: int = 0) -> FleetCollector:
    collector = FleetCollector(source, per_image_limit=per_image_limit)
    REGISTRY.register(collector)
    return collector
