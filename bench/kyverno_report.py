"""What kyverno_comparison.py measures and the report it prints (and, with --write-docs, puts into bench/README.md
and docs/comparison.md between their markers): latency and cost per registry mode, clients, kind and variant, and
each tool's verdict per scenario."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.common.measure import percentile
from bench.common.tables import table

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("none", "always-allow", "kyverno", "slimguard")
KINDS = ("Pod", "Deployment")


@dataclass(frozen=True)
class BatchResult:
    registry: str  # direct or slow
    variant: str
    kind: str
    clients: int
    round: int
    seconds: list[float]
    errors: int
    registry_requests: int
    token_requests: int
    cpu: dict[str, float]  # CPU seconds of kyverno and slimguard during the batch


@dataclass
class Results:
    machine: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    started: str = ""
    load: dict[str, str] = field(default_factory=dict)
    batches: list[BatchResult] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_total: dict[str, float] = field(default_factory=dict)
    verdicts: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    command: str = ""
    tag_ttl: float | None = None  # slimguard's --tag-ttl in this run; None: its default (120 s)


def latencytable(results: Results) -> str:
    groups: dict[tuple[str, int, str, str], list[BatchResult]] = {}
    for b in results.batches:
        groups.setdefault((b.registry, b.clients, b.kind, b.variant), []).append(b)
    rows = []
    floors: dict[tuple[str, int, str], tuple[float, float]] = {}
    for (registry, clients, kind, variant), batches in sorted(groups.items(), key=lambda item: _order(item[0])):
        seconds = [s * 1000 for b in batches for s in b.seconds]
        creates = sum(len(b.seconds) + b.errors for b in batches)
        p50, p99 = percentile(seconds, 0.5), percentile(seconds, 0.99)
        if variant == "always-allow":
            floors[(registry, clients, kind)] = (p50, p99)
        rows.append(((registry, clients, kind, variant), batches, creates, p50, p99))
    out = []
    for (registry, clients, kind, variant), batches, creates, p50, p99 in rows:
        floor = floors.get((registry, clients, kind))
        added = (
            f"{p50 - floor[0]:+.1f} / {p99 - floor[1]:+.1f}" if floor and variant in ("kyverno", "slimguard") else ""
        )
        requests = sum(b.registry_requests for b in batches) / max(creates, 1)
        tokens = sum(b.token_requests for b in batches) / max(creates, 1)
        cpu = {name: sum(b.cpu[name] for b in batches) * 1000 / max(creates, 1) for name in ("kyverno", "slimguard")}
        own_cpu = f"{cpu[variant]:.1f}" if variant in cpu else ""
        out.append(
            (
                registry,
                str(clients),
                kind,
                variant,
                str(creates),
                str(sum(b.errors for b in batches)),
                f"{p50:.1f}",
                f"{p99:.1f}",
                added,
                f"{requests:.2f}",
                f"{tokens:.2f}",
                own_cpu,
            )
        )
    header = (
        "Registry",
        "Clients",
        "Kind",
        "Variant",
        "Creates",
        "Errors",
        "p50 ms",
        "p99 ms",
        "Added over always-allow, p50 / p99 ms",
        "Registry requests per create",
        "Token requests per create",
        "Webhook CPU ms per create",
    )
    return table(header, out)


def _order(key: tuple[str, int, str, str]) -> tuple[int, int, int, int]:
    registry, clients, kind, variant = key
    return (0 if registry == "direct" else 1, clients, KINDS.index(kind), VARIANTS.index(variant))


def verdicttable(results: Results) -> str:
    return table(
        ("Scenario", "Kyverno v1.19.1 (`block-large-images`, 200Mi)", "slimguard (`maxCompressedSize: 200Mi`)"),
        [
            (row["scenario"], _cell(row.get("kyverno", "-")), _cell(row.get("slimguard", "-")))
            for row in results.verdicts
        ],
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report(results: Results) -> str:
    header = (
        f"Run {results.started} on {results.machine}; versions {results.versions}; load average (1, 5, 15 min) "
        + "; ".join(f"{k}: {v}" for k, v in results.load.items())
        + ". The machine is shared: absolute figures were taken under load; compare variants within the run."
        + (
            f" slimguard's tag TTL is {results.tag_ttl:g} s here (its default: 120 s): a tag in use is re-resolved"
            f" in the background from {0.75 * results.tag_ttl:g} s on, so tags fall due inside every batch"
            " that lasts longer."
            if results.tag_ttl is not None
            else ""
        )
    )
    parts = [header, "", f"Reproduce: `{results.command}`", ""]
    if results.batches:
        parts += [
            latencytable(results),
            "",
            "Peak RSS (VmHWM): "
            + ", ".join(f"{k} {v:.0f} MB" for k, v in results.peak_rss_mb.items())
            + "; CPU seconds over the whole run: "
            + ", ".join(f"{k} {v:.1f}" for k, v in results.cpu_total.items()),
            "",
        ]
    if results.verdicts:
        parts += [verdicttable(results), ""]
    if results.errors:
        parts += ["Errors:", *[f"- {e}" for e in results.errors]]
    return "\n".join(parts)


LATENCY_MARKERS = ("<!-- kyverno-latency:begin -->", "<!-- kyverno-latency:end -->")
SHORT_TTL_MARKERS = ("<!-- kyverno-latency-short-tag-ttl:begin -->", "<!-- kyverno-latency-short-tag-ttl:end -->")
VERDICT_MARKERS = ("<!-- kyverno-verdicts:begin -->", "<!-- kyverno-verdicts:end -->")


def write_between(path: Path, markers: tuple[str, str], text: str) -> None:
    """Replace what lies between the two markers in `path` (they must be there)."""
    content = path.read_text()
    begin, end = markers
    head, found, rest = content.partition(begin)
    if not found or end not in rest:
        raise SystemExit(f"{path} lacks the markers {begin} ... {end}")
    path.write_text(f"{head}{begin}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}")


def write_docs(results: Results) -> None:
    if results.batches:
        markers = LATENCY_MARKERS if results.tag_ttl is None else SHORT_TTL_MARKERS
        write_between(REPO / "bench" / "README.md", markers, report(replace(results, verdicts=[])))
    if results.verdicts:
        write_between(REPO / "docs" / "comparison.md", VERDICT_MARKERS, report(replace(results, batches=[])))
