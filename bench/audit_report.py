"""What audit_scale.py measures, its targets, and the table it prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.common.tables import met, table

TARGET_RSS_MB = 150.0


def target_seconds(deployments: int) -> float:
    """The issue's targets: 30 s for the 2,000 of the first benchmark, 60 s for 10,000 (and beyond)."""
    return 30.0 if deployments <= 2000 else 60.0


MIN_REQUESTS_PER_IMAGE = 3  # HEAD (resolve the tag), GET manifest, GET config blob


@dataclass
class Results:
    deployments: int
    namespaces: int
    images: int
    audit_interval: float
    setup_seconds: dict[str, float] = field(default_factory=dict)
    list_seconds: float = 0.0
    list_cpu_seconds: float = 0.0
    audit_seconds: float | None = None
    first_verdict_seconds: float | None = None
    half_seconds: float | None = None
    annotated: int = 0
    watch_events: int = 0  # what the benchmark's status watch decoded while the audit ran
    watch_cpu_seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)  # violations by rule, over all Deployments
    audit_cpu_seconds: float = 0.0
    audit_cpu_by_process: dict[str, float] = field(default_factory=dict)
    audit_load_average: float = 0.0
    patch_server_seconds_mean: float = 0.0
    registry_requests: int = 0
    registry_by_status: dict[str, int] = field(default_factory=dict)
    registry_other: int = 0  # /v2/ pings and the like, no repository
    token_requests: int = 0
    per_image_total_max: int = 0
    per_image_total_mean: float = 0.0
    per_image_ok_max: int = 0
    per_image_ok_mean: float = 0.0
    per_image_worst: dict[str, int] = field(default_factory=dict)
    per_image_ok_breakdown: dict[str, int] = field(default_factory=dict)
    base_candidate_requests: dict[str, int] = field(default_factory=dict)
    patches_deployments: int = 0
    events_created: int = 0
    policy_status_patches: int = 0
    replicaset_updates: int = 0
    replicaset_update_codes: dict[str, int] = field(default_factory=dict)
    replicasets_annotated: int = 0  # the Deployment controller copies a Deployment's annotations to its ReplicaSet
    deployments_annotated: int = 0  # Deployments carrying any slimguard.dev/ annotation after the audit
    write_server_seconds: float = 0.0  # apiserver request time of the audit's writes: PATCH deployments, PUT rs
    settled_seconds: float = 0.0  # policy created -> the controller-manager's last ReplicaSet update it caused
    cluster_cpu_until_settled: dict[str, float] = field(default_factory=dict)  # CPU by process over that time
    serviceaccount_reads: int = 0
    reaudit_wait_seconds: float = 0.0
    reaudits_seen: int = 0
    reaudit_patches_deployments: int = 0
    reaudit_events: int = 0
    reaudit_policy_status_patches: int = 0
    reaudit_registry_requests: int = 0
    reaudit_registry_breakdown: dict[str, int] = field(default_factory=dict)
    reaudit_serviceaccount_reads: int = 0
    reaudit_cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    rss_at_start_mb: float = 0.0
    rss_after_list_mb: float = 0.0
    rss_after_audit_mb: float = 0.0
    total_cpu_seconds: float = 0.0
    operator_errors: list[str] = field(default_factory=list)
    operator_log_lines: int = 0
    operator_log_bytes: int = 0
    operator_exit_code: int | None = None
    restart_load_average: float = 0.0
    restart_list_seconds: float = 0.0  # start -> every watched resource LISTed
    restart_first_seconds: float | None = None  # start -> the first workload re-evaluated
    restart_last_seconds: float | None = None  # start -> every workload re-evaluated
    restart_evaluations: int = 0
    restart_registry_requests: int = 0
    restart_registry_breakdown: dict[str, int] = field(default_factory=dict)
    restart_heads_per_tag_max: int = 0
    restart_token_requests: int = 0
    restart_patches_deployments: int = 0
    restart_patches_replicasets: int = 0
    restart_replicaset_updates: int = 0  # by the controller-manager
    restart_events: int = 0
    restart_upgrade: bool = False  # restarted with another build (--restart-command): an upgrade
    restart_cpu_seconds: float = 0.0
    restart_peak_rss_mb: float = 0.0
    restart_errors: list[str] = field(default_factory=list)


