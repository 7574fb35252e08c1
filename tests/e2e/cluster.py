"""Small helpers the end-to-end tests share: apply YAML, read objects, wait for the operator's verdicts."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from slimguard_testbed import ControlPlane

# The object bodies are the test bed's, shared with the benchmarks; the tests import them from here.
from slimguard_testbed.workloads import deployment as deployment
from slimguard_testbed.workloads import image_policy as image_policy
from slimguard_testbed.workloads import namespace as namespace
from slimguard_testbed.workloads import pod as pod

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "slimguard"
# The webhook configuration the e2e tests register (pointed at their replicas by `url`).
WEBHOOK_TEMPLATE = REPO / "deploy" / "kustomize" / "base" / "validatingwebhookconfiguration.yaml"

T = TypeVar("T")
STATUS = "slimguard.dev/status"
"""The label slimguard puts its verdict in (compliant, noncompliant, pending, error)."""
VIOLATIONS = "slimguard.dev/violations"
OWN_PREFIX = "slimguard.dev/"


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = 60, every: float = 0.3) -> T:
    """Poll until ``probe`` returns something truthy; a deadline for waiting, never a performance claim."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


POLICY_REPORT_CRDS = tuple(
    Path(__file__).parent / "crds" / name
    for name in ("wgpolicyk8s.io_policyreports.yaml", "wgpolicyk8s.io_clusterpolicyreports.yaml")
)
"""Kyverno's PolicyReport CRDs, as published (the reports slimguard writes are checked against them)."""


def install_crds(plane: ControlPlane, *, policy_reports: bool = False) -> None:
    """slimguard's CRDs from ``crds/`` (what the install applies) and, with ``policy_reports``, the PolicyReport
    CRDs; returns once the apiserver serves them."""
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    plane.wait_established("imagepolicies.slimguard.dev", "imagereports.slimguard.dev")
    if policy_reports:
        for crd in POLICY_REPORT_CRDS:
            plane.kubectl("apply", "--server-side", "-f", str(crd))
        plane.wait_established("policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io")


def apply(plane: ControlPlane, *documents: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def get(plane: ControlPlane, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
    if namespace:
        args += ["-n", namespace]
    output = plane.kubectl(*args).stdout.strip()
    return json.loads(output) if output else None


def apply_crd_while_kopf_runs(plane: ControlPlane, path: Path, name: str) -> None:
    """Apply a CRD so that the running operator's kopf serves it.

    kopf scans the API again on each event of a CRD, and the scans of its creation can run before the apiserver's
    discovery lists the new resource; then nothing makes kopf look again. Touched once discovery lists it, the CRD
    gives kopf one more event, whose scan finds it.
    """
    plane.kubectl("apply", "-f", str(path))
    plane.wait_established(name)
    plural, group = name.split(".", 1)
    wait_for(
        f"the apiserver's discovery to list {name}",
        lambda: plural in plane.kubectl("api-resources", f"--api-group={group}", "-o", "name").stdout,
    )
    plane.kubectl("annotate", "crd", name, f"slimguard-e2e/discovered-at={time.time():.0f}", "--overwrite")


def annotations(plane: ControlPlane, kind: str, name: str, namespace: str) -> dict[str, str]:
    body = get(plane, kind, name, namespace) or {}
    return dict((body.get("metadata") or {}).get("annotations") or {})


def status_of(body: dict[str, Any] | None) -> str | None:
    """slimguard's verdict on an object as read from the apiserver: its status label."""
    metadata = (body or {}).get("metadata") or {}
    return (metadata.get("labels") or {}).get(STATUS)


def status(plane: ControlPlane, kind: str, name: str, namespace: str) -> str | None:
    return status_of(get(plane, kind, name, namespace))


def own_marks(body: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """slimguard's labels and annotations on an object, as ``{"labels": ..., "annotations": ...}`` without the
    empty ones: ``{}`` when it carries nothing of slimguard's."""
    metadata = (body or {}).get("metadata") or {}
    found = {
        part: {key: value for key, value in (metadata.get(part) or {}).items() if key.startswith(OWN_PREFIX)}
        for part in ("labels", "annotations")
    }
    return {part: said for part, said in found.items() if said}


def wait_for_status(
    plane: ControlPlane, kind: str, name: str, namespace: str, status: str, timeout: float = 60
) -> dict[str, str]:
    """Wait until the object's status label says ``status``; returns its annotations (the findings are there)."""

    def probe() -> dict[str, Any] | None:
        body = get(plane, kind, name, namespace)
        return body if status_of(body) == status else None

    body = wait_for(f"{kind} {namespace}/{name} to be {status}", probe, timeout=timeout)
    return dict(body["metadata"].get("annotations") or {})


def violations(found: dict[str, str]) -> list[dict[str, str]]:
    return list(json.loads(found.get(VIOLATIONS) or "[]"))


def chart_readme() -> Any:
    """scripts/chart_readme.py as a module: what writes the chart README's values table."""
    spec = importlib.util.spec_from_file_location("slimguard_chart_readme", REPO / "scripts" / "chart_readme.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_values() -> list[str]:
    """Every key of the chart README's values table, as scripts/chart_readme.py lists them."""
    module = chart_readme()
    text = (CHART / "values.yaml").read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    return [key for key, *_ in module.rows(yaml.safe_load(text), schema, schema, module.value_comments(text))]
