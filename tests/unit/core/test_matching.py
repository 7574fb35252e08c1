"""Which containers a policy checks (match, then exclude), and which exemption waives a container's findings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from slimguard.core.evaluation.matching import exemption_for, selected_containers
from slimguard.core.model.kinds import WORKLOAD_KINDS
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Workload

from .builders import APP, NOW, container, policy, workload

NODE = "node:20-alpine"
LEGACY = "registry.example.com/legacy/billing:7"


def names(chosen: ImagePolicy, subject: Workload, namespace_labels: dict[str, str] | None = None) -> list[str]:
    return [c.name for c in selected_containers(chosen, subject, namespace_labels or {})]


def test_an_empty_match_selects_every_container_of_every_workload() -> None:
    assert names(policy(), workload(APP, NODE, kind="CronJob", namespace="anything")) == ["app", "app-1"]


@pytest.mark.parametrize(("namespace", "selected"), [("team-a", True), ("team-b", True), ("kube-system", False)])
def test_namespace_globs_select_workloads_by_namespace(namespace: str, selected: bool) -> None:
    chosen = policy(match={"namespaces": ["team-*", "prod"]})
    assert bool(names(chosen, workload(namespace=namespace))) is selected


def test_a_namespace_selector_reads_the_labels_of_the_workloads_namespace() -> None:
    chosen = policy(
        match={
            "namespaceSelector": {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "slimguard.dev/skip", "operator": "DoesNotExist"}],
            }
        }
    )
    assert names(chosen, workload(), {"env": "prod"})
    assert not names(chosen, workload(), {"env": "dev"})
    assert not names(chosen, workload(), {"env": "prod", "slimguard.dev/skip": "true"})
    assert not names(chosen, workload(), {})


@pytest.mark.parametrize(
    ("operator", "values", "labels", "selected"),
    [
        ("In", ["prod", "staging"], {"env": "staging"}, True),
        ("In", ["prod"], {"env": "dev"}, False),
        ("NotIn", ["dev"], {"env": "prod"}, True),
        ("NotIn", ["dev"], {}, True),
        ("NotIn", ["dev"], {"env": "dev"}, False),
        ("Exists", [], {"env": "x"}, True),
        ("Exists", [], {}, False),
        ("DoesNotExist", [], {}, True),
        ("DoesNotExist", [], {"env": "x"}, False),
    ],
)
def test_every_namespace_selector_operator(
    operator: str, values: list[str], labels: dict[str, str], selected: bool
) -> None:
    expression = {"key": "env", "operator": operator, "values": values}
    chosen = policy(match={"namespaceSelector": {"matchExpressions": [expression]}})
    assert bool(names(chosen, workload(), labels)) is selected


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_kinds_select_workloads_by_kind(kind: str) -> None:
    chosen = policy(match={"kinds": ["Deployment", "CronJob"]})
    assert bool(names(chosen, workload(kind=kind))) is (kind in ("Deployment", "CronJob"))


def test_a_selector_reads_the_workloads_own_labels() -> None:
    chosen = policy(match={"selector": {"matchLabels": {"app": "api"}}})
    assert names(chosen, workload(labels={"app": "api", "team": "a"}))
    assert not names(chosen, workload(labels={"app": "web"}))


def test_image_globs_select_containers_not_whole_workloads() -> None:
    chosen = policy(match={"images": ["registry.example.com/team/*"]})
    assert names(chosen, workload(APP, NODE, "registry.example.com/team/worker:2")) == ["app", "app-2"]


def test_a_short_docker_hub_name_is_matched_by_a_glob_on_its_full_spelling() -> None:
    assert names(policy(match={"images": ["*/node:*-alpine"]}), workload(NODE, "node:20", "python:3-alpine")) == ["app"]


def test_a_container_with_an_unparseable_image_is_matched_by_its_text() -> None:
    assert names(policy(match={"images": ["Registry/*"]}), workload("Registry/App")) == ["app"]


def test_every_given_match_field_must_hold() -> None:
    chosen = policy(match={"namespaces": ["team-*"], "kinds": ["Deployment"], "images": ["*/node:*"]})
    assert names(chosen, workload(NODE))
    assert not names(chosen, workload(NODE, kind="Job"))
    assert not names(chosen, workload(NODE, namespace="prod"))
    assert not names(chosen, workload(APP))


def test_an_excluded_namespace_leaves_nothing_to_check() -> None:
    chosen = policy(exclude={"namespaces": ["team-a"]})
    assert not names(chosen, workload(APP, NODE, namespace="team-a"))
    assert names(chosen, workload(APP, NODE, namespace="team-b")) == ["app", "app-1"]


def test_excluded_images_drop_only_those_containers() -> None:
    chosen = policy(exclude={"images": ["*/node:*"]})
    assert names(chosen, workload(APP, NODE)) == ["app"]


def test_an_exclude_drops_containers_only_where_all_its_fields_hold() -> None:
    chosen = policy(exclude={"kinds": ["Job"], "images": ["*/node:*"]})
    assert names(chosen, workload(APP, NODE, kind="Job")) == ["app"]
    assert names(chosen, workload(APP, NODE, kind="Deployment")) == ["app", "app-1"]


def test_an_empty_exclude_excludes_nothing() -> None:
    assert names(policy(exclude={}), workload(APP)) == ["app"]


def exempting(*exemptions: dict[str, Any]) -> ImagePolicy:
    return policy(exemptions=list(exemptions))


def test_an_exemption_by_image_glob_covers_matching_images_anywhere() -> None:
    chosen = exempting({"images": ["*/legacy/*"], "reason": "migrating to distroless by Q3"})
    exemption = exemption_for(chosen, workload(LEGACY), container(LEGACY), NOW)
    assert exemption is not None
    assert exemption.reason == "migrating to distroless by Q3"
    assert exemption_for(chosen, workload(APP), container(APP), NOW) is None


def test_an_exemption_by_workload_needs_every_given_field_to_hold() -> None:
    chosen = exempting({"workloads": [{"namespace": "legacy-*", "kind": "Deployment", "name": "old-*"}], "reason": "r"})
    assert exemption_for(chosen, workload(namespace="legacy-1", name="old-api"), container(APP), NOW)
    assert not exemption_for(chosen, workload(namespace="legacy-1", name="old-api", kind="Job"), container(APP), NOW)
    assert not exemption_for(chosen, workload(namespace="team-a", name="old-api"), container(APP), NOW)
    assert not exemption_for(chosen, workload(namespace="legacy-1", name="api"), container(APP), NOW)


def test_any_one_listed_workload_pattern_is_enough() -> None:
    chosen = exempting({"workloads": [{"name": "batch-*"}, {"kind": "CronJob"}], "reason": "r"})
    assert exemption_for(chosen, workload(name="batch-7"), container(APP), NOW)
    assert exemption_for(chosen, workload(kind="CronJob"), container(APP), NOW)
    assert not exemption_for(chosen, workload(), container(APP), NOW)


def test_an_exemption_is_active_until_its_expiry_by_the_injected_clock() -> None:
    chosen = exempting({"images": ["*/legacy/*"], "reason": "r", "expires": "2027-01-01T00:00:00Z"})
    subject = workload(LEGACY)
    assert exemption_for(chosen, subject, container(LEGACY), NOW)
    assert exemption_for(chosen, subject, container(LEGACY), NOW.replace(year=2026, month=12, day=31, hour=23))
    assert exemption_for(chosen, subject, container(LEGACY), NOW.replace(year=2027, month=1, day=1, hour=0)) is None


def test_an_expired_exemption_gives_way_to_a_later_active_one() -> None:
    chosen = exempting(
        {"images": ["*/legacy/*"], "reason": "old", "expires": (NOW - timedelta(days=1)).isoformat()},
        {"images": ["*/legacy/*"], "reason": "extended"},
    )
    exemption = exemption_for(chosen, workload(LEGACY), container(LEGACY), NOW)
    assert exemption is not None
    assert exemption.reason == "extended"
