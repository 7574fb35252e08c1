"""The cluster view answers from indexes what the watches told it: current ReplicaSets, reports, policies."""

from __future__ import annotations

from typing import Any

import pytest

from slimguard.core.model.workload import WorkloadKey, normalise
from slimguard.engine.view import ClusterView, parse_namespaces


def replicaset(name: str, deployment: str, revision: int, namespace: str = "shop") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Deployment", "name": deployment, "controller": True}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "x"}]}}},
    }


def observe_rs(view: ClusterView, body: dict[str, Any], deleted: bool = False) -> WorkloadKey | None:
    return view.observe_replicaset(normalise("ReplicaSet", body), deleted=deleted)


def deployment(name: str, namespace: str = "shop") -> Any:
    return normalise("Deployment", {"metadata": {"name": name, "namespace": namespace}, "spec": {}})


def report(name: str, kind: str, resource: str, namespace: str = "shop", digest: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "trivy-operator.resource.kind": kind,
                "trivy-operator.resource.name": resource,
                "trivy-operator.resource.namespace": namespace,
                "trivy-operator.container.name": "api",
            },
        },
        "report": {"artifact": {"digest": digest} if digest else {}, "summary": {"criticalCount": 1}},
    }


def test_a_deployments_reports_come_from_its_highest_revision_replicaset() -> None:
    view = ClusterView()
    observe_rs(view, replicaset("api-1", "api", 1))
    observe_rs(view, replicaset("api-2", "api", 2))
    observe_rs(view, replicaset("other-9", "other", 9))
    observe_rs(view, replicaset("api-3", "api", 3, namespace="elsewhere"))
    assert view.report_owners(deployment("api")) == (("ReplicaSet", "api-2"),)
    observe_rs(view, replicaset("api-2", "api", 2), deleted=True)
    assert view.report_owners(deployment("api")) == (("ReplicaSet", "api-1"),)


def test_a_replicaset_deleted_by_name_alone_is_forgotten_as_its_deployments_current_one() -> None:
    # What the informer hands on for an object it found gone by listing again: namespace, name and uid.
    view = ClusterView()
    observe_rs(view, replicaset("api-1", "api", 1))
    observe_rs(view, replicaset("api-2", "api", 2))
    observe_rs(view, {"metadata": {"name": "api-2", "namespace": "shop", "uid": "u2"}}, deleted=True)
    assert view.report_owners(deployment("api")) == (("ReplicaSet", "api-1"),)
    observe_rs(view, {"metadata": {"name": "api-1", "namespace": "shop", "uid": "u1"}}, deleted=True)
    assert view.report_owners(deployment("api")) == ()
    assert view.replicasets == {}


def test_a_new_current_replicaset_names_its_deployment_for_re_evaluation() -> None:
    view = ClusterView()
    assert observe_rs(view, replicaset("api-1", "api", 1)) == WorkloadKey("Deployment", "shop", "api")
    assert observe_rs(view, replicaset("api-1", "api", 1)) is None  # nothing changed


def test_a_replicaset_report_is_routed_to_the_owning_deployment_and_indexed_by_namespace() -> None:
    view = ClusterView()
    observe_rs(view, replicaset("api-1", "api", 1))
    change = view.observe_report(report("rs-api", "ReplicaSet", "api-1"))
    assert change is not None
    assert change.owner == WorkloadKey("Deployment", "shop", "api")
    view.observe_report(report("other-ns", "Pod", "p", namespace="team"))
    assert [r.name for r in view.own_reports("shop", [("ReplicaSet", "api-1")])] == ["rs-api"]
    assert view.own_reports("shop", [("Pod", "p")]) == []
    view.observe_report(report("rs-api", "ReplicaSet", "api-1"), deleted=True)
    assert view.own_reports("shop", [("ReplicaSet", "api-1")]) == []


