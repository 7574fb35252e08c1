"""Platforms from the nodes: a policy listing no ``platforms`` judges each image on the platforms the cluster's
Ready nodes run, narrowed by the pod's pin on kubernetes.io/arch and /os, and on linux/amd64 when nothing says."""

from __future__ import annotations

from typing import Any

import pytest

from slimguard.core.evaluation.evaluate import evaluate
from slimguard.core.evaluation.plan import plan
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.placement import ANYWHERE, PlatformSource, judged_platforms, node_platform, platform_pin
from slimguard.core.model.platform import Platform
from slimguard.core.model.workload import normalise

from .builders import AMD64, APP, ARM64, MiB, context, facts, layers, platform_image, policy

ARM32 = Platform("linux", "arm")
WINDOWS = Platform("windows", "amd64")
MIXED = frozenset({AMD64, ARM64})


def node(arch: str, *, os: str = "linux", ready: str = "True", info: bool = True) -> dict[str, Any]:
    """A Node as the apiserver shows it: nodeInfo from the kubelet, the well-known labels, a Ready condition."""
    status: dict[str, Any] = {"conditions": [{"type": "MemoryPressure", "status": "False"}]}
    status["conditions"].append({"type": "Ready", "status": ready})
    if info:
        status["nodeInfo"] = {"operatingSystem": os, "architecture": arch, "kubeletVersion": "v1.36.3"}
    labels = {"kubernetes.io/arch": arch, "kubernetes.io/os": os}
    return {"metadata": {"name": f"node-{arch}", "labels": labels}, "status": status}


def pod_spec(**fields: Any) -> dict[str, Any]:
    return {"containers": [{"name": "app", "image": APP}], **fields}


def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    required = {"nodeSelectorTerms": [{"matchExpressions": expressions} for expressions in terms]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}


def arch(operator: str, *values: str) -> dict[str, Any]:
    return {"key": "kubernetes.io/arch", "operator": operator, "values": list(values)}


# --- a node's platform -----------------------------------------------------------------------------------------


def test_a_ready_arm64_node_runs_linux_arm64_v8_as_containerd_normalises_it() -> None:
    assert node_platform(node("arm64")) == Platform("linux", "arm64", "v8")
    assert str(node_platform(node("arm64"))) == "linux/arm64/v8"
    assert node_platform(node("amd64")) == AMD64
    assert node_platform(node("amd64", os="windows")) == WINDOWS


def test_a_32_bit_arm_node_names_no_variant_so_any_arm_variant_is_judged() -> None:
    found = node_platform(node("arm"))
    assert found == ARM32
    assert Platform("linux", "arm", "v6").satisfies(found)
    assert Platform("linux", "arm", "v7").satisfies(found)


@pytest.mark.parametrize("ready", ["False", "Unknown"])
def test_a_node_that_is_not_ready_runs_nothing(ready: str) -> None:
    assert node_platform(node("arm64", ready=ready)) is None


def test_a_node_without_node_info_is_read_from_its_well_known_labels() -> None:
    assert node_platform(node("arm64", info=False)) == ARM64


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "garbled"},
        {"status": {"conditions": "Ready"}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},  # no platform said anywhere
        {"status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"architecture": "a/b"}}},
    ],
)
def test_a_node_that_says_no_platform_runs_none(body: dict[str, Any]) -> None:
    assert node_platform(body) is None


# --- a pod's pin -----------------------------------------------------------------------------------------------


def test_a_pod_spec_without_node_selector_or_required_affinity_pins_nothing() -> None:
    assert platform_pin(pod_spec()) is ANYWHERE
    assert platform_pin(pod_spec(nodeSelector={"disktype": "ssd"})) is ANYWHERE
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}}
    assert platform_pin(pod_spec(affinity=preferred)) is ANYWHERE


def test_a_node_selector_on_the_arch_label_judges_that_platform_only() -> None:
    pin = platform_pin(pod_spec(nodeSelector={"kubernetes.io/arch": "amd64"}))
    assert judged_platforms(pin, MIXED).platforms == (AMD64,)
    beta = platform_pin(pod_spec(nodeSelector={"beta.kubernetes.io/arch": "arm64"}))
    assert judged_platforms(beta, MIXED).platforms == (ARM64,)


