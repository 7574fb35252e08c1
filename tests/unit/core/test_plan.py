"""The plan: what rules need fetched per image, the one source both evaluation and the facts sources read."""

from __future__ import annotations

from slimguard.core.evaluation.plan import base_candidates, needs_of, plan, policy_reads
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.platform import Platform

from .builders import AMD64, APP, policy, workload

ARM64 = Platform("linux", "arm64")


def test_a_policy_with_only_require_digest_needs_nothing_from_a_registry() -> None:
    assert needs_of(policy(rules={"requireDigest": True}).spec.rules) is None
    assert plan([policy(rules={"requireDigest": True})], workload(), {}).needs == {}


def test_size_rules_need_the_default_platform_and_only_the_uncompressed_rule_needs_layer_sizes() -> None:
    assert needs_of(policy(rules={"maxCompressedSize": "200Mi"}).spec.rules) == FactsNeeds(frozenset({AMD64}))
    assert needs_of(policy(rules={"maxUncompressedSize": "1Gi"}).spec.rules) == FactsNeeds(
        frozenset({AMD64}), uncompressed=True
    )


def test_every_rule_that_reads_the_image_needs_its_manifest() -> None:
    for rules in (
        {"maxLayers": 3},
        {"allowedBaseImages": ["*/node:*-alpine"]},
        {"deniedBaseImages": ["*/debian:*"]},
        {"requireNonRootUser": True},
        {"platforms": ["linux/arm64"]},
        {"vulnerabilities": {"maxCritical": 0}},
    ):
        assert needs_of(policy(rules=rules).spec.rules) is not None, rules


def test_needs_of_several_policies_on_one_image_are_united() -> None:
    sizes = policy("sizes", rules={"maxUncompressedSize": "1Gi"})
    arm = policy("arm", rules={"platforms": ["linux/arm64"]})
    assert plan([sizes, arm], workload(), {}).needs == {APP: FactsNeeds(frozenset({AMD64, ARM64}), uncompressed=True)}


def test_base_references_are_read_only_when_some_policy_has_a_base_rule_and_then_pooled() -> None:
    known_only = policy("known", rules={"maxLayers": 9}, knownBaseImages=["docker.io/library/debian:12"])
    assert base_candidates([known_only]) == ()
    denies = policy("denies", rules={"deniedBaseImages": ["*/debian:*", "docker.io/library/node:20"]})
    assert base_candidates([known_only, denies]) == ("docker.io/library/debian:12", "docker.io/library/node:20")


def test_the_plan_matches_each_policy_once_and_hands_down_its_selection_and_what_it_reads() -> None:
    sizes = policy("sizes", rules={"maxUncompressedSize": "1Gi"})
    bases = policy("bases", rules={"allowedBaseImages": ["docker.io/library/node:20"]}, slimmerBases={})
    scans = policy("scans", rules={"vulnerabilities": {"maxCritical": 0}})
    elsewhere = policy("elsewhere", match={"namespaces": ["other"]})
    chosen = plan([sizes, bases, scans, elsewhere], workload(), {})
    assert [selected.policy.name for selected in chosen.selection] == ["sizes", "bases", "scans"]
    assert chosen.policies == (sizes, bases, scans)
    assert all([c.image for c in selected.containers] == [APP] for selected in chosen.selection)
    assert chosen.needs == {APP: FactsNeeds(frozenset({AMD64}), uncompressed=True)}
    assert chosen.policies_by_image == {APP: (sizes, bases, scans)}
    assert chosen.bases == ("docker.io/library/node:20",)
    assert chosen.base_needs == FactsNeeds(frozenset({AMD64}))
    assert (chosen.reads.bases, chosen.reads.reports, chosen.reads.base_versions) == (True, True, False)


def test_slimmer_base_hints_read_bases_and_require_current_base_reads_their_versions_too() -> None:
    hints = policy("hints", rules={"requireDigest": True}, slimmerBases={})
    assert policy_reads(hints).bases
    assert policy_reads(hints).facts is None
    current = policy_reads(policy("current", rules={"requireCurrentBase": True}))
    assert (current.bases, current.base_versions, current.reports) == (True, True, False)
    assert not policy_reads(policy("sizes", rules={"maxLayers": 3})).bases


def test_nothing_is_read_of_bases_when_no_image_is_read() -> None:
    pinned = policy("pinned", rules={"requireDigest": True}, knownBaseImages=["docker.io/library/debian:12"])
    hints = policy("hints", rules={"requireDigest": True}, slimmerBases={})
    chosen = plan([pinned, hints], workload(), {})
    assert chosen.needs == {}
    assert chosen.bases == ()
