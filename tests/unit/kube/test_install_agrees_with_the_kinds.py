"""The install grants and reviews exactly the workload kinds of the one table (``core.model.kinds``), in the chart and
in kustomize, and the ImagePolicy CRD lets policies name exactly those: a kind added to the table but not to a manifest
(or left in a manifest after it left the table) fails here, in the unit tier, before any cluster is started.

The e2e tier checks the same grants against a real apiserver (``tests/e2e/test_rbac_covers_watches.py``,
``test_install_manifests.py``); this reads the files. The Helm templates are read with their template directives
taken out: every rule compared here is plain YAML in them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from slimguard.core.model.kinds import TEMPLATE, WORKLOAD_KINDS, WORKLOADS

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "slimguard"
KUSTOMIZE = REPO / "deploy" / "kustomize" / "base"
WORKLOAD_VERBS = ["get", "list", "watch", "patch"]
"""What the controller needs of a workload kind: its informer lists and watches, reads one whole (get) where the
metadata does not say who made it, and writes its verdict (patch)."""


def _helm_documents(path: Path) -> list[dict[str, Any]]:
    text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", path.read_text(), flags=re.DOTALL)  # template comments
    lines = [line for line in text.splitlines() if not re.fullmatch(r"\s*\{\{.*\}\}\s*", line)]  # directives
    plain = re.sub(r"\{\{.*?\}\}", "templated", "\n".join(lines))  # values in place
    return [doc for doc in yaml.safe_load_all(plain) if doc]


def _kustomize_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


SOURCES = {
    "helm": (CHART / "templates" / "rbac.yaml", CHART / "templates" / "webhook-configuration.yaml", _helm_documents),
    "kustomize": (KUSTOMIZE / "rbac.yaml", KUSTOMIZE / "validatingwebhookconfiguration.yaml", _kustomize_documents),
}


def _controller_role(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (role,) = [
        d
        for d in documents
        if d["kind"] == "ClusterRole"
        and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "controller"
    ]
    return role


def _table() -> set[tuple[str, str]]:
    return {(entry.group, entry.plural) for entry in WORKLOADS}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_the_controller_may_watch_and_patch_exactly_the_kinds_of_the_table(source: str) -> None:
    rbac, _, read = SOURCES[source]
    granted = {
        (group, resource)
        for rule in _controller_role(read(rbac))["rules"]
        if rule["verbs"] == WORKLOAD_VERBS
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == _table()


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_the_webhook_reviews_exactly_the_kinds_of_the_table(source: str) -> None:
    _, webhook_file, read = SOURCES[source]
    (configuration,) = [d for d in read(webhook_file) if d["kind"] == "ValidatingWebhookConfiguration"]
    (webhook,) = configuration["webhooks"]
    reviewed = {
        (group, version, resource)
        for rule in webhook["rules"]
        for group in rule["apiGroups"]
        for version in rule["apiVersions"]
        for resource in rule["resources"]
    }
    assert reviewed == {(entry.group, entry.version, entry.plural) for entry in WORKLOADS}
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in webhook["rules"])


def test_the_webhooks_match_conditions_read_each_kinds_pod_spec_where_the_table_says_it_is() -> None:
    """The CEL that skips image-less UPDATEs names the kinds whose pod spec is elsewhere than ``spec.template.spec``;
    the others share its last branch."""
    (condition,) = yaml.safe_load((CHART / "files" / "match-conditions.yaml").read_text())
    expression = condition["expression"]
    elsewhere = [entry for entry in WORKLOADS if entry.pod_spec_path != TEMPLATE]
    for entry in elsewhere:
        assert f"request.kind.kind == '{entry.kind}'" in expression
        assert f"object.{'.'.join(entry.pod_spec_path)}.containers" in expression
    (named,) = re.findall(r"!\(request\.kind\.kind in \[([^]]*)\]\)", expression)
    assert {name.strip(" '") for name in named.split(",")} == {entry.kind for entry in elsewhere}
    assert f"object.{'.'.join(TEMPLATE)}.containers" in expression


def _kinds_schemas(node: Any) -> list[dict[str, Any]]:
    """Every ``kinds`` array and exemption ``kind`` in the CRD's schema."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("kinds", "kind") and isinstance(value, dict) and ("items" in value or "enum" in value):
                found.append(value)
            found.extend(_kinds_schemas(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_kinds_schemas(item))
    return found


def test_the_image_policy_crd_lets_policies_name_exactly_the_kinds_of_the_table() -> None:
    crd = yaml.safe_load((REPO / "crds" / "slimguard.dev_imagepolicies.yaml").read_text())
    schemas = _kinds_schemas(crd["spec"]["versions"])
    assert len(schemas) >= 3  # match.kinds, exclude.kinds, an exemption's workloads[].kind
    for schema in schemas:
        enum = schema["items"]["enum"] if "items" in schema else schema["enum"]
        assert tuple(enum) == WORKLOAD_KINDS
        assert schema.get("maxItems", len(WORKLOAD_KINDS)) == len(WORKLOAD_KINDS)