def report(results: Results) -> str:
    """The table of every measure beside its target (bench/README.md quotes one run)."""
    r = results
    n = r.deployments
    audit = f"{r.audit_seconds:.1f} s" if r.audit_seconds is not None else f"not done ({r.annotated}/{n} annotated)"
    rows = [
        ("Scale", f"{n} Deployments, {r.namespaces} namespaces, {r.images} images", "", ""),
        (
            "Policy created -> every Deployment annotated",
            f"{audit} (first at {shown_seconds(r.first_verdict_seconds)}, half at {shown_seconds(r.half_seconds)})",
            f"< {target_seconds(n):.0f} s",
            met(None if r.audit_seconds is None else r.audit_seconds < target_seconds(n)),
        ),
        (
            "Verdicts (findings by rule)",
            ", ".join(f"{k} {v}" for k, v in sorted(r.verdicts.items()))
            + f" ({', '.join(f'{k} {v}' for k, v in sorted(r.findings.items()))})",
            "",
            "",
        ),
        (
            "Registry requests during the audit",
            f"{r.registry_requests} ({', '.join(f'{k}: {v}' for k, v in sorted(r.registry_by_status.items()))}); "
            f"+{r.token_requests} token requests",
            "",
            "",
        ),
        (
            "Registry requests per image, successful",
            f"max {r.per_image_ok_max}, mean {r.per_image_ok_mean:.2f}",
            f"{MIN_REQUESTS_PER_IMAGE} (HEAD + manifest + config)",
            met(r.per_image_ok_max <= MIN_REQUESTS_PER_IMAGE),
        ),
        (
            "Registry requests per image, with 401 challenges",
            f"max {r.per_image_total_max}, mean {r.per_image_total_mean:.2f}",
            "",
            "",
        ),
        (
            "Base candidates (requests each)",
            ", ".join(f"{k}: {v}" for k, v in r.base_candidate_requests.items()),
            "",
            "",
        ),
        (
            "PATCH deployments per workload (audit)",
            f"{r.patches_deployments / n:.2f} ({r.patches_deployments} for {n})",
            "1",
            met(r.patches_deployments <= n),
        ),
        (
            "apiserver time per PATCH deployments (server side, mean)",
            f"{r.patch_server_seconds_mean * 1000:.0f} ms",
            "",
            "",
        ),
        (
            "Other apiserver traffic (audit)",
            f"{r.events_created} Events, {r.policy_status_patches} policy status PATCHes, "
            f"{r.serviceaccount_reads} ServiceAccount GETs",
            "",
            "",
        ),
        (
            "ReplicaSet PUTs by the controller-manager (audit), per verdict",
            f"{r.replicaset_updates / n:.2f} ({r.replicaset_updates}: "
            + ", ".join(f"{code} {count}" for code, count in sorted(r.replicaset_update_codes.items()))
            + f"); {r.replicasets_annotated} ReplicaSets carry slimguard annotations",
            "~0 for compliant workloads",
            "",
        ),
        (
            f"Cluster CPU, policy created -> last ReplicaSet update ({r.settled_seconds:.1f} s): kube-apiserver + "
            "controller-manager + etcd",
            f"{cluster_cpu(r):.1f} s ({1000 * cluster_cpu(r) / n:.1f} ms per workload; "
            + ", ".join(f"{name} {r.cluster_cpu_until_settled.get(name, 0.0):.1f}" for name in CLUSTER_PROCESSES)
            + f"; slimguard {r.cluster_cpu_until_settled.get('slimguard', 0.0):.1f}, other sessions "
            f"{r.cluster_cpu_until_settled.get('machine, other sessions', 0.0):.1f})",
            "",
            "",
        ),
        (
            "apiserver request time of those writes (Deployment PATCHes + ReplicaSet PUTs)",
            f"{r.write_server_seconds:.1f} s; kube-apiserver CPU during the audit "
            f"{r.audit_cpu_by_process.get('kube-apiserver', 0.0):.1f} s "
            f"({1000 * r.audit_cpu_by_process.get('kube-apiserver', 0.0) / n:.1f} ms per workload)",
            "",
            "",
        ),
        (
            f"Unchanged re-audit (interval {r.audit_interval:g} s, {r.reaudits_seen} seen in "
            f"{r.reaudit_wait_seconds:.0f} s)",
            f"{r.reaudit_patches_deployments} PATCH deployments, {r.reaudit_events} Events, "
            f"{r.reaudit_policy_status_patches} status PATCHes, {r.reaudit_registry_requests} registry requests, "
            f"{r.reaudit_serviceaccount_reads} ServiceAccount GETs",
            "0 workload writes",
            met(r.reaudits_seen > 0 and r.reaudit_patches_deployments == 0),
        ),
        (
            "Controller CPU",
            f"list {r.list_cpu_seconds:.1f} s, audit {r.audit_cpu_seconds:.1f} s, "
            f"re-audit {r.reaudit_cpu_seconds / max(r.reaudits_seen, 1):.1f} s each; "
            f"total {r.total_cpu_seconds:.1f} s",
            "",
            "",
        ),
        (
            "Controller peak RSS (VmHWM)",
            f"{r.peak_rss_mb:.0f} MB (at start-up {r.rss_at_start_mb:.0f} MB, after list {r.rss_after_list_mb:.0f} MB, "
            "after audit "
            f"{r.rss_after_audit_mb:.0f} MB)",
            f"< {TARGET_RSS_MB:.0f} MB",
            met(r.peak_rss_mb < TARGET_RSS_MB),
        ),
        (
            "Controller errors in its log",
            f"{len(r.operator_errors)}; exit code {r.operator_exit_code}; log {r.operator_log_lines} lines, "
            f"{r.operator_log_bytes / 1e6:.1f} MB",
            "0",
            met(not r.operator_errors),
        ),
    ]
    if r.restart_evaluations or r.restart_list_seconds:
        rows += [
            (
                "Restart: start -> first / last workload re-verified",
                f"{shown_seconds(r.restart_first_seconds)} / {shown_seconds(r.restart_last_seconds)} "
                f"(listed everything at {r.restart_list_seconds:.1f} s; {r.restart_evaluations} evaluations)",
                "",
                "",
            ),
            (
                "Restart: registry requests",
                f"{r.restart_registry_requests} ("
                + ", ".join(f"{k} {v}" for k, v in r.restart_registry_breakdown.items())
                + f"); +{r.restart_token_requests} token requests",
                "<= 1 HEAD per tag; no manifest or blob read (the facts are in ImageReports)",
                met(
                    r.restart_heads_per_tag_max <= 1
                    and not any(what.startswith("GET ") for what in r.restart_registry_breakdown)
                ),
            ),
            (
                "Restart: writes",
                f"{r.restart_patches_deployments} PATCH deployments, {r.restart_patches_replicasets} PATCH "
                f"replicasets, {r.restart_events} Events; controller-manager: {r.restart_replicaset_updates} "
                "ReplicaSet PUTs" + (" (an upgrade: restarted with --restart-command)" if r.restart_upgrade else ""),
                "<= 1 PATCH per Deployment, 0 Events" if r.restart_upgrade else "0",
                met(r.restart_patches_deployments <= (n if r.restart_upgrade else 0) and r.restart_events == 0),
            ),
            (
                "Restart: controller CPU, peak RSS",
                f"{r.restart_cpu_seconds:.1f} s, {r.restart_peak_rss_mb:.0f} MB",
                f"< {TARGET_RSS_MB:.0f} MB",
                met(r.restart_peak_rss_mb < TARGET_RSS_MB),
            ),
        ]
    return table(("Measure", "Result", "Target", "Met"), rows)


CLUSTER_PROCESSES = ("kube-apiserver", "kube-controller-manager", "etcd")


def cluster_cpu(results: Results) -> float:
    """What the cluster itself spent on the verdicts, from the policy's creation until it was quiet again."""
    return sum(results.cluster_cpu_until_settled.get(name, 0.0) for name in CLUSTER_PROCESSES)


def shown_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
