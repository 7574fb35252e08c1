"""Images decided by default: whose facts could not be had, so onUnknown decided every rule on them; and the
registries from which nothing could be read, where nothing is enforced."""

from __future__ import annotations

from core.builders import facts, policy, verdict, workload
from slimguard.core.errors import InspectionError
from slimguard.core.evaluation import enforcement
from slimguard.core.evaluation.enforcement import ImageDecision, RecentDecisions, decisions, tally
from slimguard.core.evaluation.verdict import Finding

PRIVATE = "10.0.0.5:5000"
UNTRUSTED = InspectionError(
    f"registry {PRIVATE} presents a certificate slimguard does not trust (certificate verify failed: unable to get "
    "local issuer certificate); give slimguard the CA that signed it with --ca-file (Helm: registries.caBundle)",
    reason="RegistryUntrusted",
)
MISSING = InspectionError("registry docker.io has no library/nginx (manifest 9.9)", reason="ImageNotFound")


def image(name: str, registry: str = PRIVATE) -> str:
    return f"{registry}/shop/{name}:1.0"


def test_an_image_whose_facts_could_not_be_had_is_decided_by_default_and_one_read_is_not() -> None:
    read, unread = image("read"), image("unread")
    found = decisions(verdict(policy(), workload(read, unread), {read: facts(), unread: UNTRUSTED}))
    assert [(d.image, d.by_default, d.registry) for d in found] == [(read, False, PRIVATE), (unread, True, PRIVATE)]
    (unread_decision,) = [d for d in found if d.unread is not None]
    assert unread_decision.unread is not None
    assert unread_decision.unread.reason == "RegistryUntrusted"
    assert unread_decision.unread.detail == str(UNTRUSTED), "the client's words, without the container"


def test_a_rule_left_undecided_on_an_image_that_was_read_is_not_a_decision_by_default() -> None:
    """A named base that cannot be read is an error finding, but the image's own rules decided it."""
    app, base = image("app"), "docker.io/library/node:20-bookworm"
    strict = policy(rules={"maxLayers": 30, "deniedBaseImages": ["*/node:*-bookworm"]}, knownBaseImages=[base])
    judged = verdict(strict, workload(app), {app: facts()}, base_candidates={base: UNTRUSTED})
    assert judged.errors, "the base rule is undecided"
    assert [d.by_default for d in decisions(judged)] == [False]


def test_images_a_policy_needs_no_facts_of_and_images_not_read_yet_are_not_counted() -> None:
    digest_only = policy("digests", rules={"requireDigest": True})
    assert decisions(verdict(digest_only, workload(image("a")), {})) == []
    assert decisions(verdict(policy(), workload(image("a")), {})) == [], "pending: nothing decided yet"


def test_decisions_are_per_policy_when_a_policy_is_named() -> None:
    app = image("app")
    both = verdict([policy("a"), policy("b", rules={"requireDigest": True})], workload(app), {app: UNTRUSTED})
    assert [d.image for d in decisions(both, "a")] == [app]
    assert decisions(both, "b") == []


def test_a_registry_none_of_whose_images_could_be_read_enforces_nothing_and_is_named_with_its_cause() -> None:
    unread = [ImageDecision(image(f"app-{n}"), unread_finding(image(f"app-{n}"))) for n in range(12)]
    counted = tally([*unread, ImageDecision(image("public", "docker.io"))])
    assert (counted.images, counted.by_default, counted.reason) == (13, 12, enforcement.FACTS_UNAVAILABLE)
    assert counted.degraded
    assert [tally.registry for tally in counted.unenforced] == [PRIVATE]
    assert counted.describe(within="in use") == (
        f"12 of 13 images in use decided by onUnknown, not by their facts: registry {PRIVATE}, 12 of 12 "
        f"(RegistryUntrusted: {UNTRUSTED})"
    )


def test_an_image_missing_among_images_read_from_the_same_registry_is_named_but_enforcement_holds() -> None:
    missing = "docker.io/library/nginx:9.9"
    counted = tally(
        [
            ImageDecision(missing, unread_finding(missing, MISSING)),
            ImageDecision("docker.io/library/nginx:1.27"),
            ImageDecision(image("app")),
        ]
    )
    assert (counted.reason, counted.degraded) == (enforcement.SOME_FACTS_UNAVAILABLE, False)
    assert counted.describe() == (
        f"1 of 3 images decided by onUnknown, not by their facts: registry docker.io, 1 of 2 (ImageNotFound: {MISSING})"
    )


def test_one_image_in_many_workloads_counts_once_and_by_default_if_any_of_them_could_not_read_it() -> None:
    app = image("app")
    counted = tally([ImageDecision(app), ImageDecision(app, unread_finding(app)), ImageDecision(app)])
    assert (counted.images, counted.by_default) == (1, 1)


def test_reasons_are_counted_commonest_first_and_nothing_read_is_said_plainly() -> None:
    apps = [image(f"app-{n}") for n in range(3)]
    refused = InspectionError(f"registry host {PRIVATE} is a private address", reason="RegistryRefused")
    counted = tally(
        [
            ImageDecision(apps[0], unread_finding(apps[0], refused)),
            ImageDecision(apps[1], unread_finding(apps[1], UNTRUSTED)),
            ImageDecision(apps[2], unread_finding(apps[2], refused)),
        ]
    )
    (registry,) = counted.registries
    assert registry.reasons == (("RegistryRefused", 2), ("RegistryUntrusted", 1))
    assert registry.describe() == f"registry {PRIVATE}, 3 of 3 (RegistryRefused 2, RegistryUntrusted 1: {refused})"
    assert tally([]).reason == enforcement.NO_IMAGES_CHECKED
    assert tally([]).describe(within="reviewed in the last 5 min") == "no images reviewed in the last 5 min"
    assert tally([ImageDecision(apps[0])]).describe() == "all 1 images decided by their facts"


def test_only_three_registries_are_spelt_out() -> None:
    unread = [ImageDecision(f"r{n}.example.com/a:1", unread_finding(f"r{n}.example.com/a:1")) for n in range(5)]
    assert tally(unread).describe().endswith("; and 2 more registries")


def test_recent_decisions_keep_each_image_as_last_decided_within_the_window() -> None:
    recent = RecentDecisions(window=300)
    app, other = image("app"), image("other")
    recent.record([ImageDecision(app, unread_finding(app))], now=0)
    recent.record([ImageDecision(other)], now=100)
    assert (recent.enforcement(now=200).images, recent.enforcement(now=200).by_default) == (2, 1)
    recent.record([ImageDecision(app)], now=250)  # read now: the CA was mounted
    assert recent.enforcement(now=260).by_default == 0
    assert recent.enforcement(now=401).images == 1, "the other image was last decided more than 5 min ago"
    assert recent.enforcement(now=551).images == 0
    assert recent.window_text == "in the last 5 min"
    assert RecentDecisions(window=90).window_text == "in the last 90 s"


def test_recent_decisions_hold_at_most_their_limit_dropping_the_least_recent() -> None:
    recent = RecentDecisions(limit=3)
    for n in range(5):
        recent.record([ImageDecision(image(f"app-{n}"))], now=n)
    counted = recent.enforcement(now=5)
    assert counted.images == 3


def unread_finding(image_ref: str, error: InspectionError = UNTRUSTED) -> Finding:
    (finding,) = verdict(policy(), workload(image_ref), {image_ref: error}).errors
    return finding
