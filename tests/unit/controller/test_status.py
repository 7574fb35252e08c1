"""ImagePolicy status says what applies: Ready for the observed generation, and where base detection is blind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slimguard.controller.status import policy_status
from slimguard.core.policy import ImagePolicy
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
    assert [c["type"] for c in status["conditions"]] == ["Ready"]


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    view = ClusterView()
    view.observe_policy(body(1, {"rules": {"deniedBaseImages": ["*/debian:*"]}}))
    first = status_of(view)
    later = policy_status(
        "slim", 1, None, [], last_audit=None, previous=first, now=datetime(2026, 11, 28, tzinfo=UTC),
        policy=view.policies["slim"].policy,
    )  # fmt: skip
    assert later["conditions"] == first["conditions"]