def test_a_report_deleted_while_no_watch_ran_is_routed_by_what_was_recorded_of_it() -> None:
    """A LIST after an expired watch finds a report gone and knows only its name: the record says whose it was."""
    view = ClusterView()
    observe_rs(view, replicaset("api-1", "api", 1))
    view.observe_report(report("rs-api", "ReplicaSet", "api-1", digest=DIGEST))
    gone = {"metadata": {"namespace": "shop", "name": "rs-api", "uid": "u-1"}}
    change = view.observe_report(gone, deleted=True)
    assert change is not None
    assert (change.owner, change.digests) == (WorkloadKey("Deployment", "shop", "api"), frozenset({DIGEST}))
    assert view.own_reports("shop", [("ReplicaSet", "api-1")]) == []
    assert view.digest_reports("shop", DIGEST) == ()
    assert view.observe_report(gone, deleted=True) is None, "a report never seen names no workload"


def test_dropping_the_reports_empties_every_index() -> None:
    view = ClusterView()
    view.observe_report(report("rs-api", "ReplicaSet", "api-1", digest=DIGEST))
    view.forget_reports()
    assert (view.reports, view.own_reports("shop", [("ReplicaSet", "api-1")])) == ({}, [])
    assert view.digest_reports("shop", DIGEST) == ()


DIGEST = "sha256:" + "d" * 64
REBUILT = "sha256:" + "e" * 64


def names(groups: Any) -> list[str]:
    return sorted(r.name for group in groups for r in group)


def test_reports_are_indexed_by_digest_across_namespaces_and_follow_updates() -> None:
    view = ClusterView()
    view.observe_report(report("rs-api", "ReplicaSet", "api-1", digest=DIGEST))
    view.observe_report(report("rs-web", "ReplicaSet", "web-1", namespace="team", digest=DIGEST))
    assert names(view.digest_reports("elsewhere", DIGEST)) == ["rs-api", "rs-web"]
    change = view.observe_report(report("rs-web", "ReplicaSet", "web-1", namespace="team", digest=REBUILT))
    assert change is not None
    assert change.digests == frozenset({DIGEST, REBUILT})  # workloads on either may need a new verdict
    assert names(view.digest_reports("elsewhere", DIGEST)) == ["rs-api"]
    assert names(view.digest_reports("elsewhere", REBUILT)) == ["rs-web"]
    view.observe_report(report("rs-api", "ReplicaSet", "api-1", digest=DIGEST), deleted=True)
    assert names(view.digest_reports("elsewhere", DIGEST)) == []


def test_reports_of_untrusted_namespaces_speak_only_for_their_own_namespace() -> None:
    view = ClusterView(trusted_report_namespaces=["shop"])
    view.observe_report(report("rs-api", "ReplicaSet", "api-1", digest=DIGEST))
    view.observe_report(report("forged", "ReplicaSet", "x-1", namespace="team", digest=DIGEST))
    assert names(view.digest_reports("elsewhere", DIGEST)) == ["rs-api"]
    assert names(view.digest_reports("team", DIGEST)) == ["forged", "rs-api"]
    view.observe_report(report("forged", "ReplicaSet", "x-1", namespace="team", digest=DIGEST), deleted=True)
    assert names(view.digest_reports("team", DIGEST)) == ["rs-api"]


def test_a_report_whose_owner_name_is_in_trivys_annotation_is_routed_to_the_deployment() -> None:
    view = ClusterView()
    long_rs = "a" * 59 + "-5d9c8b7f4c"
    observe_rs(view, replicaset(long_rs, "a" * 59, 1))
    body = report("replicaset-8dbfc447", "ReplicaSet", long_rs)
    labels = body["metadata"]["labels"]
    labels["trivy-operator.resource.name-hash"] = "6d9b4c5b8f"
    body["metadata"]["annotations"] = {"trivy-operator.resource.name": labels.pop("trivy-operator.resource.name")}
    change = view.observe_report(body)
    assert change is not None
    assert change.owner == WorkloadKey("Deployment", "shop", "a" * 59)


def test_only_a_new_generation_of_a_policy_counts_as_a_change() -> None:
    view = ClusterView()
    body = {"metadata": {"name": "slim", "generation": 1}, "spec": {"rules": {"maxLayers": 3}}}
    assert view.observe_policy(body)
    assert not view.observe_policy({**body, "status": {"observedGeneration": 1}})
    assert view.observe_policy({**body, "metadata": {"name": "slim", "generation": 2}})
    assert view.observe_policy(body, deleted=True)
    assert view.active_policies == []


