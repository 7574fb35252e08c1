"""Verdicts as PolicyReport results: one per policy and rule, mapped by mode, bounded, stable when unchanged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slimguard.core.errors import InspectionError
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.reports import policy_report as pr

from .builders import APP, NOW, MiB, container, facts, layers, platform_image, policy, verdict, workload

FAT = facts(platform_image(*layers("fat", 4, 100 * MiB), user=""))
RESOURCE = pr.ResourceRef("apps/v1", "Deployment", "team-a", "api", "0b8e6c3a-uid")


def by_rule(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["policy"], r["rule"]): r for r in results}


def results(policies: list[ImagePolicy], **kwargs: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return by_rule(pr.results_for(verdict(policies, **kwargs), policies))


def test_one_result_per_policy_and_rule_it_sets_each_from_slimguard() -> None:
    size = policy("size", rules={"maxCompressedSize": "200Mi", "maxLayers": 30, "requireNonRootUser": True})
    digest_only = policy("pinned", rules={"requireDigest": True})
    found = results([size, digest_only], facts_by_image={APP: FAT})
    assert sorted(found) == [
        ("pinned", "requireDigest"),
        ("size", "maxCompressedSize"),
        ("size", "maxLayers"),
        ("size", "requireNonRootUser"),
    ]
    assert {r["source"] for r in found.values()} == {"slimguard"}
    assert found["size", "maxCompressedSize"]["result"] == "fail"
    assert found["size", "maxCompressedSize"]["message"].startswith('container "app": image')
    assert found["size", "maxCompressedSize"]["properties"] == {
        "mode": "Audit",
        "containers": "app",
        "limit": "200 MiB",
        "actual": "400 MiB",
    }
    assert found["size", "requireNonRootUser"]["result"] == "fail"
    assert found["size", "maxLayers"] == {
        "source": "slimguard",
        "policy": "size",
        "rule": "maxLayers",
        "result": "pass",
        "message": "every container complies with maxLayers",
        "scored": True,
        "properties": {"mode": "Audit"},
    }
    assert found["pinned", "requireDigest"]["result"] == "fail"


def test_every_vulnerability_limit_is_one_result_of_the_vulnerabilities_rule() -> None:
    rules = {"vulnerabilities": {"maxCritical": 0, "onMissingReport": "Deny"}}
    found = results([policy("cves", rules=rules)])
    assert list(found) == [("cves", "vulnerabilities")]
    assert found["cves", "vulnerabilities"]["result"] == "fail"
    assert "onMissingReport: Deny" in found["cves", "vulnerabilities"]["message"]


def test_violations_fail_under_enforce_and_audit_and_warn_under_warn() -> None:
    rules = {"maxCompressedSize": "200Mi"}
    outcomes = {
        mode: results([policy(mode.lower(), rules=rules, mode=mode)], facts_by_image={APP: FAT})[
            mode.lower(), "maxCompressedSize"
        ]["result"]
        for mode in ("Enforce", "Audit", "Warn")
    }
    assert outcomes == {"Enforce": "fail", "Audit": "fail", "Warn": "warn"}


def test_an_image_that_cannot_be_read_is_an_error_for_every_rule_that_reads_it_but_not_require_digest() -> None:
    down = InspectionError("registry 127.0.0.1:1 is unreachable", reason="RegistryUnreachable")
    pinned = f"{APP.split(':1.0')[0]}@sha256:{'a' * 64}"
    rules = {"maxCompressedSize": "200Mi", "requireDigest": True}
    found = results([policy("p", rules=rules)], subject=workload(pinned), facts_by_image={pinned: down})
    assert found["p", "maxCompressedSize"]["result"] == "error"
    assert found["p", "maxCompressedSize"]["properties"]["reason"] == "RegistryUnreachable"
    assert found["p", "requireDigest"]["result"] == "pass"


def test_a_waived_violation_is_skipped_and_a_pending_image_is_skipped_until_read() -> None:
    exempt = policy(
        "p",
        rules={"maxCompressedSize": "200Mi", "requireDigest": True},
        exemptions=[{"images": ["registry.example.com/*"], "reason": "moving to distroless in Q3"}],
    )
    waived = results([exempt], facts_by_image={APP: FAT})["p", "maxCompressedSize"]
    assert (waived["result"], waived["properties"]["exempted"]) == ("skip", "true")
    assert waived["message"].startswith("exempted: ")
    pending = results([policy("p", rules={"maxCompressedSize": "200Mi", "requireDigest": True})], facts_by_image={})
    assert pending["p", "maxCompressedSize"]["result"] == "skip"
    assert pending["p", "maxCompressedSize"]["properties"]["pending"] == APP
    assert pending["p", "requireDigest"]["result"] == "fail"  # decided without the image


def test_two_containers_breaking_one_rule_are_one_result_naming_both() -> None:
    subject = workload(container(APP, "api"), container(APP, "sidecar"))
    found = results([policy("p", rules={"maxCompressedSize": "200Mi"})], subject=subject, facts_by_image={APP: FAT})
    result = found["p", "maxCompressedSize"]
    assert result["properties"]["containers"] == "api,sidecar"
    assert "limit" not in result["properties"]  # two findings: no single limit and actual to show


def test_only_the_policies_the_verdict_applied_are_reported() -> None:
    applies = policy("applies", rules={"maxLayers": 30})
    elsewhere = policy("elsewhere", rules={"maxLayers": 30}, match={"namespaces": ["other-*"]})
    assert list(results([applies, elsewhere])) == [("applies", "maxLayers")]


def test_the_report_is_scoped_to_and_owned_by_the_workload_with_a_summary() -> None:
    chosen = [policy("p", rules={"maxCompressedSize": "200Mi", "maxLayers": 30})]
    found = pr.results_for(verdict(chosen, facts_by_image={APP: FAT}), chosen)
    body = pr.report(api=pr.WGPOLICY, resource=RESOURCE, results=found, previous=None, now=NOW)
    assert (body["apiVersion"], body["kind"]) == ("wgpolicyk8s.io/v1alpha2", "PolicyReport")
    assert body["metadata"]["name"] == "slimguard-0b8e6c3a-uid"
    assert body["metadata"]["namespace"] == "team-a"
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "slimguard"}
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "0b8e6c3a-uid"}
    ]
    assert body["scope"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "team-a",
        "name": "api",
        "uid": "0b8e6c3a-uid",
    }
    assert body["summary"] == {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    assert {r["timestamp"]["seconds"] for r in body["results"]} == {int(NOW.timestamp())}
    assert "source" not in body  # wgpolicyk8s.io/v1alpha2 has no report-level source


def test_an_openreports_report_also_names_its_source() -> None:
    body = pr.report(api=pr.OPENREPORTS, resource=RESOURCE, results=[], previous=None, now=NOW)
    assert (body["apiVersion"], body["kind"], body["source"]) == ("openreports.io/v1alpha1", "Report", "slimguard")


def test_an_unchanged_verdict_gives_the_same_content_and_a_changed_result_a_new_timestamp() -> None:
    chosen = [policy("p", rules={"maxCompressedSize": "200Mi", "maxLayers": 30})]
    first = pr.report(
        api=pr.WGPOLICY,
        resource=RESOURCE,
        results=pr.results_for(verdict(chosen, facts_by_image={APP: FAT}), chosen),
        previous=None,
        now=NOW,
    )
    later = NOW + timedelta(hours=1)
    again = pr.report(
        api=pr.WGPOLICY,
        resource=RESOURCE,
        results=pr.results_for(verdict(chosen, facts_by_image={APP: FAT}), chosen),
        previous=pr.content_of(first),
        now=later,
    )
    assert pr.content_of(again) == pr.content_of(first)
    slimmed = pr.report(
        api=pr.WGPOLICY,
        resource=RESOURCE,
        results=pr.results_for(verdict(chosen), chosen),
        previous=pr.content_of(first),
        now=later,
    )
    stamps = {r["rule"]: (r["result"], r["timestamp"]["seconds"]) for r in slimmed["results"]}
    assert stamps == {
        "maxCompressedSize": ("pass", int(later.timestamp())),
        "maxLayers": ("pass", int(NOW.timestamp())),
    }


def test_a_report_keeps_the_worst_results_up_to_its_bound_and_says_how_many_it_left_out() -> None:
    many = [
        {"policy": f"p{n:03}", "rule": "maxLayers", "result": "pass" if n % 3 else "fail", "message": "m"}
        for n in range(150)
    ]
    body = pr.report(api=pr.WGPOLICY, resource=RESOURCE, results=many, previous=None, now=NOW)
    assert len(body["results"]) == pr.MAX_RESULTS
    assert body["summary"]["fail"] == 50  # every fail kept, passes fill the rest
    assert body["metadata"]["annotations"] == {pr.OMITTED_ANNOTATION: "50"}
    assert [r["policy"] for r in body["results"]] == sorted(r["policy"] for r in body["results"])


def test_a_long_message_is_cut_in_the_middle_and_keeps_its_fix() -> None:
    chosen = [policy("p", rules={"maxCompressedSize": "200Mi"})]
    subject = workload(container(APP, "c" * 3000))
    found = pr.results_for(verdict(chosen, subject=subject, facts_by_image={APP: FAT}), chosen)
    message = found[0]["message"]
    assert len(message) == pr.MAX_MESSAGE
    assert message.endswith("slim, alpine or distroless final stage.")
    assert all(len(value) <= pr.MAX_PROPERTY for value in found[0]["properties"].values())


def test_rules_of_names_every_rule_field_of_the_policy_model() -> None:
    """A rule added to core.model.policy.Rules without a result here would never show up in reports."""
    every = policy(
        "all",
        rules={
            "maxCompressedSize": "1Gi",
            "maxUncompressedSize": "2Gi",
            "maxLayers": 30,
            "allowedBaseImages": ["a/*"],
            "requireNonRootUser": True,
            "requireDigest": True,
            "platforms": ["linux/amd64"],
            "vulnerabilities": {"maxCritical": 0},
            "requireCurrentBase": True,
            "maxPackages": 100,
            "forbiddenTools": ["compilers"],
            "forbiddenPackages": ["gcc"],
            "minEfficiency": 0.9,
            "maxWastedBytes": "20Mi",
            "maxGrowth": "10%",
            "maxGrowthBytes": "20Mi",
        },
    )
    from slimguard.core.model.policy import Rules

    fields = {info.alias or name for name, info in Rules.model_fields.items()}
    named = set(pr.rules_of(every.spec.rules)) | {"deniedBaseImages"}  # allowed and denied exclude each other here
    assert named == fields


def test_only_slimguards_own_label_and_annotation_are_compared() -> None:
    """A GitOps tool's label on a report is not ours to undo, and must not make every re-audit write."""
    body = pr.report(api=pr.WGPOLICY, resource=RESOURCE, results=[], previous=None, now=NOW)
    stored = {
        **body,
        "metadata": {
            **body["metadata"],
            "labels": {**body["metadata"]["labels"], "argocd.argoproj.io/instance": "shop"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "resourceVersion": "42",
        },
    }
    assert pr.content_of(stored) == pr.content_of(body)