def test_required_node_affinity_terms_are_alternatives() -> None:
    either = platform_pin(pod_spec(affinity=affinity([arch("In", "arm64")], [arch("In", "amd64")])))
    assert judged_platforms(either, MIXED).platforms == (AMD64, ARM64)
    not_arm = platform_pin(pod_spec(affinity=affinity([arch("NotIn", "arm64")])))
    assert judged_platforms(not_arm, MIXED).platforms == (AMD64,)


def test_an_affinity_term_that_says_nothing_of_the_platform_lets_the_pod_run_on_any() -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    pin = platform_pin(pod_spec(affinity=affinity([arch("In", "arm64")], [zone])))
    assert pin is ANYWHERE


def test_node_selector_and_affinity_must_both_hold() -> None:
    spec = pod_spec(nodeSelector={"kubernetes.io/os": "linux"}, affinity=affinity([arch("In", "arm64", "amd64")]))
    assert judged_platforms(platform_pin(spec), MIXED | {WINDOWS}).platforms == (AMD64, ARM64)


def test_a_pin_on_a_platform_no_ready_node_runs_judges_the_pinned_platform() -> None:
    """An arm64 node pool scaled to zero: the pod waits for an arm64 node, and that is what it will pull."""
    pin = platform_pin(pod_spec(nodeSelector={"kubernetes.io/arch": "arm64"}))
    assert judged_platforms(pin, frozenset({AMD64})).platforms == (ARM64,)
    assert judged_platforms(pin, frozenset({AMD64})).source is PlatformSource.PIN
    assert judged_platforms(pin, frozenset()).platforms == (ARM64,)


def test_a_garbled_pin_is_no_pin_and_never_an_error() -> None:
    for spec in (
        pod_spec(nodeSelector="arm64"),
        pod_spec(affinity={"nodeAffinity": "x"}),
        pod_spec(affinity=affinity([{"key": ["kubernetes.io/arch"], "operator": "In"}])),
        pod_spec(
            affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": 3}}}
        ),
    ):
        assert judged_platforms(platform_pin(spec), MIXED).platforms == (AMD64, ARM64)


def test_every_workload_kind_carries_its_pod_templates_pin() -> None:
    template = {"spec": pod_spec(nodeSelector={"kubernetes.io/arch": "arm64"})}
    deployment = normalise("Deployment", {"metadata": {"name": "api"}, "spec": {"template": template}})
    cronjob = normalise(
        "CronJob", {"metadata": {"name": "nightly"}, "spec": {"jobTemplate": {"spec": {"template": template}}}}
    )
    for workload in (deployment, cronjob):
        assert judged_platforms(workload.platform_pin, MIXED).platforms == (ARM64,)


# --- which platforms a decision judges -------------------------------------------------------------------------


def test_without_a_ready_node_known_linux_amd64_is_judged_by_default_and_said_so() -> None:
    judged = judged_platforms(ANYWHERE, frozenset())
    assert judged.platforms == (AMD64,)
    assert judged.source is PlatformSource.DEFAULT


def test_an_unpinned_workload_is_judged_on_every_platform_the_ready_nodes_run() -> None:
    judged = judged_platforms(ANYWHERE, MIXED)
    assert judged.platforms == (AMD64, ARM64)
    assert judged.source is PlatformSource.NODES


def test_the_plan_reads_every_node_platform_for_a_policy_that_lists_none() -> None:
    sizes = policy("sizes", rules={"maxCompressedSize": "200Mi"})
    chosen = plan([sizes], normalise("Pod", {"metadata": {"name": "p"}, "spec": pod_spec()}), {}, node_platforms=MIXED)
    assert chosen.needs == {APP: FactsNeeds(MIXED)}
    assert chosen.platforms.platforms == (AMD64, ARM64)
    assert chosen.selection[0].policy.spec.rules.required_platforms == (AMD64, ARM64)