def test_an_invalid_policy_is_kept_with_its_error_and_not_applied() -> None:
    view = ClusterView()
    view.observe_policy({"metadata": {"name": "bad", "generation": 1}, "spec": {"rules": {"maxLayers": 0}}})
    assert view.active_policies == []
    error = view.policies["bad"].error
    assert error is not None
    assert "spec.rules.maxLayers" in error


def test_trusted_report_namespaces_are_read_from_comma_separated_and_repeated_flags() -> None:
    assert parse_namespaces(None) is None
    assert parse_namespaces(["trivy-system, shop", "team"]) == frozenset({"trivy-system", "shop", "team"})
    with pytest.raises(ValueError, match="names no namespace"):
        parse_namespaces([" , "])


def policy_body(generation: int, rules: dict[str, Any], name: str = "slim") -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": generation}, "spec": {"rules": rules}}


TOO_OLD = {"vulnerabilities": {"maxCritical": 0, "maxReportAge": "99999999999999999999d"}}


def test_a_new_policy_the_model_cannot_hold_is_recorded_as_invalid_instead_of_raising() -> None:
    view = ClusterView()
    assert view.observe_policy(policy_body(1, TOO_OLD))
    record = view.policies["slim"]
    assert (record.generation, record.policy) == (1, None)
    assert record.error is not None
    assert record.error.startswith("generation 1 is invalid: ")
    assert "spec.rules.vulnerabilities.maxReportAge" in record.error
    assert record.error.endswith(
        "no earlier generation is known to be valid, so the policy applies nothing until fixed"
    )
    assert view.active_policies == []


def test_an_invalid_update_keeps_the_last_valid_generation_applying_and_says_so() -> None:
    """A safety tool must not drop its rules because of a typo: bloated images would get in meanwhile."""
    view = ClusterView()
    view.observe_policy(policy_body(1, {"maxLayers": 3}))
    assert view.observe_policy(policy_body(2, TOO_OLD))  # a change: the status must be rewritten
    record = view.policies["slim"]
    assert record.generation == 2
    assert [(p.generation, p.spec.rules.max_layers) for p in view.active_policies] == [(1, 3)]
    assert record.error is not None
    assert record.error.startswith("generation 2 is invalid: ")
    assert "maxReportAge" in record.error
    assert record.error.endswith("; generation 1 keeps applying until it is fixed")

    # Still invalid at generation 3: generation 1 still applies.
    view.observe_policy(policy_body(3, {"maxLayers": 0}))
    assert [p.generation for p in view.active_policies] == [1]
    assert view.policies["slim"].error is not None
    assert view.policies["slim"].error.endswith("; generation 1 keeps applying until it is fixed")

    # Fixed at generation 4: it applies, and the error is gone.
    view.observe_policy(policy_body(4, {"maxLayers": 5}))
    assert [(p.generation, p.spec.rules.max_layers) for p in view.active_policies] == [(4, 5)]
    assert view.policies["slim"].error is None


def counted_report(name: str, namespace: str, digest: str, critical: int, high: int = 0) -> dict[str, Any]:
    body = report(name, "ReplicaSet", name, namespace=namespace, digest=digest)
    body["report"]["summary"] = {"criticalCount": critical, "highCount": high, "mediumCount": 0, "lowCount": 3}
    return body


def test_an_images_vulnerabilities_are_the_worst_report_for_any_of_its_digests() -> None:
    view = ClusterView(trusted_report_namespaces=["trivy-system"])
    view.observe_report(counted_report("index-scan", "trivy-system", "sha256:index", critical=1, high=9))
    view.observe_report(counted_report("platform-scan", "trivy-system", "sha256:amd64", critical=2))
    view.observe_report(counted_report("own-scan", "shop", "sha256:amd64", critical=7))
    worst = view.image_vulnerabilities("web", ["sha256:index", "sha256:amd64"])
    assert worst is not None
    assert (worst.critical, worst.high, worst.low) == (2, 0, 3)
    # shop's own report speaks for shop only (it is not trusted elsewhere)
    own = view.image_vulnerabilities("shop", ["sha256:index", "sha256:amd64"])
    assert own is not None
    assert own.critical == 7
    assert view.image_vulnerabilities("web", ["sha256:unscanned"]) is None
