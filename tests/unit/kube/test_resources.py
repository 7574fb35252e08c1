"""Every workload kind a policy can name is watched, so no kind is matched by policies but never audited."""

from __future__ import annotations

from slimguard.core.model.kinds import WORKLOAD_KINDS
from slimguard.kube.resources import WORKLOAD_RESOURCES, api_version


def test_the_watched_kinds_are_exactly_the_kinds_policies_name() -> None:
    assert tuple(WORKLOAD_RESOURCES) == WORKLOAD_KINDS


def test_api_versions_follow_the_group() -> None:
    assert (api_version("Deployment"), api_version("CronJob"), api_version("Pod")) == ("apps/v1", "batch/v1", "v1")