def test_every_decision_on_the_same_nodes_judges_the_same_copy_of_a_policy_and_a_change_of_nodes_another() -> None:
    # One copy per platform set (what the plan derives from a policy is kept per copy): not one per decision.
    sizes = policy("sizes", rules={"maxCompressedSize": "200Mi"})
    pod = normalise("Pod", {"metadata": {"name": "p"}, "spec": pod_spec()})
    first, again = (plan([sizes], pod, {}, node_platforms=MIXED).selection[0].policy for _ in range(2))
    assert first is again
    arm_only = plan([sizes], pod, {}, node_platforms=frozenset({ARM64})).selection[0].policy
    assert arm_only is not first
    assert arm_only.spec.rules.required_platforms == (ARM64,)
    assert first.spec.rules.required_platforms == (AMD64, ARM64)
    assert sizes.spec.rules.required_platforms == (AMD64,)  # the policy itself judges the default, untouched


def test_a_policy_that_lists_platforms_is_judged_on_those_whatever_the_nodes_run() -> None:
    listed = policy("listed", rules={"maxCompressedSize": "200Mi", "platforms": ["linux/amd64"]})
    chosen = plan([listed], normalise("Pod", {"metadata": {"name": "p"}, "spec": pod_spec()}), {}, node_platforms=MIXED)
    assert chosen.needs == {APP: FactsNeeds(frozenset({AMD64}))}
    assert chosen.selection[0].policy is listed


# --- the verdict: an index whose arm64 image is over the limit -------------------------------------------------

SMALL_AMD64 = platform_image(*layers("amd", 1, MiB), platform=AMD64, seed="amd")
FAT_ARM64 = platform_image(*layers("arm", 3, 100 * MiB), platform=ARM64, seed="arm")
INDEX = facts(SMALL_AMD64, FAT_ARM64)
LIMIT = policy("slim", rules={"maxCompressedSize": "200Mi"}, mode="Enforce")


def decide(spec: dict[str, Any], nodes: frozenset[Platform]) -> list[str]:
    pod = normalise("Pod", {"metadata": {"name": "p", "namespace": "team-a"}, "spec": spec})
    verdict = evaluate(plan([LIMIT], pod, {}, node_platforms=nodes), context({APP: INDEX}))
    return [finding.rule for finding in verdict.violations]


def test_an_index_whose_arm64_image_is_too_large_violates_the_limit_once_an_arm64_node_is_ready() -> None:
    assert decide(pod_spec(), MIXED) == ["maxCompressedSize"]
    assert decide(pod_spec(), frozenset({AMD64})) == []
    assert decide(pod_spec(), frozenset()) == []  # no node known: linux/amd64, as before


def test_a_pod_pinned_to_amd64_is_judged_on_amd64_alone_in_a_cluster_with_arm64_nodes() -> None:
    assert decide(pod_spec(nodeSelector={"kubernetes.io/arch": "amd64"}), MIXED) == []
    assert decide(pod_spec(nodeSelector={"kubernetes.io/arch": "arm64"}), frozenset({AMD64})) == ["maxCompressedSize"]


def test_an_image_without_an_arm64_variant_is_no_platforms_violation_of_a_policy_that_lists_no_platforms() -> None:
    amd64_only = facts(SMALL_AMD64)
    pod = normalise("Pod", {"metadata": {"name": "p", "namespace": "team-a"}, "spec": pod_spec()})
    verdict = evaluate(plan([LIMIT], pod, {}, node_platforms=MIXED), context({APP: amd64_only}))
    assert verdict.findings == ()
    assert verdict.platforms.platforms == (AMD64, ARM64)


def test_an_image_with_no_variant_for_any_platform_the_nodes_run_is_a_platforms_violation_naming_them() -> None:
    amd64_only = facts(SMALL_AMD64)
    pod = normalise("Pod", {"metadata": {"name": "p", "namespace": "team-a"}, "spec": pod_spec()})
    verdict = evaluate(plan([LIMIT], pod, {}, node_platforms=frozenset({ARM64})), context({APP: amd64_only}))
    (finding,) = verdict.violations
    assert finding.rule == "platforms"
    assert "has no linux/arm64/v8 image (it has linux/amd64); the nodes it may run on run linux/arm64/v8." in (
        finding.message
    )
