"""The monitoring artefacts, checked by the tools that consume them: promtool for the alert rules (each alert
fires and stays silent in its own test), grafana-foundation-sdk's strict Go validator for the dashboard, and
helm and kustomize for the objects that ship them. No cluster is started here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from slimguard_testbed import k8s_binaries

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "slimguard"
ALERTS = CHART / "files" / "alerts.yaml"
ALERT_TESTS = REPO / "tests" / "alerts" / "alerts_test.yaml"
DASHBOARD = CHART / "files" / "dashboards" / "slimguard.json"
COMPONENT = REPO / "deploy" / "kustomize" / "components" / "monitoring"
KUSTOMIZE = REPO / "deploy" / "kustomize"


def _monitoring_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("slimguard_monitoring", REPO / "scripts" / "monitoring.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/bootstrap.sh installs Debian's prometheus package"
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False, timeout=60)


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


# -- alert rules ----------------------------------------------------------------------------------------------


def test_promtool_accepts_the_alert_rules() -> None:
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_every_alert_fires_and_stays_silent_in_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for test in tests:
        for case in test["alert_rule_test"]:
            # An exact expected list also proves silence for every other series the test feeds in.
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert fired == names, f"alerts without a test where they fire: {names - fired}"
    quiet_by_other_series = {
        test_case["alertname"]
        for test in tests
        if len(test["input_series"]) > 1
        for test_case in test["alert_rule_test"]
        if test_case["exp_alerts"]
    }
    never_silent = names - silent - quiet_by_other_series
    assert not never_silent, f"alerts never shown silent: {never_silent}"


def test_every_alert_has_a_summary_a_description_a_runbook_and_a_severity() -> None:
    for rule in _alerts():
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]


# -- the dashboard ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard_validator() -> str:
    """scripts/build-dashboard-validator.sh: grafana-foundation-sdk/go v0.0.22, built once into the cache."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-dashboard-validator.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_the_dashboard_passes_grafana_foundation_sdks_strict_check(dashboard_validator: str) -> None:
    result = subprocess.run([dashboard_validator, str(DASHBOARD)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    panels = len(json.loads(DASHBOARD.read_text())["panels"])
    assert result.stdout.strip() == f"{DASHBOARD}: ok ({panels} panels)"


@pytest.mark.parametrize(
    ("mistake", "complaint"),
    [
        (('"legendFormat"', '"legendFormatt"'), "unexpected field 'legendFormatt'"),
        (('"graphMode"', '"graphMod"'), "unexpected field 'graphMod'"),
        (('"showUnfilled": true', '"showUnfilled": "yes"'), "cannot unmarshal string"),
        (('"schemaVersion"', '"schemaVersio"'), "schemaVersion: required field is missing"),
    ],
    ids=["target field", "panel option", "option type", "dashboard field"],
)
def test_the_validator_rejects_a_misspelt_or_mistyped_field(
    dashboard_validator: str, tmp_path: Path, mistake: tuple[str, str], complaint: str
) -> None:
    text = DASHBOARD.read_text()
    assert mistake[0] in text
    broken = tmp_path / "broken.json"
    broken.write_text(text.replace(mistake[0], mistake[1], 1))
    result = subprocess.run([dashboard_validator, str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert complaint in result.stdout, result.stdout


def test_the_dashboard_has_its_variables_and_every_panel_queries_prometheus() -> None:
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "policy"):
        assert variables[name]["includeAll"], name
        assert variables[name]["multi"], name
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["description"], panel["title"]


def test_the_shipped_files_are_what_scripts_monitoring_writes() -> None:
    for path, text in _monitoring_script().outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python scripts/monitoring.py"


# -- shipped by helm and kustomize ----------------------------------------------------------------------------


def _helm(helm: str, *sets: str) -> list[dict[str, Any]]:
    argv = [helm, "template", "slimguard", str(CHART), "--namespace", "slimguard", "--kube-version", "1.36.3"]
    for value in sets:
        argv += ["--set", value]
    rendered = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _kustomize_with_monitoring(tmp_path: Path) -> list[dict[str, Any]]:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    # kustomize takes bases and components by relative path only
    relative = os.path.relpath(KUSTOMIZE, overlay)
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{relative}/base]\ncomponents: [{relative}/components/monitoring]\n"
    )
    kubectl = k8s_binaries() / "kubectl"
    result = subprocess.run([str(kubectl), "kustomize", str(overlay)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def test_helm_and_kustomize_ship_the_same_rules_dashboard_and_service_monitor(helm: str, tmp_path: Path) -> None:
    charted = _helm(helm, "serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true")
    kustomized = _kustomize_with_monitoring(tmp_path)
    for kind in ("PrometheusRule", "ServiceMonitor"):
        assert _by_kind(charted, kind)["spec"] == _by_kind(kustomized, kind)["spec"], kind
    assert _by_kind(charted, "PrometheusRule")["spec"] == yaml.safe_load(ALERTS.read_text())
    for objects in (charted, kustomized):
        config_map = _by_kind(objects, "ConfigMap")
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"]["slimguard.json"]) == json.loads(DASHBOARD.read_text())


def test_helm_dashboard_label_is_configurable_and_grafana_operator_is_optional(helm: str) -> None:
    assert not [o for o in _helm(helm) if o["kind"] in ("ConfigMap", "GrafanaDashboard")]
    objects = _helm(
        helm,
        "grafanaDashboard.enabled=true",
        "grafanaDashboard.label=dashboards",
        "grafanaDashboard.labelValue=slimguard",
        "grafanaDashboard.grafanaOperator.enabled=true",
    )
    config_map = _by_kind(objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["dashboards"] == "slimguard"
    operator = _by_kind(objects, "GrafanaDashboard")
    assert operator["spec"]["configMapRef"] == {"name": config_map["metadata"]["name"], "key": "slimguard.json"}
    assert operator["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "grafana"}}
