"""One normaliser maps every workload kind to the same shape: containers, images, pull secrets, owners."""

from __future__ import annotations

from typing import Any

import pytest

from slimguard.core.model.kinds import WORKLOAD_KINDS
from slimguard.core.model.workload import (
    Container,
    ContainerType,
    WorkloadKey,
    made_by_a_workload,
    normalise,
    pod_spec_of,
)

POD_SPEC: dict[str, Any] = {
    "serviceAccountName": "api-runner",
    "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}, {}],
    "initContainers": [{"name": "migrate", "image": "registry.example.com/team/migrate:1"}],
    "containers": [
        {"name": "api", "image": "registry.example.com/team/api:1"},
        {"name": "sidecar", "image": "envoyproxy/envoy:v1.30"},
    ],
    "ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36"}],
}


def body_of(kind: str, pod_spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    spec = pod_spec if pod_spec is not None else POD_SPEC
    template = {"metadata": {"labels": {"app": "api"}}, "spec": spec}
    specs: dict[str, Any] = {
        "Pod": spec,
        "CronJob": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": template}}},
    }
    return {
        "metadata": {"namespace": "team-a", "name": "api", "labels": {"team": "a"}, **metadata},
        "spec": specs.get(kind, {"template": template}),
    }


@pytest.mark.parametrize("kind", WORKLOAD_KINDS)
def test_every_kind_yields_the_same_containers_pull_secrets_and_service_account(kind: str) -> None:
    workload = normalise(kind, body_of(kind))
    assert workload.key == WorkloadKey(kind, "team-a", "api")
    assert str(workload.key) == f"{kind}/team-a/api"
    assert workload.labels == {"team": "a"}
    assert [(c.type, c.index, c.name) for c in workload.containers] == [
        (ContainerType.INIT, 0, "migrate"),
        (ContainerType.REGULAR, 0, "api"),
        (ContainerType.REGULAR, 1, "sidecar"),
        (ContainerType.EPHEMERAL, 0, "debugger"),
    ]
    assert workload.pull_secrets == ("regcred", "mirror")
    assert workload.service_account == "api-runner"


def test_the_pod_spec_is_found_where_each_kind_keeps_it() -> None:
    assert pod_spec_of("Pod", body_of("Pod")) is POD_SPEC
    assert pod_spec_of("CronJob", body_of("CronJob")) is POD_SPEC
    assert pod_spec_of("Job", body_of("Job")) is POD_SPEC
    assert pod_spec_of("ReplicationController", body_of("ReplicationController")) is POD_SPEC
    assert pod_spec_of("Deployment", {"spec": {}}) == {}


def test_images_are_listed_once_in_container_order() -> None:
    spec = {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}, {"name": "c", "image": "x:1"}]}
    assert normalise("Pod", body_of("Pod", spec)).images == ("x:1", "y:1")


def test_the_deprecated_service_account_field_is_read_and_default_is_the_fallback() -> None:
    assert normalise("Pod", body_of("Pod", {"serviceAccount": "legacy", "containers": []})).service_account == "legacy"
    assert normalise("Pod", body_of("Pod", {"containers": []})).service_account == "default"


def test_a_container_without_a_name_or_image_is_still_listed_so_it_cannot_slip_through() -> None:
    (container,) = normalise("Pod", body_of("Pod", {"containers": [{}]})).containers
    assert (container.name, container.image) == ("containers[0]", "")


def test_a_pod_being_created_from_generate_name_is_named_by_it() -> None:
    body = body_of("Pod", name=None, generateName="api-")
    assert normalise("Pod", body).name == "api-"


def test_a_kind_slimguard_does_not_check_is_refused() -> None:
    with pytest.raises(ValueError, match="Service is not a workload kind"):
        normalise("Service", {})


def test_only_controller_owners_are_kept_and_make_the_object_controlled() -> None:
    owned = normalise(
        "ReplicaSet",
        body_of(
            "ReplicaSet",
            ownerReferences=[
                {"kind": "Deployment", "name": "api", "controller": True},
                {"kind": "ConfigMap", "name": "x"},
            ],
        ),
    )
    assert owned.owners == (("Deployment", "api"),)
    assert owned.controlled
    mirror = normalise("Pod", body_of("Pod", ownerReferences=[{"kind": "Node", "name": "n1", "controller": True}]))
    assert not mirror.controlled
    assert not normalise("Deployment", body_of("Deployment")).controlled


