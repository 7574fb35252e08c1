"""slimguard's monitoring artefacts: `python scripts/monitoring.py` (make generate) writes what the chart and
kustomize ship; `--check` (make verify-generated) exits 1, naming each stale file, and writes nothing.

- The Grafana dashboard, written here as data (plain Python, no dependency: every panel is a title, a
  description, a visualisation and its PromQL), to deploy/helm/slimguard/files/dashboards/ and, byte for byte,
  deploy/kustomize/components/monitoring/dashboards/.
- kustomize's PrometheusRule, wrapping the chart's files/alerts.yaml (the one source of the alert rules).

The suite checks the files are what this script writes, strict-checks the dashboard with grafana-foundation-sdk's
Go validator, and runs every panel query and alert expression against a real Prometheus scraping a running
slimguard (tests/e2e/test_observability.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHART_FILES = REPO / "deploy" / "helm" / "slimguard" / "files"
COMPONENT = REPO / "deploy" / "kustomize" / "components" / "monitoring"
DASHBOARDS = (CHART_FILES / "dashboards" / "slimguard.json", COMPONENT / "dashboards" / "slimguard.json")
ALERTS = CHART_FILES / "alerts.yaml"
PROMETHEUS_RULE = COMPONENT / "prometheusrule.yaml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
POLICY = 'policy=~"$policy"'
FLEET = f"{POLICY}, {NS}"
RATE = "$__rate_interval"

_ids = iter(range(1, 1000))


def _target(expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "range": not instant,
        "instant": instant,
    }
    return target


def _field_config(
    unit: str,
    *,
    thresholds: list[tuple[float | None, str]] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    **custom: Any,
) -> Any:
    steps = [{"value": value, "color": color} for value, color in (thresholds or [(None, "green")])]
    return {
        "defaults": {
            "unit": unit,
            "thresholds": {"mode": "absolute", "steps": steps},
            "color": {"mode": "thresholds" if thresholds else "palette-classic"},
            **({"custom": custom} if custom else {}),
        },
        "overrides": overrides or [],
    }


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    grid: tuple[int, int, int, int],
    **extra: Any,
) -> dict[str, Any]:
    w, h, x, y = grid
    return {
        "type": kind,
        "id": next(_ids),
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": targets,
        **extra,
    }


def _reduce(calc: str = "lastNotNull") -> dict[str, Any]:
    return {"values": False, "calcs": [calc], "fields": ""}


def stat(
    title: str,
    description: str,
    expr: str,
    grid: tuple[int, int, int, int],
    *,
    unit: str = "short",
    thresholds: list[tuple[float | None, str]] | None = None,
) -> dict[str, Any]:
    return _panel(
        "stat",
        title,
        description,
        [_target(expr)],
        grid,
        fieldConfig=_field_config(unit, thresholds=thresholds),
        options={
            "graphMode": "area",
            "colorMode": "value",
            "justifyMode": "auto",
            "textMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
            "percentChangeColorMode": "standard",
            "orientation": "auto",
            "reduceOptions": _reduce(),
        },
    )


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    grid: tuple[int, int, int, int],
    *,
    unit: str = "short",
    stack: bool = False,
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return _panel(
        "timeseries",
        title,
        description,
        targets,
        grid,
        fieldConfig=_field_config(unit, overrides=overrides, **custom),
        options={
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def bargauge(
    title: str, description: str, target: dict[str, Any], grid: tuple[int, int, int, int], *, unit: str = "short"
) -> dict[str, Any]:
    return _panel(
        "bargauge",
        title,
        description,
        [target],
        grid,
        fieldConfig=_field_config(unit),
        options={
            "displayMode": "gradient",
            "valueMode": "color",
            "namePlacement": "auto",
            "showUnfilled": True,
            "sizing": "auto",
            "minVizWidth": 8,
            "minVizHeight": 16,
            "maxVizHeight": 300,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False, "calcs": []},
            "reduceOptions": _reduce(),
            "orientation": "horizontal",
        },
    )


def table(
    title: str, description: str, target: dict[str, Any], grid: tuple[int, int, int, int], *, unit: str = "short"
) -> dict[str, Any]:
    return _panel(
        "table",
        title,
        description,
        [target],
        grid,
        fieldConfig=_field_config(unit),
        options={"frameIndex": 0, "showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        transformations=[{"id": "labelsToFields", "options": {}}],
    )


def row(title: str, y: int) -> dict[str, Any]:
    return {
        "type": "row",
        "id": next(_ids),
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "panels": [],
    }


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values", "qryType": 1},
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def panels() -> list[dict[str, Any]]:
    fleet_bytes = f"sum by (namespace) (slimguard_image_compressed_bytes{{{NS}}})"
    return [
        row("Fleet", 0),
        stat(
            "Workloads checked",
            "Workloads an ImagePolicy applies to (a workload under two policies counts twice).",
            f"sum(slimguard_workloads{{{FLEET}}})",
            (4, 4, 0, 1),
        ),
        stat(
            "Noncompliant",
            "Workloads that violate a policy they are under.",
            f'sum(slimguard_workloads{{{FLEET}, status="noncompliant"}}) or vector(0)',
            (4, 4, 4, 1),
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat(
            "Error verdicts",
            "Workloads slimguard could not check (an image or a named base unreadable).",
            f'sum(slimguard_workloads{{{FLEET}, status="error"}}) or vector(0)',
            (4, 4, 8, 1),
            thresholds=[(None, "green"), (1, "orange")],
        ),
        stat(
            "Bytes to save",
            "How far the images in use exceed maxCompressedSize, each image once: what slimmer "
            "builds would save on every pull.",
            f"sum(slimguard_compressed_bytes_over_limit{{{FLEET}}}) or vector(0)",
            (4, 4, 12, 1),
            unit="bytes",
        ),
        stat(
            "Fleet size",
            "Compressed size of the distinct images in use (per namespace, summed).",
            f"sum(slimguard_image_compressed_bytes{{{NS}}})",
            (4, 4, 16, 1),
            unit="bytes",
        ),
        stat(
            "Exemptions in force",
            "Unexpired exemptions declared in the selected policies.",
            f"sum(slimguard_exemptions{{{POLICY}}}) or vector(0)",
            (4, 4, 20, 1),
        ),
        timeseries(
            "Fleet size over time",
            "Compressed bytes of the distinct images in use, by namespace: the line to push down.",
            [_target(fleet_bytes, "{{namespace}}")],
            (12, 8, 0, 5),
            unit="bytes",
            stack=True,
        ),
        bargauge(
            "Image size distribution",
            "Distinct images in use by compressed size class.",
            _target(f"sum by (size_class) (slimguard_images{{{NS}}})", "{{size_class}}", instant=True),
            (6, 8, 12, 5),
        ),
        table(
            "Heaviest images",
            "The largest images in use (needs the controller's --image-metrics N; empty otherwise).",
            _target(f"topk(10, slimguard_image_bytes{{{NS}}})", "{{image}}", instant=True),
            (6, 8, 18, 5),
            unit="bytes",
        ),
        timeseries(
            "Noncompliant workloads by namespace",
            "Workloads violating a selected policy, by namespace.",
            [_target(f'sum by (namespace) (slimguard_workloads{{{FLEET}, status="noncompliant"}})', "{{namespace}}")],
            (8, 8, 0, 13),
            stack=True,
        ),
        bargauge(
            "Violations by rule",
            "Violations in the current verdicts, by the rule broken.",
            _target(f"sum by (rule) (slimguard_violations{{{FLEET}}})", "{{rule}}", instant=True),
            (8, 8, 8, 13),
        ),
        timeseries(
            "Workloads by status",
            "compliant, noncompliant, pending and error, over time.",
            [_target(f"sum by (status) (slimguard_workloads{{{FLEET}}})", "{{status}}")],
            (8, 8, 16, 13),
            stack=True,
        ),
        table(
            "Exemptions expiring",
            "Seconds until each unexpired exemption with an expiry stops applying "
            "(exemption: its index in spec.exemptions).",
            _target(f"slimguard_exemption_expiry_timestamp_seconds{{{POLICY}}} - time()", "{{policy}}", instant=True),
            (12, 6, 0, 21),
            unit="s",
        ),
        bargauge(
            "Exempted violations by namespace",
            "Violations waived by an exemption, by namespace.",
            _target(f"sum by (namespace) (slimguard_exempted_violations{{{FLEET}}})", "{{namespace}}", instant=True),
            (12, 6, 12, 21),
        ),
        timeseries(
            "Vulnerabilities by severity",
            "Known vulnerabilities in the distinct images in use, from Trivy Operator's VulnerabilityReports "
            "(each image's worst report for its digests, all findings counted; images without a report add "
            "nothing). The reports are read only while a policy has a vulnerabilities or requireCurrentBase rule.",
            [_target(f"sum by (severity) (slimguard_image_vulnerabilities{{{NS}}})", "{{severity}}")],
            (12, 8, 0, 27),
            stack=True,
        ),
        bargauge(
            "Critical and high vulnerabilities by namespace",
            "Critical and high findings in the images each namespace runs: where patched or smaller bases help most.",
            _target(
                f'sum by (namespace) (slimguard_image_vulnerabilities{{{NS}, severity=~"critical|high"}})',
                "{{namespace}}",
                instant=True,
            ),
            (12, 8, 12, 27),
        ),
        row("Admission", 35),
        timeseries(
            "Admission decisions",
            "Each selected policy's decision per review: denied (Enforce), warned "
            "(Warn), unknown (onUnknown decided without facts), allowed.",
            [
                _target(
                    f"sum by (decision) (rate(slimguard_admission_policy_decisions_total{{{POLICY}}}[{RATE}]))",
                    "{{decision}}",
                )
            ],
            (8, 8, 0, 36),
            unit="reqps",
            stack=True,
        ),
        timeseries(
            "Admission latency",
            "p50 and p99 of slimguard's answer, against the webhook timeout: past it "
            "the apiserver gives up (and, failurePolicy Ignore, admits unchecked).",
            [
                _target(
                    f"histogram_quantile(0.5, sum by (le) (rate(slimguard_admission_decision_seconds_bucket[{RATE}])))",
                    "p50",
                    "A",
                ),
                _target(
                    "histogram_quantile(0.99, sum by (le) (rate("
                    f"slimguard_admission_decision_seconds_bucket[{RATE}])))",
                    "p99",
                    "B",
                ),
                _target("max(slimguard_admission_timeout_seconds)", "timeout", "C"),
            ],
            (8, 8, 8, 36),
            unit="s",
        ),
        timeseries(
            "onUnknown decisions",
            "Images whose facts could not be had before the admission deadline, by "
            "policy: each was decided by the policy's onUnknown.",
            [_target(f"sum by (policy) (rate(slimguard_admission_unknown_total{{{POLICY}}}[{RATE}]))", "{{policy}}")],
            (8, 8, 16, 36),
            unit="reqps",
        ),
        row("Registries and caches", 44),
        timeseries(
            "Registry requests",
            "Requests slimguard sends, by registry and status class (429 apart; error: no answer).",
            [
                _target(
                    f"sum by (registry, status) (rate(slimguard_registry_requests_total[{RATE}]))",
                    "{{registry}} {{status}}",
                )
            ],
            (8, 8, 0, 45),
            unit="reqps",
        ),
        timeseries(
            "Registry errors and 429s",
            "5xx, no answer and rate limiting, by registry.",
            [
                _target(
                    'sum by (registry, status) (rate(slimguard_registry_requests_total{status=~"5xx|error|429"}'
                    f"[{RATE}]))",
                    "{{registry}} {{status}}",
                )
            ],
            (8, 8, 8, 45),
            unit="reqps",
        ),
        timeseries(
            "Cache hit ratio",
            "Share of inspector cache lookups answered from memory, by cache (tags: tag to "
            "digest; facts: by digest; failures: a recent failure served again).",
            [
                _target(
                    f'sum by (cache) (rate(slimguard_cache_lookups_total{{result="hit"}}[{RATE}])) / sum by '
                    f"(cache) (rate(slimguard_cache_lookups_total[{RATE}]))",
                    "{{cache}}",
                )
            ],
            (8, 8, 16, 45),
            unit="percentunit",
        ),
        timeseries(
            "Inspection failures by reason",
            "Image inspections that failed, by reason.",
            [_target(f"sum by (reason) (rate(slimguard_inspection_failures_total[{RATE}]))", "{{reason}}")],
            (12, 8, 0, 53),
            unit="reqps",
        ),
        timeseries(
            "Inspection time",
            "p50 and p99 of reading one image's facts from its registry (cache misses).",
            [
                _target(
                    f"histogram_quantile(0.5, sum by (le) (rate(slimguard_inspection_seconds_bucket[{RATE}])))",
                    "p50",
                    "A",
                ),
                _target(
                    f"histogram_quantile(0.99, sum by (le) (rate(slimguard_inspection_seconds_bucket[{RATE}])))",
                    "p99",
                    "B",
                ),
            ],
            (12, 8, 12, 53),
            unit="s",
        ),
        timeseries(
            "Share of images decided by onUnknown",
            "Per policy and registry: the share of the images in use that slimguard could not read, so the "
            "policy's onUnknown decided them rather than its rules. 1 is a registry where nothing is enforced "
            "(a CA bundle missing, private registries refused, credentials missing, the registry down): the "
            "alert SlimguardNothingEnforced and the policy's Enforcing condition say so.",
            [
                _target(
                    f"sum by (policy, registry) (slimguard_images_decided_by_default{{{POLICY}}}) / sum by (policy, "
                    f"registry) (slimguard_images_checked{{{POLICY}}})",
                    "{{policy}} {{registry}}",
                )
            ],
            (12, 8, 0, 61),
            unit="percentunit",
        ),
        bargauge(
            "Images decided by onUnknown, by registry and reason",
            "Distinct images in use whose facts could not be read (RegistryUntrusted: its CA is missing; "
            "RegistryRefused: an internal address; RegistryUnauthorized: no pull secret; CredentialProviderFailed: "
            "a kubelet credential provider failed; ...), by registry and reason.",
            _target(
                f"sum by (registry, reason) (slimguard_images_decided_by_default{{{POLICY}}})",
                "{{registry}} {{reason}}",
                instant=True,
            ),
            (12, 8, 12, 61),
        ),
        row("Image content and bases", 69),
        timeseries(
            "OS packages and wasted bytes by namespace",
            "For the distinct images in use whose layers were read (a content rule had them read): OS packages "
            "installed (left axis) and dive's wasted bytes, paths written in two or more layers (right axis), "
            "summed per namespace. Divide by "
            "slimguard_images_content_known for a per-image average.",
            [
                _target(f"sum by (namespace) (slimguard_image_os_packages{{{NS}}})", "{{namespace}} packages", "A"),
                _target(f"sum by (namespace) (slimguard_image_wasted_bytes{{{NS}}})", "{{namespace}} wasted", "B"),
            ],
            (8, 8, 0, 70),
            overrides=[
                {
                    "matcher": {"id": "byFrameRefID", "options": "B"},
                    "properties": [
                        {"id": "unit", "value": "bytes"},
                        {"id": "custom.axisPlacement", "value": "right"},
                    ],
                }
            ],
        ),
        bargauge(
            "Images with build tools in production",
            "Distinct images in use whose layers were read that hold a tool of each built-in forbiddenTools "
            "category (compilers, package managers, shells, VCS clients, downloaders), forbidden or not: what a "
            "multi-stage build would leave behind.",
            _target(f"sum by (category) (slimguard_images_with_tools{{{NS}}})", "{{category}}", instant=True),
            (8, 8, 8, 70),
        ),
        bargauge(
            "Bytes a slimmer base would save",
            "Per namespace and policy with slimmerBases: bytes per pull that rebuilding the images in use on the "
            "slimmer bases slimguard measured would save (each image once).",
            _target(
                f"sum by (namespace, policy) (slimguard_slimmer_base_savings_bytes{{{FLEET}}})",
                "{{namespace}} {{policy}}",
                instant=True,
            ),
            (8, 8, 16, 70),
            unit="bytes",
        ),
        row("What bloat costs", 78),
        timeseries(
            "Pull time by namespace",
            "Seconds per second the kubelets spent on cold pulls, by namespace, from their Pulled Events (the pull "
            "itself, without waiting behind other pulls): how much of every rollout and scale-up is spent moving "
            "bytes.",
            [
                _target(
                    f'sum by (namespace) (rate(slimguard_image_pull_seconds_total{{{NS}, pull="cold"}}[{RATE}]))',
                    "{{namespace}}",
                )
            ],
            (8, 8, 0, 79),
            unit="s",
            stack=True,
        ),
        table(
            "Heaviest pulls",
            "Seconds per cold pull, by namespace and (with the controller's --image-metrics N) image, since the "
            "leading controller started counting: the slowest first.",
            _target(
                f'topk(10, sum by (namespace, image) (slimguard_image_pull_seconds_total{{{NS}, pull="cold"}}) / '
                f'sum by (namespace, image) (slimguard_image_pulls_total{{{NS}, pull="cold"}}))',
                "{{namespace}} {{image}}",
                instant=True,
            ),
            (8, 8, 8, 79),
            unit="s",
        ),
        bargauge(
            "Seconds slim images would have saved",
            "Per namespace and policy: the cold pulls counted there of each image with a maxCompressedSize "
            "violation or a slimmer-base hint, times the bytes a slim version drops, at the throughput the image's "
            "own pulls reached (each image once).",
            _target(
                f"sum by (namespace, policy) (slimguard_pull_seconds_saveable{{{FLEET}}})",
                "{{namespace}} {{policy}}",
                instant=True,
            ),
            (8, 8, 16, 79),
            unit="s",
        ),
    ]


def dashboard() -> dict[str, Any]:
    return {
        "uid": "slimguard-fleet",
        "title": "slimguard: image fleet",
        "description": "How big the images in use are, what breaks the ImagePolicies, and how admission and the "
        "registries behave. Metrics: README, Metrics.",
        "tags": ["slimguard", "kubernetes", "images"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "schemaVersion": 42,
        "version": 1,
        "templating": {
            "list": [
                {
                    "type": "datasource",
                    "name": "datasource",
                    "label": "Data source",
                    "query": "prometheus",
                    "current": {"selected": False, "text": "default", "value": "default"},
                    "refresh": 1,
                },
                _variable("namespace", "Namespace", "label_values(slimguard_workloads, namespace)"),
                _variable("policy", "ImagePolicy", "label_values(slimguard_workloads, policy)"),
            ]
        },
        "annotations": {"list": []},
        "panels": panels(),
    }


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def render_prometheus_rule() -> str:
    spec = "".join(f"  {line}" if line.strip() else line for line in ALERTS.read_text().splitlines(keepends=True))
    return (
        "# Written by scripts/monitoring.py from deploy/helm/slimguard/files/alerts.yaml: edit that, then run it.\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: slimguard\n"
        "  namespace: slimguard\n"
        "  labels: {app.kubernetes.io/name: slimguard, app.kubernetes.io/instance: slimguard}\n"
        f"spec:\n{spec}"
    )


def outputs() -> dict[Path, str]:
    """Every file this script writes, with its content."""
    dashboard_text = render_dashboard()
    return {**dict.fromkeys(DASHBOARDS, dashboard_text), PROMETHEUS_RULE: render_prometheus_rule()}


def main(argv: list[str] | None = None) -> int:
    if "--check" in (sys.argv[1:] if argv is None else argv):  # make verify-generated: change nothing
        stale = [path for path, text in outputs().items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path.relative_to(REPO)} is stale: run make generate", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
