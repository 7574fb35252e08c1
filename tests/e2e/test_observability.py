"""The dashboard and the alerts, proven on the real thing: Debian's Prometheus scrapes the running controller
and both webhook replicas every second while a scenario runs (fat and slim workloads, a denial, a warning, an
onUnknown decision on an unreachable registry, an exemption, a VulnerabilityReport for the fat image, content
rules that have the fat image's layers read, a slimmer base measured for an app on a known base); then
every dashboard panel query and every alert expression runs through Prometheus' /api/v1/query, with the
dashboard's variables substituted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cluster import apply, apply_crd_while_kopf_runs, deployment, image_policy, namespace, wait_for, wait_for_status

from slimguard_testbed import ControlPlane, Registry
from slimguard_testbed.images.base_variants import push_base_variants
from slimguard_testbed.kubelet_events import present_message, pulled_event, pulled_message
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.prometheus import Prometheus
from slimguard_testbed.trivy import vulnerability, vulnerability_report
from slimguard_testbed.webhook import WebhookReplicas

# Starting the control plane, the webhook and Prometheus, and the scenario, count against the first test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "helm" / "slimguard" / "files" / "dashboards" / "slimguard.json"
ALERTS = REPO / "deploy" / "helm" / "slimguard" / "files" / "alerts.yaml"
TRIVY_CRD = REPO / "tests" / "e2e" / "crds" / "aquasecurity.github.io_vulnerabilityreports.yaml"
UNREACHABLE = "127.0.0.1:1/never/pushed:1"  # a registry that refuses every connection: an outage
UNREACHABLE_AGAIN = "127.0.0.1:1/never/pushed-again:1"  # another image there: not in the failure cache
AUDIT, ENFORCE, WARN, EXEMPT, HINTS = "obs-audit", "obs-enforce", "obs-warn", "obs-exempt", "obs-hints"
# A node of this tier (no kubelet behind it: its Pulled Events are made through the API as a kubelet's recorder
# makes them, slimguard_testbed.kubelet_events), on containerd: its pulls' sizes are compressed. Not Ready, so the
# platforms judged stay linux/amd64.
PULL_NODE = "obs-node"
PULLS = ((41.2, 43.0), (39.8, 39.8), (40.5, 52.1))  # each cold pull of the fat image: seconds, with waiting
# Alert expressions on the apiserver's own metrics: this Prometheus does not scrape the apiserver.
APISERVER_ONLY = {"SlimguardWebhookFailingOpen"}


@pytest.fixture(scope="module")
def prometheus(
    operator: InProcessOperator, webhook: WebhookReplicas, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    with Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        static_targets={
            "slimguard-controller": [f"127.0.0.1:{operator.settings.metrics_port}"],
            "slimguard-webhook": [f"127.0.0.1:{port}" for port in webhook.metrics_ports],
        },
    ) as started:
        wait_for("every target to be scraped", started.targets_up, timeout=30)
        yield started


def _kubectl_apply(plane: ControlPlane, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(document), check=False)


def _pod(name: str, ns: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "api", "image": image}]},
    }


def _installed_packages(fixture: Any) -> int:
    """The oracle: dpkg's own status file, taken out of the image's first layer by tar, stanzas installed."""
    blob = fixture.artifact.layers[0].blob.path
    status = subprocess.run(
        ["tar", "-xzOf", str(blob), "--wildcards", "*var/lib/dpkg/status"], capture_output=True, check=True
    ).stdout.decode()
    return sum(1 for stanza in status.split("\n\n") if "\nStatus: install ok installed" in f"\n{stanza}")


@pytest.fixture(scope="module")
def scenario(
    control_plane: ControlPlane, operator: InProcessOperator, webhook: WebhookReplicas, fixture_images: Any,
    registry: Registry, prometheus: Prometheus,
) -> dict[str, Any]:  # fmt: skip
    fat, slim = fixture_images.fat_app.ref, fixture_images.slim_app.ref
    limit = {"maxCompressedSize": "200Mi"}
    # The content rules have the controller read the layers of the images in obs-audit (fat: Debian with
    # build-essential; slim: a multi-stage build on busybox, which passes them).
    inside = {**limit, "maxPackages": 100, "forbiddenTools": ["compilers"]}
    # An app on a base whose tag list has slimmer variants: the controller measures them for slimmerBases.
    variants = push_base_variants(registry.endpoint, "base/obs-node", app="shop/obs-hinted")
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    apply(
        control_plane,
        *(namespace(ns) for ns in (AUDIT, ENFORCE, WARN, EXEMPT, HINTS)),
        image_policy("obs-audit", inside, namespaces=[AUDIT]),
        image_policy("obs-enforce", limit, namespaces=[ENFORCE], mode="Enforce"),
        image_policy("obs-warn", limit, namespaces=[WARN], mode="Warn"),
        image_policy(
            "obs-exempt",
            # A vulnerability rule no image breaks: with it the VulnerabilityReports are read, and the fleet's
            # slimguard_image_vulnerabilities counts them (no policy reading them, none is listed).
            {**limit, "vulnerabilities": {"maxCritical": 10}},
            namespaces=[EXEMPT],
            mode="Enforce",
            exemptions=[{"images": [fat], "reason": "moving to distroless", "expires": expires.isoformat()}],
        ),
        image_policy(
            "obs-hints",
            {"maxCompressedSize": "2Mi"},
            namespaces=[HINTS],
            knownBaseImages=[variants.bookworm.ref],
            slimmerBases={},
        ),
    )

    # The webhook sees the policies through its watch: an unreachable image is then admitted with a warning.
    def warned_unknown() -> subprocess.CompletedProcess[str] | None:
        result = _kubectl_apply(control_plane, _pod("unknown", ENFORCE, UNREACHABLE))
        return result if result.returncode == 0 and "admitted unchecked" in result.stderr else None

    unknown = wait_for("onUnknown to admit the unreachable image", warned_unknown, timeout=60)
    denied = _kubectl_apply(control_plane, deployment("fat", ENFORCE, fat))
    assert denied.returncode != 0
    assert "denied the request" in denied.stderr
    warned = _kubectl_apply(control_plane, deployment("fat", WARN, fat))
    assert warned.returncode == 0, warned.stderr
    assert "Warning: slimguard:" in warned.stderr
    for document in (
        deployment("fat", AUDIT, fat),
        deployment("slim", AUDIT, slim),
        deployment("fat", EXEMPT, fat),
        deployment("hinted", HINTS, variants.app.ref),
    ):
        result = _kubectl_apply(control_plane, document)
        assert result.returncode == 0, result.stderr
    wait_for_status(control_plane, "deployment", "fat", AUDIT, "noncompliant")
    wait_for_status(control_plane, "deployment", "slim", AUDIT, "compliant")
    wait_for_status(control_plane, "deployment", "fat", EXEMPT, "compliant")
    # Trivy Operator's scan of the fat image: it speaks for that digest in every namespace running it.
    apply_crd_while_kopf_runs(control_plane, TRIVY_CRD, "vulnerabilityreports.aquasecurity.github.io")
    findings = [
        *(vulnerability(f"CVE-2026-100{n}", "CRITICAL", fixed="3.0.2") for n in range(2)),
        *(vulnerability(f"CVE-2026-200{n}", "HIGH") for n in range(3)),
        vulnerability("CVE-2026-3000", "LOW"),
    ]
    apply(
        control_plane,
        vulnerability_report(
            namespace=AUDIT,
            kind="ReplicaSet",
            name="fat-scanned",
            container="api",
            image=fat,
            digest=fixture_images.fat_app.digest,
            updated=datetime.now(UTC),
            vulnerabilities=findings,
        ),
    )
    wait_for_status(control_plane, "pod", "unknown", ENFORCE, "error")
    # The kubelet's pulls of the fat image in obs-audit: three cold, one warm, on a containerd node.
    apply(control_plane, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": PULL_NODE}})
    node_info = {"operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "containerd://1.6.20"}
    control_plane.kubectl(
        "patch", "node", PULL_NODE, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"nodeInfo": node_info}}),
    )  # fmt: skip
    fat_size = fixture_images.fat_app.compressed_size
    for index, (seconds, with_waiting) in enumerate(PULLS):
        apply(
            control_plane,
            pulled_event(
                namespace=AUDIT, pod=f"fat-{index}", container="api", node=PULL_NODE,
                message=pulled_message(fat, seconds, with_waiting, fat_size),
            ),
        )  # fmt: skip
    apply(
        control_plane,
        pulled_event(namespace=AUDIT, pod="fat-3", container="api", node=PULL_NODE, message=present_message(fat)),
    )
    # The outage goes on: once Prometheus has seen the controller's first failed request, a second image on
    # the same registry fails again, so the error counter rises between two scrapes (rate() shows it).
    wait_for(
        "Prometheus to see the registry outage",
        lambda: prometheus.query('slimguard_registry_requests_total{job="slimguard-controller", status="error"}'),
    )
    again = _kubectl_apply(control_plane, _pod("unknown-again", ENFORCE, UNREACHABLE_AGAIN))
    assert again.returncode == 0, again.stderr
    wait_for_status(control_plane, "pod", "unknown-again", ENFORCE, "error")

    # Prometheus has it all once the scrapes after the scenario are in: rate() needs two samples of a counter.
    def scraped() -> bool:
        return all(
            prometheus.query(expr)
            for expr in (
                f'slimguard_workloads{{namespace="{EXEMPT}", status="compliant"}}',
                f'slimguard_exempted_violations{{namespace="{EXEMPT}"}}',
                f'slimguard_image_vulnerabilities{{namespace="{EXEMPT}", severity="critical"}} > 0',
                f'slimguard_images_with_tools{{namespace="{AUDIT}", category="compilers"}} > 0',
                f'slimguard_slimmer_base_savings_bytes{{namespace="{HINTS}"}} > 0',
                f'slimguard_pull_seconds_saveable{{namespace="{AUDIT}"}} > 0',
                f'rate(slimguard_image_pull_seconds_total{{namespace="{AUDIT}"}}[1m])',
                'rate(slimguard_registry_requests_total{job="slimguard-controller", status="error"}[1m]) > 0',
                *(
                    f'rate(slimguard_admission_policy_decisions_total{{decision="{decision}"}}[1m])'
                    for decision in ("unknown", "denied", "warned")
                ),
            )
        )

    wait_for("Prometheus to scrape the scenario", scraped, timeout=60)
    # Its pulls are folded, their sizes known as compressed: the Node is not left for the rest of the session.
    control_plane.kubectl("delete", "node", PULL_NODE, "--wait=false")
    saving = variants.sizes[variants.bookworm.ref] - variants.sizes[variants.alpine.ref]
    packages = _installed_packages(fixture_images.fat_app)
    return {
        "fat": fat, "slim": slim, "expires": expires, "unknown": unknown, "saving": saving, "packages": packages,
        "fat_size": fat_size,
    }  # fmt: skip


# -- the dashboard ---------------------------------------------------------------------------------------------


def _panel_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in board["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def _substitute(expr: str, *, namespace: str = ".*", policy: str = ".*") -> str:
    """What Grafana sends: variables replaced (All is the variables' allValue, `.*`)."""
    return expr.replace("$namespace", namespace).replace("$policy", policy).replace("$__rate_interval", "1m")


@pytest.mark.usefixtures("scenario")
@pytest.mark.parametrize(("panel", "expr"), _panel_queries(), ids=[panel for panel, _ in _panel_queries()])
def test_every_panel_query_succeeds_and_shows_the_scenario(prometheus: Prometheus, panel: str, expr: str) -> None:
    result = prometheus.query(_substitute(expr))
    assert result, f"{panel}: no data for {_substitute(expr)}"


@pytest.mark.usefixtures("scenario")
@pytest.mark.parametrize(
    ("panel", "expr"),
    [(panel, expr) for panel, expr in _panel_queries() if "$namespace" in expr],
    ids=[panel for panel, expr in _panel_queries() if "$namespace" in expr],
)
def test_panels_filter_by_the_namespace_and_policy_variables(prometheus: Prometheus, panel: str, expr: str) -> None:
    # Several values selected in each variable: Grafana sends them as a regex alternation.
    chosen = (AUDIT, EXEMPT, HINTS)
    some = prometheus.query(_substitute(expr, namespace="|".join(chosen), policy="obs-audit|obs-exempt|obs-hints"))
    none = prometheus.query(_substitute(expr, namespace="no-such-namespace", policy="no-such-policy"))
    assert some, panel
    for sample in some:
        assert sample["metric"].get("namespace", AUDIT) in chosen, (panel, sample)
    assert all(sample["value"][1] == "0" for sample in none), (panel, none)  # `or vector(0)` panels show 0


def test_the_scenario_shows_in_the_numbers(prometheus: Prometheus, scenario: dict[str, Any]) -> None:
    def value(expr: str) -> float:
        (sample,) = prometheus.query(expr)
        return float(sample["value"][1])

    assert value(f'sum(slimguard_workloads{{namespace="{AUDIT}", status="noncompliant"}})') == 1
    assert value(f'sum(slimguard_workloads{{namespace="{AUDIT}", status="compliant"}})') == 1
    assert value(f'sum(slimguard_violations{{namespace="{AUDIT}", rule="maxCompressedSize"}})') >= 1
    assert value(f'sum(slimguard_exempted_violations{{namespace="{EXEMPT}"}})') >= 1
    assert value(f'sum(slimguard_workloads{{namespace="{ENFORCE}", status="error"}})') == 2  # both unreachable pods
    assert value(f'sum(slimguard_compressed_bytes_over_limit{{namespace="{AUDIT}"}})') > 0
    # The fat image's report counts once in each namespace running it.
    for ns in (AUDIT, EXEMPT, WARN):
        by_severity = {
            severity: value(f'slimguard_image_vulnerabilities{{namespace="{ns}", severity="{severity}"}}')
            for severity in ("critical", "high", "medium", "low")
        }
        assert by_severity == {"critical": 2, "high": 3, "medium": 0, "low": 1}, ns
    assert value(f'sum(slimguard_image_bytes{{namespace="{AUDIT}", image="{scenario["fat"]}"}})') > 200 * 2**20
    # obs-audit's content rules had fat's and slim's layers read; slim, on busybox, has no package database.
    assert value(f'slimguard_images_content_known{{namespace="{AUDIT}"}}') == 2
    assert value(f'slimguard_image_os_packages{{namespace="{AUDIT}"}}') == scenario["packages"] > 100
    assert value(f'slimguard_image_wasted_bytes{{namespace="{AUDIT}"}}') >= 0
    assert value(f'slimguard_images_with_tools{{namespace="{AUDIT}", category="compilers"}}') == 1  # fat only
    assert value(f'slimguard_images_with_tools{{namespace="{AUDIT}", category="packageManagers"}}') >= 1
    assert (
        value(f'sum(slimguard_slimmer_base_savings_bytes{{namespace="{HINTS}", policy="obs-hints"}})')
        == (scenario["saving"])
    )
    # The kubelet's pulls, as its Events told them: three cold (their seconds and sizes), one warm.
    cold = f'namespace="{AUDIT}", pull="cold"'
    assert value(f"sum(slimguard_image_pulls_total{{{cold}}})") == len(PULLS)
    assert value(f'sum(slimguard_image_pulls_total{{namespace="{AUDIT}", pull="warm"}})') == 1
    assert value(f"sum(slimguard_image_pull_seconds_total{{{cold}}})") == pytest.approx(sum(s for s, _ in PULLS))
    assert value(f"sum(slimguard_image_pulled_bytes_total{{{cold}}})") == len(PULLS) * scenario["fat_size"]
    # What an image within obs-audit's 200Mi would have saved on those pulls, at their throughput.
    over = value(f'sum(slimguard_compressed_bytes_over_limit{{namespace="{AUDIT}", policy="obs-audit"}})')
    throughput = scenario["fat_size"] / (sum(s for s, _ in PULLS) / len(PULLS))
    assert value(f'sum(slimguard_pull_seconds_saveable{{namespace="{AUDIT}", policy="obs-audit"}})') == (
        pytest.approx(len(PULLS) * over / throughput, rel=1e-3)
    )
    assert value('sum(slimguard_exemption_expiry_timestamp_seconds{policy="obs-exempt"})') == (
        scenario["expires"].timestamp()
    )
    decisions = {"obs-enforce": "denied", "obs-warn": "warned"}
    for policy, decision in decisions.items():
        assert (
            value(f'sum(slimguard_admission_policy_decisions_total{{policy="{policy}", decision="{decision}"}})') >= 1
        )
    assert value('sum(slimguard_admission_policy_decisions_total{policy="obs-enforce", decision="unknown"})') >= 1
    assert value('sum(slimguard_admission_reviews_total{decision="denied"})') >= 1
    assert value('sum(slimguard_registry_requests_total{registry="127.0.0.1:1", status="error"})') >= 1
    assert value('sum(slimguard_inspection_failures_total{reason="RegistryUnreachable"})') >= 1
    # Nothing from the unreachable registry is enforced under obs-enforce: both of its images there, by default.
    checked = 'slimguard_images_checked{policy="obs-enforce", registry="127.0.0.1:1"}'
    assert value(checked) == 2
    by_default = 'slimguard_images_decided_by_default{policy="obs-enforce", registry="127.0.0.1:1"}'
    assert value(f"sum({by_default})") == 2
    assert value('sum(slimguard_cache_lookups_total{result="hit"})') >= 1
    assert value("max(slimguard_admission_timeout_seconds)") == 3


def test_every_metric_a_panel_uses_is_in_the_scrape(operator: InProcessOperator, webhook: WebhookReplicas) -> None:
    exposed = set()
    for port in (operator.settings.metrics_port, *webhook.metrics_ports):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        exposed |= set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    used = {
        re.sub(r"_bucket$", "", name) for _, expr in _panel_queries() for name in re.findall(r"slimguard_\w+", expr)
    }
    # prometheus_client declares a counter by its name without _total
    assert not {name for name in used if name not in exposed and name.removesuffix("_total") not in exposed}


# -- the alerts -----------------------------------------------------------------------------------------------


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.mark.usefixtures("scenario")
@pytest.mark.parametrize("rule", _alert_rules(), ids=[rule["alert"] for rule in _alert_rules()])
def test_every_alert_expression_succeeds_on_the_real_scrape(prometheus: Prometheus, rule: dict[str, Any]) -> None:
    result = prometheus.query(rule["expr"])
    # What the scenario makes true, and what must stay silent while both components run.
    firing = {
        "SlimguardExemptionExpiringSoon": [{"policy": "obs-exempt", "exemption": "0"}],
        "SlimguardErrorVerdictsPersisting": [{"policy": "obs-enforce", "namespace": ENFORCE}],
        "SlimguardRegistryErrors": [{"registry": "127.0.0.1:1"}],
        # Both images obs-enforce checks there are unreadable: nothing from it is enforced.
        "SlimguardNothingEnforced": [{"policy": "obs-enforce", "registry": "127.0.0.1:1"}],
    }
    silent = {
        "SlimguardControllerAbsent",
        "SlimguardWebhookAbsent",
        "SlimguardTargetDown",
        "SlimguardAdmissionFailures",
        "SlimguardWebhookCertificateExpiringSoon",  # the replicas' certificates have 30 days left
    }
    if rule["alert"] in firing:
        found = [
            {key: sample["metric"].get(key) for key in want} for want in firing[rule["alert"]] for sample in result
        ]
        for want in firing[rule["alert"]]:
            assert want in found, (rule["alert"], result)
    elif rule["alert"] in silent:
        assert result == [], (rule["alert"], result)
    elif rule["alert"] in APISERVER_ONLY:
        assert result == []


def test_promtool_check_metrics_is_clean_on_every_scrape(operator: InProcessOperator, webhook: WebhookReplicas) -> None:
    promtool = shutil.which("promtool")
    assert promtool
    for port in (operator.settings.metrics_port, *webhook.metrics_ports):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"port {port}:\n{result.stdout}{result.stderr}"
        assert result.stdout.strip() == "", result.stdout
