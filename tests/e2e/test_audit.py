"""Audit end to end: the real apiserver, the real registry, the operator run by kopf, verdicts on workloads.

The operator runs under a ServiceAccount token bound to the install's own ClusterRole, not as admin.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster import (
    STATUS,
    VIOLATIONS,
    annotations,
    apply,
    deployment,
    get,
    image_policy,
    namespace,
    own_marks,
    status_of,
    violations,
    wait_for,
    wait_for_status,
)

from slimguard.core.model.quantity import format_bytes
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.controlplane import AuditedWrite
from slimguard_testbed.install import NAMESPACE as SLIMGUARD_NAMESPACE
from slimguard_testbed.operator_runner import InProcessOperator

CHECKED_AT = "slimguard.dev/checked-at"
LEGACY_STATUS = "slimguard.dev/status"  # the status as an annotation, as builds before the label wrote it
SLIMGUARD = f"system:serviceaccount:{SLIMGUARD_NAMESPACE}:slimguard-controller"
# A restarted controller re-audits every workload the session's earlier tests left before it is idle.
RESTART_SECONDS = 180


def compressed_size_of(image: Any) -> str:
    """What a node pulls: the layers plus the config blob, as slimguard reports it."""
    return format_bytes(image.artifact.size + image.artifact.config.size)


def events_about(control_plane: ControlPlane, ns: str, name: str) -> list[dict[str, Any]]:
    found = control_plane.kubectl(
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        f"reason=ImagePolicyViolation,involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    return list(json.loads(found)["items"])


def patches_by_slimguard(control_plane: ControlPlane, ns: str, name: str) -> list[AuditedWrite]:
    """Every PATCH slimguard made to a Deployment, as the apiserver's audit log records them."""
    writes = control_plane.audited_writes(resource="deployments", namespace=ns, name=name)
    return [write for write in writes if write.verb == "patch" and write.user == SLIMGUARD]


def replicasets_of(control_plane: ControlPlane, ns: str, deployment_name: str) -> list[dict[str, Any]]:
    listed = json.loads(control_plane.kubectl("get", "replicasets", "-n", ns, "-o", "json").stdout)["items"]
    return [
        item
        for item in listed
        if any(ref.get("name") == deployment_name for ref in item["metadata"].get("ownerReferences") or ())
    ]


def replicaset_updates(control_plane: ControlPlane, replicaset: dict[str, Any]) -> list[AuditedWrite]:
    """Every write to a ReplicaSet's object after its creation (its status, written as Pods come and go, aside)."""
    metadata = replicaset["metadata"]
    writes = control_plane.audited_writes(
        resource="replicasets", namespace=metadata["namespace"], name=metadata["name"]
    )
    return [write for write in writes if write.verb in ("update", "patch") and not write.subresource]


def replicaset_of(control_plane: ControlPlane, ns: str, deployment_name: str) -> dict[str, Any] | None:
    owned = replicasets_of(control_plane, ns, deployment_name)
    return owned[0] if len(owned) == 1 else None


