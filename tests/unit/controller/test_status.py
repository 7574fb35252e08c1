"""ImagePolicy status says what applies: Ready for the observed generation, and where base detection is blind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.builders import facts, verdict, workload

from slimguard.controller.status import policy_status
from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import Verdict
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy
from slimguard.engine.view import ClusterView

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def status_of(view: ClusterView, name: str = "slim", previous: dict[str, Any] | None = None) -> dict[str, Any]:
    record = view.policies[name]
    return policy_status(
        record.name, record.generation, record.error, [], last_audit=None, previous=previous, now=NOW,
        policy=record.policy,
    )  # fmt: skip


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == kind), None)


def body(generation: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "slim", "generation": generation}, "spec": spec}


def test_an_invalid_update_is_ready_false_for_the_new_generation_naming_the_one_that_applies() -> None:
    view = ClusterView()
    view.observe_policy(body(1, {"rules": {"maxLayers": 3}}))
    ready = condition(status_of(view), "Ready")
    assert ready is not None
    assert (ready["status"], ready["observedGeneration"]) == ("True", 1)

    view.observe_policy(
        body(2, {"rules": {"vulnerabilities": {"maxHigh": 0, "maxReportAge": "99999999999999999999d"}}})
    )
    status = status_of(view)
    assert status["observedGeneration"] == 2
    ready = condition(status, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "InvalidPolicy", 2)
    assert ready["message"].startswith("generation 2 is invalid: ")
    assert "spec.rules.vulnerabilities.maxReportAge" in ready["message"]
    assert ready["message"].endswith("generation 1 keeps applying until it is fixed")


def test_glob_only_base_rules_get_a_base_detection_condition_saying_they_match_by_annotation_only() -> None:
    view = ClusterView()
    view.observe_policy(body(1, {"rules": {"deniedBaseImages": ["*/node:*-bookworm"]}}))
    detection = condition(status_of(view), "BaseDetection")
    assert detection is not None
    assert (detection["status"], detection["reason"], detection["observedGeneration"]) == ("False", "AnnotationOnly", 1)
    assert "deniedBaseImages */node:*-bookworm" in detection["message"]
    assert "knownBaseImages" in detection["message"]

    view.observe_policy(
        body(2, {"rules": {"deniedBaseImages": ["*/node:*-bookworm"]}, "knownBaseImages": ["node:20-bookworm"]})
    )
    detection = condition(status_of(view), "BaseDetection")
    assert detection is not None
    assert (detection["status"], detection["reason"]) == ("True", "LayersAndAnnotations")


def test_a_policy_without_base_rules_has_no_base_detection_condition() -> None:
    policy = ImagePolicy.from_resource("slim", {"rules": {"maxLayers": 3}}, 1)
    status = policy_status("slim", 1, None, [], last_audit=None, previous=None, now=NOW, policy=policy)
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Enforcing", "Platforms"]


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    view = ClusterView()
    view.observe_policy(body(1, {"rules": {"deniedBaseImages": ["*/debian:*"]}}))
    first = status_of(view)
    later = policy_status(
        "slim", 1, None, [], last_audit=None, previous=first, now=datetime(2026, 11, 28, tzinfo=UTC),
        policy=view.policies["slim"].policy,
    )  # fmt: skip
    assert later["conditions"] == first["conditions"]


# -- Enforcing: the rules decide, or onUnknown does ------------------------------------------------------------

PRIVATE = "10.0.0.5:5000"
UNTRUSTED = InspectionError(
    f"registry {PRIVATE} presents a certificate slimguard does not trust (certificate verify failed: unable to get "
    "local issuer certificate); give slimguard the CA that signed it with --ca-file (Helm: registries.caBundle)",
    reason="RegistryUntrusted",
)


def enforcing_of(spec: dict[str, Any], *verdicts: Verdict, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    policy = ImagePolicy.from_resource("slim", spec, 1)
    status = policy_status("slim", 1, None, verdicts, last_audit=None, previous=previous, now=NOW, policy=policy)
    found = condition(status, "Enforcing")
    assert found is not None
    return found


def judged(spec: dict[str, Any], answers: dict[str, Any], name: str = "api") -> Verdict:
    return verdict(ImagePolicy.from_resource("slim", spec, 1), workload(*answers, name=name), answers)


SIZE = {"rules": {"maxCompressedSize": "200Mi"}}
ENFORCE = {**SIZE, "mode": "Enforce"}


def test_enforcing_is_false_naming_the_registry_and_its_cause_when_nothing_from_it_could_be_read() -> None:
    images = {f"{PRIVATE}/shop/app-{n}:1.0": UNTRUSTED for n in range(3)}
    found = enforcing_of(ENFORCE, judged(ENFORCE, images), judged(ENFORCE, images, name="again"))
    assert (found["status"], found["reason"], found["observedGeneration"]) == ("False", "FactsUnavailable", 1)
    assert found["message"] == (
        f"nothing from registry {PRIVATE} is enforced: 3 of 3 images decided by onUnknown, not by their facts: "
        f"registry {PRIVATE}, 3 of 3 (RegistryUntrusted: {UNTRUSTED}); admitted unchecked (onUnknown: Allow)"
    )


def test_enforcing_says_what_onunknown_does_in_each_mode() -> None:
    images = {f"{PRIVATE}/shop/app:1.0": UNTRUSTED}
    deny = {**ENFORCE, "onUnknown": "Deny"}
    assert enforcing_of(deny, judged(deny, images))["message"].endswith("; denied (onUnknown: Deny)")
    audit = {**SIZE, "mode": "Audit"}
    audited = enforcing_of(audit, judged(audit, images))["message"]
    assert audited.startswith(f"nothing from registry {PRIVATE} is checked: ")
    assert audited.endswith("; recorded as errors")


def test_enforcing_holds_while_every_registry_answers_for_some_of_its_images() -> None:
    missing = InspectionError("registry docker.io has no library/nginx (manifest 9.9)", reason="ImageNotFound")
    answers = {"docker.io/library/nginx:9.9": missing, "docker.io/library/nginx:1.27": facts()}
    found = enforcing_of(ENFORCE, judged(ENFORCE, answers))
    assert (found["status"], found["reason"]) == ("True", "SomeFactsUnavailable")
    assert "1 of 2 images decided by onUnknown" in found["message"]
    assert "ImageNotFound" in found["message"]

    read = enforcing_of(ENFORCE, judged(ENFORCE, {"docker.io/library/nginx:1.27": facts()}))
    assert (read["status"], read["reason"]) == ("True", "FactsRead")
    assert read["message"] == "the rules decide: all 1 images decided by their facts"


def test_enforcing_is_unknown_before_any_image_is_checked_and_true_for_rules_that_read_nothing() -> None:
    nothing = enforcing_of(ENFORCE)
    assert (nothing["status"], nothing["reason"]) == ("Unknown", "NoImagesChecked")
    digests = {"rules": {"requireDigest": True}}
    unread = {f"{PRIVATE}/shop/app:1.0": UNTRUSTED}
    assert enforcing_of(digests, judged(digests, unread))["reason"] == "NoFactsNeeded"


def test_enforcing_turns_true_with_a_new_transition_time_once_the_registry_is_read() -> None:
    app = f"{PRIVATE}/shop/app:1.0"
    before = policy_status(
        "slim", 1, None, [judged(ENFORCE, {app: UNTRUSTED})], last_audit=None, previous=None,
        now=datetime(2026, 11, 26, tzinfo=UTC), policy=ImagePolicy.from_resource("slim", ENFORCE, 1),
    )  # fmt: skip
    after = enforcing_of(ENFORCE, judged(ENFORCE, {app: facts()}), previous=before)
    assert (after["status"], after["lastTransitionTime"]) == ("True", "2026-11-27T12:00:00Z")
    still = enforcing_of(ENFORCE, judged(ENFORCE, {app: UNTRUSTED}), previous=before)
    assert still["lastTransitionTime"] == "2026-11-26T00:00:00Z"


def test_a_policy_that_applies_nothing_has_no_enforcing_condition() -> None:
    status = policy_status("slim", 2, "generation 2 is invalid", [], last_audit=None, previous=None, now=NOW)
    assert [c["type"] for c in status["conditions"]] == ["Ready"]


def test_the_status_says_which_platforms_were_judged_and_that_the_default_was_when_no_node_is_known() -> None:
    amd64, arm64 = Platform("linux", "amd64"), Platform("linux", "arm64", "v8")
    policy = ImagePolicy.from_resource("slim", {"rules": {"maxCompressedSize": "200Mi"}}, 1)
    nodes = {amd64, arm64}
    judged = Verdict(
        workload=workload().key,
        policies=("slim",),
        platforms=plan([policy], workload(), {}, node_platforms=nodes).platforms,
    )

    def status(verdicts: list[Verdict], nodes: set[Platform], chosen: ImagePolicy = policy) -> dict[str, Any]:
        return policy_status(
            "slim", 1, None, verdicts, last_audit=None, previous=None, now=NOW, policy=chosen, node_platforms=nodes
        )

    from_nodes = status([judged], {amd64, arm64})
    assert from_nodes["judgedPlatforms"] == ["linux/amd64", "linux/arm64/v8"]
    said = condition(from_nodes, "Platforms")
    assert said is not None
    assert (said["status"], said["reason"]) == ("True", "NodePlatforms")
    assert "Ready nodes run (linux/amd64, linux/arm64/v8)" in said["message"]

    unknown = status([], set())
    assert unknown["judgedPlatforms"] == ["linux/amd64"]
    said = condition(unknown, "Platforms")
    assert said is not None
    assert (said["status"], said["reason"]) == ("False", "NoReadyNodes")
    assert "linux/amd64 is judged by default" in said["message"]

    listed = ImagePolicy.from_resource("slim", {"rules": {"maxLayers": 9, "platforms": ["linux/arm64"]}}, 1)
    own = status([judged], {amd64}, listed)
    assert own["judgedPlatforms"] == ["linux/arm64"]
    assert condition(own, "Platforms")["reason"] == "PolicyPlatforms"  # type: ignore[index]