@pytest.mark.parametrize(
    ("owners", "made"),
    [
        ([{"kind": "Deployment", "name": "api", "controller": True}], True),
        ([{"kind": "Job", "name": "nightly", "controller": True}], True),
        ([{"kind": "ReplicationController", "name": "legacy", "controller": True}], True),  # its Pods
        ([{"kind": "Deployment", "name": "api"}], False),  # an owner that does not control it
        ([{"kind": "Node", "name": "n1", "controller": True}], False),  # a static Pod's mirror
        ([], False),
    ],
)
def test_an_object_made_by_a_workload_is_told_from_its_metadata_alone_as_normalise_tells_it(
    owners: list[dict[str, Any]], made: bool
) -> None:
    # The informer reads only metadata of ReplicaSets, Pods and Jobs, and a body where this says it is needed.
    metadata_only = {"metadata": {"name": "x", "namespace": "shop", "ownerReferences": owners}}
    assert made_by_a_workload(metadata_only) is made
    assert normalise("ReplicaSet", body_of("ReplicaSet", ownerReferences=owners)).controlled is made


def security(pod: dict[str, Any] | None, container: dict[str, Any] | None) -> Container:
    spec: dict[str, Any] = {
        "containers": [{"name": "a", "image": "x", **({"securityContext": container} if container else {})}]
    }
    if pod:
        spec["securityContext"] = pod
    (only,) = normalise("Deployment", body_of("Deployment", spec)).containers
    return only


@pytest.mark.parametrize(
    ("pod", "container", "user", "non_root", "guaranteed"),
    [
        (None, None, None, None, False),
        ({"runAsUser": 1000}, None, 1000, None, True),
        ({"runAsNonRoot": True}, None, None, True, True),
        (None, {"runAsUser": 10001}, 10001, None, True),
        (None, {"runAsUser": 0}, 0, None, False),
        ({"runAsUser": 1000}, {"runAsUser": 0}, 0, None, False),
        ({"runAsNonRoot": True}, {"runAsNonRoot": False}, None, False, False),
        ({"runAsUser": 0}, {"runAsNonRoot": True}, 0, True, True),
        (None, {"runAsUser": "1000"}, None, None, False),
        (None, {"runAsUser": True}, None, None, False),
    ],
)
def test_the_container_security_context_overrides_the_pods(
    pod: dict[str, Any] | None,
    container: dict[str, Any] | None,
    user: int | None,
    non_root: bool | None,
    guaranteed: bool,
) -> None:
    normalised = security(pod, container)
    assert (normalised.run_as_user, normalised.run_as_non_root) == (user, non_root)
    assert normalised.runs_as_non_root is guaranteed


def test_the_normaliser_carries_uid_slimguards_own_annotations_and_the_replicaset_revision() -> None:
    applied = '{"apiVersion":"apps/v1","kind":"ReplicaSet","spec":{"replicas":3}}' * 50
    body = {
        "metadata": {
            "name": "api-5d9c8b7f4",
            "namespace": "shop",
            "uid": "0b7c",
            "annotations": {
                "deployment.kubernetes.io/revision": "7",
                "slimguard.dev/status": "compliant",
                "kubectl.kubernetes.io/last-applied-configuration": applied,
            },
        },
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "shop/api:1"}]}}},
    }
    replicaset = normalise("ReplicaSet", body)
    assert (replicaset.uid, replicaset.revision) == ("0b7c", 7)
    assert replicaset.annotations == {"slimguard.dev/status": "compliant"}, "only slimguard's own are kept"
    bare = normalise("Pod", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert (bare.uid, bare.annotations, bare.revision) == (None, {}, 0)


def test_slimguards_status_label_is_kept_apart_from_the_labels_policies_select_on() -> None:
    labels = {"app": "api", "slimguard.dev/status": "noncompliant"}
    deployment = normalise("Deployment", {"metadata": {"name": "api", "labels": labels}, "spec": {}})
    assert deployment.status_label == "noncompliant"
    assert deployment.labels == {"app": "api"}, "a verdict is an output of evaluation, never an input"
    assert normalise("Deployment", {"metadata": {"name": "api"}}).status_label is None


def test_an_image_is_parsed_once_and_shared_by_every_container_that_names_it() -> None:
    pods = [normalise("Pod", {"metadata": {"name": f"p{n}"}, "spec": POD_SPEC}) for n in range(3)]
    references = {id(pod.containers[0].reference) for pod in pods}
    assert len(references) == 1
    bad = [
        normalise("Pod", {"metadata": {"name": f"b{n}"}, "spec": {"containers": [{"image": "Bad Ref"}]}})
        for n in range(2)
    ]
    assert all(str(pod.containers[0].reference).startswith("image reference 'Bad Ref'") for pod in bad)