def test_fat_image_is_noncompliant_with_size_and_base_messages_slim_is_compliant_and_policy_edits_flip_them(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any, registry: Registry
) -> None:
    ns = "audit-basics"
    fat, slim = fixture_images.fat_app, fixture_images.slim_app
    base = fixture_images.node_base
    apply(control_plane, namespace(ns), deployment("fat", ns, fat.ref), deployment("slim", ns, slim.ref))
    apply(
        control_plane,
        image_policy(
            "slim-images",
            {
                "maxCompressedSize": "200Mi",
                "deniedBaseImages": [base.ref, "*/base/debian:*"],
            },
            namespaces=[ns],
        ),
    )

    found = wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant")
    messages = [v["message"] for v in violations(found)]
    size = next(m for m in messages if " compressed (linux/amd64); " in m)
    assert size.startswith(
        f'container "api": image {fat.ref} is {compressed_size_of(fat)} compressed (linux/amd64); '
        'ImagePolicy "slim-images" allows 200 MiB. Largest layers: layer 1/3 adds '
    ), size
    # Blame: every layer named with the instruction from the image's history, the app's step last.
    assert (
        "; layer 2/3 adds 34.21 MiB: COPY /usr/bin/node /usr/local/bin/node; layer 3/3 adds 469 B: COPY . /app. "
        in size
    )
    assert size.endswith("Use a multi-stage build with a slim, alpine or distroless final stage."), size
    assert any(
        m.startswith(f'container "api": image {fat.ref} is built on {base.ref} (found by ')
        and 'shared layers), which ImagePolicy "slim-images" denies' in m
        for m in messages
    ), messages
    wait_for_status(control_plane, "deployment", "slim", ns, "compliant")

    assert events_about(control_plane, ns, "fat"), "a Warning Event names the violation"

    apply(control_plane, image_policy("slim-images", {"maxCompressedSize": "4Gi"}, namespaces=[ns]))
    wait_for_status(control_plane, "deployment", "fat", ns, "compliant")
    apply(control_plane, image_policy("slim-images", {"maxCompressedSize": "1Ki"}, namespaces=[ns]))
    slim_found = wait_for_status(control_plane, "deployment", "slim", ns, "noncompliant")
    assert violations(slim_found)[0]["rule"] == "maxCompressedSize"

    def status_counts() -> dict[str, Any] | None:
        status = (get(control_plane, "imagepolicy", "slim-images") or {}).get("status") or {}
        return status if status.get("noncompliant") == 2 and status.get("matchedWorkloads") == 2 else None

    status = wait_for("policy status to count both workloads", status_counts)
    assert status["observedGeneration"] >= 3
    assert {o["name"] for o in status["worstOffenders"]} == {"fat", "slim"}

    control_plane.kubectl("delete", "imagepolicy", "slim-images")
    for name in ("fat", "slim"):
        wait_for(
            f"slimguard's label and annotations removed from {name}",
            lambda name=name: not own_marks(get(control_plane, "deployment", name, ns)),
        )


def test_a_fat_deployment_gets_exactly_one_event_though_its_replicaset_asks_for_it_again(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-one-event"
    controller = operator.controller
    apply(control_plane, namespace(ns), image_policy("one-event", {"maxCompressedSize": "200Mi"}, namespaces=[ns]))
    wait_for("the controller to know the policy", lambda: "one-event" in controller.view.policies)
    # The policy is in place first, so the Deployment's first evaluation and the one its ReplicaSet asks for
    # (the controller-manager makes it at once) overlap, as in `make demo`.
    apply(control_plane, deployment("fat", ns, fixture_images.fat_app.ref))
    wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant")

    def replicaset_seen_and_done() -> bool:
        sets = json.loads(control_plane.kubectl("get", "replicasets", "-n", ns, "-o", "json").stdout)["items"]
        names = [item["metadata"]["name"] for item in sets]
        return bool(names) and all((ns, name) in controller.view.replicasets for name in names) and controller.idle

    wait_for("the ReplicaSet to be seen and every evaluation to finish", replicaset_seen_and_done)
    events = events_about(control_plane, ns, "fat")
    assert len(events) == 1, [(e["metadata"]["name"], e["message"]) for e in events]
    assert events[0]["source"]["component"] == "slimguard-controller"
    control_plane.kubectl("delete", "imagepolicy", "one-event")


def test_private_image_is_read_with_the_workloads_pull_secret_and_refused_without_it(
    control_plane: ControlPlane,
    operator: InProcessOperator,
    fixture_images: Any,
    registry: Registry,
    registry_credentials: Any,
) -> None:
    ns = "audit-private"
    private = fixture_images.private_slim
    auth = base64.b64encode(f"{registry_credentials.username}:{registry_credentials.password}".encode()).decode()
    config = json.dumps({"auths": {registry.host: {"auth": auth}}})
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull", "namespace": ns},
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
    }
    apply(
        control_plane,
        namespace(ns),
        secret,
        deployment("with-secret", ns, private.ref, pull_secrets=("pull",)),
        deployment("without-secret", ns, private.ref),
    )
    apply(control_plane, image_policy("private-images", {"maxCompressedSize": "200Mi"}, namespaces=[ns]))

    wait_for_status(control_plane, "deployment", "with-secret", ns, "compliant")
    refused = wait_for_status(control_plane, "deployment", "without-secret", ns, "error")
    (finding,) = violations(refused)
    assert f"refused access to {registry.host}/private/" in finding["message"]
    assert "without credentials" in finding["message"]
    assert "imagePullSecret" in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "private-images")


