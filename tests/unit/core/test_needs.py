"""What rules need fetched per image: the one source both evaluation and the facts sources read."""

from __future__ import annotations

from slimguard.core.facts import FactsNeeds, Platform
from slimguard.core.needs import base_candidates, image_needs, needs_of

from .builders import AMD64, APP, policy, workload

ARM64 = Platform("linux", "arm64")


def test_a_policy_with_only_require_digest_needs_nothing_from_a_registry() -> None:
    assert needs_of(policy(rules={"requireDigest": True}).spec.rules) is None
    assert image_needs([policy(rules={"requireDigest": True})], workload(), {}) == {}


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
    assert image_needs([sizes, arm], workload(), {}) == {APP: FactsNeeds(frozenset({AMD64, ARM64}), uncompressed=True)}


def test_base_references_are_read_only_when_some_policy_has_a_base_rule_and_then_pooled() -> None:
    known_only = policy("known", rules={"maxLayers": 9}, knownBaseImages=["docker.io/library/debian:12"])
    assert base_candidates([known_only]) == ()
    denies = policy("denies", rules={"deniedBaseImages": ["*/debian:*", "docker.io/library/node:20"]})
    assert base_candidates([known_only, denies]) == ("docker.io/library/debian:12", "docker.io/library/node:20")