def test_a_multi_arch_index_is_measured_for_the_required_platform_and_an_arm64_only_image_is_a_finding(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-platforms"
    apply(
        control_plane,
        namespace(ns),
        deployment("multi", ns, fixture_images.multiarch.ref),
        deployment("arm-only", ns, fixture_images.arm64_only.ref),
    )
    apply(control_plane, image_policy("amd64-only", {"maxCompressedSize": "200Mi"}, namespaces=[ns]))

    wait_for_status(control_plane, "deployment", "multi", ns, "compliant")
    found = wait_for_status(control_plane, "deployment", "arm-only", ns, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "platforms"
    assert "has no linux/amd64 image (it has linux/arm64/v8)" in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "amd64-only")


def test_base_image_found_by_its_oci_annotation(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-base-annotation"
    apply(
        control_plane,
        namespace(ns),
        deployment("annotated", ns, fixture_images.annotated.ref),
        deployment("annotated-index", ns, fixture_images.annotated_index.ref),
    )
    apply(control_plane, image_policy("no-distroless", {"deniedBaseImages": ["*/base/distroless:*"]}, namespaces=[ns]))
    for name in ("annotated", "annotated-index"):
        found = wait_for_status(control_plane, "deployment", name, ns, "noncompliant")
        (finding,) = violations(found)
        assert "/base/distroless:12 (found by its OCI base-image annotation)" in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "no-distroless")


def test_base_image_found_by_layer_prefix_without_any_annotation(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-base-layers"
    fat, node, debian = fixture_images.fat_app, fixture_images.node_base, fixture_images.debian_fat
    apply(control_plane, namespace(ns), deployment("fat", ns, fat.ref))
    # Both bases are candidates; node:20-bookworm shares more layers, so it wins.
    apply(
        control_plane,
        image_policy(
            "allow-slim-bases",
            {"allowedBaseImages": ["*/base/busybox:*"]},
            namespaces=[ns],
            knownBaseImages=[debian.ref, node.ref],
        ),
    )
    found = wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant")
    (finding,) = violations(found)
    assert finding["rule"] == "allowedBaseImages"
    assert f"is built on {node.ref} (found by 2 shared layers)" in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "allow-slim-bases")


def test_a_garbled_image_and_an_unreachable_registry_are_errors_on_the_workload_and_the_policy(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-errors"
    apply(
        control_plane,
        namespace(ns),
        deployment("garbled", ns, fixture_images.garbled.ref),
        deployment("unreachable", ns, "127.0.0.1:1/shop/api:1.0"),
    )
    apply(control_plane, image_policy("errors-surface", {"maxCompressedSize": "200Mi"}, namespaces=[ns]))
    garbled = violations(wait_for_status(control_plane, "deployment", "garbled", ns, "error"))
    assert "served a garbled image config" in garbled[0]["message"]
    unreachable = violations(wait_for_status(control_plane, "deployment", "unreachable", ns, "error"))
    assert "registry 127.0.0.1:1 is unreachable" in unreachable[0]["message"]

    def counted() -> dict[str, Any] | None:
        status = (get(control_plane, "imagepolicy", "errors-surface") or {}).get("status") or {}
        return status if status.get("errors") == 2 and status.get("compliant") == 0 else None

    status = wait_for("the policy to count both errors", counted)
    assert {o["name"] for o in status["worstOffenders"]} == {"garbled", "unreachable"}
    control_plane.kubectl("delete", "imagepolicy", "errors-surface")


def test_a_base_rule_whose_known_base_is_unreachable_is_an_error_never_compliant(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-base-unreachable"
    unreachable_base = "127.0.0.1:1/base/node:20-bookworm"
    apply(control_plane, namespace(ns), deployment("fat", ns, fixture_images.fat_app.ref))
    apply(
        control_plane,
        image_policy(
            "no-bookworm",
            {"deniedBaseImages": ["*/node:*-bookworm"]},
            namespaces=[ns],
            knownBaseImages=[unreachable_base],
        ),
    )
    (finding,) = violations(wait_for_status(control_plane, "deployment", "fat", ns, "error"))
    assert (finding["rule"], finding["kind"]) == ("deniedBaseImages", "error")
    assert (
        f'cannot be checked against deniedBaseImages of ImagePolicy "no-bookworm": the base image {unreachable_base}, '
        "which slimguard compares layers with, could not be read (registry 127.0.0.1:1 is unreachable"
    ) in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "no-bookworm")


def test_a_policy_that_only_requires_digests_never_asks_the_registry(
    control_plane: ControlPlane, operator: InProcessOperator, registry: Registry
) -> None:
    ns = "audit-digest-only"
    # Never pushed: any request slimguard made for it would show in the registry's log under this repository.
    by_tag = f"{registry.host}/shop/digest-only:1.0"
    apply(control_plane, namespace(ns), deployment("by-tag", ns, by_tag))
    apply(control_plane, image_policy("pin-digests", {"requireDigest": True}, namespaces=[ns]))
    (finding,) = violations(wait_for_status(control_plane, "deployment", "by-tag", ns, "noncompliant"))
    assert finding["rule"] == "requireDigest"
    assert [r for r in registry.requests() if r.repository == "shop/digest-only"] == []
    control_plane.kubectl("delete", "imagepolicy", "pin-digests")


@pytest.mark.timeout(180)
def test_an_error_from_a_registry_that_comes_back_is_retried_without_waiting_for_the_next_re_audit(
    control_plane: ControlPlane,
    operator: InProcessOperator,
    fixture_images: Any,
    registry_storage: Path,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    ns = "audit-recovery"
    # Only a retry can flip the verdict within the wait below: the next full re-audit is 10 minutes away.
    assert operator.settings.audit_interval_seconds >= 600
    slim = fixture_images.slim_app
    # Its own registry over the shared storage (the session's stays up for the other tests), stopped at once.
    flaky = Registry(storage_dir=registry_storage, ca=testbed_ca, workdir=tmp_path / "flaky").start()
    try:
        image = f"{flaky.host}/{slim.repository}:{slim.tag}"
        flaky.stop()
        apply(control_plane, namespace(ns), deployment("api", ns, image))
        apply(control_plane, image_policy("recovery", {"maxCompressedSize": "200Mi"}, namespaces=[ns]))
        (finding,) = violations(wait_for_status(control_plane, "deployment", "api", ns, "error"))
        assert f"registry {flaky.host} is unreachable" in finding["message"]

        flaky.start()  # the same address again
        # Within the first retries (20 s, then 40 s), with room for a slow machine; never the 600 s re-audit.
        wait_for_status(control_plane, "deployment", "api", ns, "compliant", timeout=120)
        assert not violations(annotations(control_plane, "deployment", "api", ns))
    finally:
        flaky.stop()
        control_plane.kubectl("delete", "imagepolicy", "recovery", "--ignore-not-found")


def test_uncompressed_size_is_read_from_gzip_trailers_and_reported_as_an_estimate(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-uncompressed"
    fat = fixture_images.fat_app
    apply(control_plane, namespace(ns), deployment("fat", ns, fat.ref))
    apply(control_plane, image_policy("unpacked", {"maxUncompressedSize": "600Mi"}, namespaces=[ns]))
    (finding,) = violations(wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant"))
    assert finding["rule"] == "maxUncompressedSize"
    assert f"is {format_bytes(fat.uncompressed_size)} uncompressed (estimated) (linux/amd64)" in finding["message"]
    control_plane.kubectl("delete", "imagepolicy", "unpacked")


def test_an_expired_exemption_stops_applying_by_itself(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-exemption"
    expires = (datetime.now(UTC) + timedelta(seconds=10)).replace(microsecond=0)  # as written in the policy
    apply(control_plane, namespace(ns), deployment("legacy", ns, fixture_images.fat_app.ref))
    apply(
        control_plane,
        image_policy(
            "legacy-grace",
            {"maxCompressedSize": "200Mi"},
            namespaces=[ns],
            exemptions=[
                {
                    "workloads": [{"namespace": ns, "name": "legacy"}],
                    "reason": "moving to distroless by Q3",
                    "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ],
        ),
    )
    wait_for_status(control_plane, "deployment", "legacy", ns, "compliant")
    # Nothing changes in the cluster; the verdict flips when the exemption runs out.
    (finding,) = violations(wait_for_status(control_plane, "deployment", "legacy", ns, "noncompliant", timeout=30))
    assert finding["rule"] == "maxCompressedSize"
    assert datetime.now(UTC) >= expires
    control_plane.kubectl("delete", "imagepolicy", "legacy-grace")


def test_the_verdict_is_a_label_users_select_on_and_only_findings_are_annotations_which_a_replicaset_copies(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-label"
    apply(
        control_plane,
        namespace(ns),
        image_policy("label-only", {"maxCompressedSize": "200Mi"}, namespaces=[ns]),
        deployment("slim", ns, fixture_images.slim_app.ref),
        deployment("fat", ns, fixture_images.fat_app.ref),
    )
    wait_for_status(control_plane, "deployment", "slim", ns, "compliant")
    wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant")

    assert own_marks(get(control_plane, "deployment", "slim", ns)) == {"labels": {STATUS: "compliant"}}
    fat = own_marks(get(control_plane, "deployment", "fat", ns))
    assert fat["labels"] == {STATUS: "noncompliant"}
    assert set(fat["annotations"]) == {VIOLATIONS, CHECKED_AT}, "the findings, and never the status too"
    listed = control_plane.kubectl("get", "deploy", "-n", ns, "-l", f"{STATUS}=noncompliant", "-o", "name").stdout
    assert listed.split() == ["deployment.apps/fat"]

    # The Deployment controller copies a Deployment's annotations, never its labels, onto its ReplicaSet: the
    # findings reach the fat one's, so by then it has had every chance to copy anything of the slim one's.
    def fat_findings_copied() -> dict[str, Any] | None:
        replicaset = replicaset_of(control_plane, ns, "fat")
        return replicaset if VIOLATIONS in own_marks(replicaset).get("annotations", {}) else None

    fat_replicaset = wait_for("the fat Deployment's findings on its ReplicaSet", fat_findings_copied)
    assert "labels" not in own_marks(fat_replicaset)
    (slim_replicaset,) = replicasets_of(control_plane, ns, "slim")
    assert own_marks(slim_replicaset) == {}, "a compliant workload's ReplicaSet: nothing"

    # What the cluster paid: one PATCH of the compliant Deployment, and not one write of its ReplicaSet after the
    # Deployment controller made it (the fat one's copy of the findings is such a write: it is seen).
    assert len(patches_by_slimguard(control_plane, ns, "slim")) == 1
    assert replicaset_updates(control_plane, fat_replicaset), "the findings were copied by an update"
    assert replicaset_updates(control_plane, slim_replicaset) == [], "nothing copied onto the compliant one's"
    control_plane.kubectl("delete", "imagepolicy", "label-only")


def test_a_fixed_deployment_loses_its_findings_in_the_same_patch_that_sets_it_compliant(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-fixed"
    apply(
        control_plane,
        namespace(ns),
        image_policy("fixed", {"maxCompressedSize": "200Mi"}, namespaces=[ns]),
        deployment("api", ns, fixture_images.fat_app.ref),
    )
    wait_for_status(control_plane, "deployment", "api", ns, "noncompliant")
    wait_for("the controller to be idle", lambda: operator.controller.idle)
    assert len(patches_by_slimguard(control_plane, ns, "api")) == 1, "one write for the verdict: label and findings"

    # Rebuilt on a slim base and rolled out.
    control_plane.kubectl("set", "image", "deployment/api", f"api={fixture_images.slim_app.ref}", "-n", ns)
    wait_for_status(control_plane, "deployment", "api", ns, "compliant")
    wait_for("the controller to be idle", lambda: operator.controller.idle)
    assert own_marks(get(control_plane, "deployment", "api", ns)) == {"labels": {STATUS: "compliant"}}
    assert [write.code for write in patches_by_slimguard(control_plane, ns, "api")] == [200, 200], (
        "the fix is one PATCH: the label set compliant and the findings removed together"
    )
    # The rollout's new ReplicaSet was made while the Deployment still carried the findings, and the Deployment
    # controller never removes what it copied: slimguard removes its copies from both ReplicaSets.
    wait_for(
        "no finding left on the Deployment's ReplicaSets",
        lambda: (sets := replicasets_of(control_plane, ns, "api")) and not any(own_marks(rs) for rs in sets),
    )
    control_plane.kubectl("delete", "imagepolicy", "fixed")


@pytest.mark.timeout(RESTART_SECONDS + 120)
def test_an_upgrade_migrates_the_annotation_only_verdicts_once_without_repeating_an_event(
    control_plane: ControlPlane, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "audit-upgrade"
    apply(
        control_plane,
        namespace(ns),
        image_policy("upgrade", {"maxCompressedSize": "200Mi"}, namespaces=[ns]),
        deployment("slim", ns, fixture_images.slim_app.ref),
        deployment("fat", ns, fixture_images.fat_app.ref),
    )
    wait_for_status(control_plane, "deployment", "slim", ns, "compliant")
    found = wait_for_status(control_plane, "deployment", "fat", ns, "noncompliant")
    wait_for("the fat Deployment's Event", lambda: events_about(control_plane, ns, "fat"))
    events = events_about(control_plane, ns, "fat")
    checked_at = found[CHECKED_AT]

    operator.stop()
    try:
        # What the previous version left: the status as an annotation, beside the findings; "[]" and a time on a
        # compliant workload; no label. (Its Event for the fat one is the one posted above: same name, same text.)
        legacy = {
            "slim": {LEGACY_STATUS: "compliant", VIOLATIONS: "[]", CHECKED_AT: checked_at},
            "fat": {LEGACY_STATUS: "noncompliant"},
        }
        for name, legacy_annotations in legacy.items():
            patch = json.dumps({"metadata": {"labels": {STATUS: None}, "annotations": legacy_annotations}})
            control_plane.kubectl("patch", "deployment", name, "-n", ns, "--type=merge", "-p", patch)
            body = get(control_plane, "deployment", name, ns)
            assert status_of(body) is None
            assert own_marks(body)["annotations"][LEGACY_STATUS] == legacy_annotations[LEGACY_STATUS]
        before = {name: len(patches_by_slimguard(control_plane, ns, name)) for name in legacy}
    finally:
        operator.restart()

    def migrated() -> bool:
        labelled = [status_of(get(control_plane, "deployment", name, ns)) for name in ("slim", "fat")]
        return labelled == ["compliant", "noncompliant"] and operator.controller.idle

    wait_for("both Deployments migrated", migrated, timeout=RESTART_SECONDS)
    assert own_marks(get(control_plane, "deployment", "slim", ns)) == {"labels": {STATUS: "compliant"}}
    assert own_marks(get(control_plane, "deployment", "fat", ns)) == {
        "labels": {STATUS: "noncompliant"},
        "annotations": {VIOLATIONS: found[VIOLATIONS], CHECKED_AT: checked_at},  # the same findings, from then
    }

    # A re-audit finds nothing left to change (a namespace's labels changing re-evaluates its workloads).
    controller = operator.controller
    earlier_verdicts = {key: verdict for key, verdict in controller.verdicts.items() if key.namespace == ns}
    control_plane.kubectl("label", "namespace", ns, "re-audit=1")
    wait_for(
        "a re-audit of both",
        lambda: (
            controller.idle
            and all(controller.verdicts.get(key) is not verdict for key, verdict in earlier_verdicts.items())
        ),
    )
    for name, earlier in before.items():
        assert len(patches_by_slimguard(control_plane, ns, name)) == earlier + 1, f"{name} is migrated by one PATCH"
    assert events_about(control_plane, ns, "fat") == events, "no Event repeated"

    # The Deployment controller had copied the old format onto the ReplicaSets: no copy of it is left there.
    def replicasets_say(name: str) -> dict[str, str]:
        (replicaset,) = replicasets_of(control_plane, ns, name)
        return own_marks(replicaset).get("annotations", {})

    wait_for("the slim ReplicaSet to carry nothing of slimguard's", lambda: replicasets_say("slim") == {})
    wait_for(
        "the fat ReplicaSet to carry the findings alone, as its Deployment",
        lambda: replicasets_say("fat") == {VIOLATIONS: found[VIOLATIONS], CHECKED_AT: checked_at},
    )
    control_plane.kubectl("delete", "imagepolicy", "upgrade")
