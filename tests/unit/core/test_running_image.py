"""Which digest a workload runs, per container (``check --baseline-from-cluster``): the spec's pinned digest, else
what its Pods report, else the one ImageReport naming its tag; refused, never guessed, when they disagree."""

from __future__ import annotations

from typing import Any

import pytest

from slimguard.core.model.running_image import (
    DigestSource,
    NoRunningDigest,
    RunningImage,
    baseline_container,
    image_id_digest,
    label_selector,
    parse_workload_name,
    running_images,
    template_labels,
)

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
WEB = "registry.example.com/shop/web:1.4"
SIDECAR = "registry.example.com/mesh/proxy:2.0"


def deployment(*containers: tuple[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "template": {
                "metadata": {"labels": labels if labels is not None else {"app": "web"}},
                "spec": {"containers": [{"name": name, "image": image} for name, image in containers]},
            }
        },
    }


def pod(image: str, image_id: str, container: str = "web") -> dict[str, Any]:
    return {
        "spec": {"containers": [{"name": container, "image": image}]},
        "status": {"containerStatuses": [{"name": container, "image": image, "imageID": image_id}]},
    }


WORKLOAD = parse_workload_name("deployment/web")


@pytest.mark.parametrize("text", ["deployment/web", "Deployment/web", "deployments/web", "deploy/web"])
def test_a_workload_is_named_as_kubectl_names_it(text: str) -> None:
    named = parse_workload_name(text)
    assert (named.kind.kind, named.name, str(named)) == ("Deployment", "web", "deployment/web")


@pytest.mark.parametrize("text", ["web", "deployment/", "service/web", "deployment/a/b", "/web"])
def test_what_is_not_kind_slash_name_of_a_workload_is_refused_listing_the_kinds(text: str) -> None:
    with pytest.raises(NoRunningDigest, match=r"is not KIND/NAME, e.g. deployment/web .*statefulset"):
        parse_workload_name(text)


@pytest.mark.parametrize(
    ("image_id", "digest"),
    [
        (f"registry.example.com/shop/web@{OLD}", OLD),
        (f"docker-pullable://registry.example.com/shop/web@{OLD}", OLD),
        (OLD, None),  # the local image ID (its config's digest): nothing a registry serves
        ("", None),
        ("registry.example.com/shop/web@sha256:short", None),
    ],
)
def test_the_digest_in_an_image_id_is_the_one_pulled_by_name(image_id: str, digest: str | None) -> None:
    assert image_id_digest(image_id) == digest


def test_a_digest_pinned_in_the_spec_is_what_runs_without_reading_pods() -> None:
    body = deployment(("web", f"registry.example.com/shop/web@{OLD}"))
    (running,) = running_images(WORKLOAD, body, pods=[pod(WEB, f"x@{NEW}")])
    assert (running.digest, running.source) == (OLD, DigestSource.SPEC)
    assert running.reference == f"registry.example.com/shop/web@{OLD}"


def test_a_tag_runs_the_digest_its_pods_report() -> None:
    (running,) = running_images(WORKLOAD, deployment(("web", WEB)), pods=[pod(WEB, f"x@{OLD}"), pod(WEB, f"x@{OLD}")])
    assert (running.digest, running.source) == (OLD, DigestSource.PODS)


def test_pods_of_an_older_template_do_not_count() -> None:
    pods = [pod(WEB, f"x@{OLD}"), pod("registry.example.com/shop/web:1.3", f"x@{NEW}")]
    (running,) = running_images(WORKLOAD, deployment(("web", WEB)), pods=pods)
    assert running.digest == OLD


def test_pods_running_two_digests_of_one_tag_are_a_rollout_refused_not_guessed() -> None:
    with pytest.raises(NoRunningDigest, match=r"run 2 digests .*a rollout under way"):
        running_images(WORKLOAD, deployment(("web", WEB)), pods=[pod(WEB, f"x@{OLD}"), pod(WEB, f"x@{NEW}")])


def test_without_pods_the_one_image_report_naming_the_tag_says_the_digest() -> None:
    reports = [(OLD, [WEB, "registry.example.com/shop/web:latest"]), (NEW, ["registry.example.com/shop/web:1.5"])]
    (running,) = running_images(WORKLOAD, deployment(("web", WEB)), reports=reports)
    assert (running.digest, running.source) == (OLD, DigestSource.IMAGE_REPORT)


def test_two_image_reports_naming_the_tag_mean_it_moved_refused_not_guessed() -> None:
    with pytest.raises(NoRunningDigest, match=r"2 ImageReports name .*the tag moved"):
        running_images(WORKLOAD, deployment(("web", WEB)), reports=[(OLD, [WEB]), (NEW, [WEB])])


def test_a_digest_known_nowhere_is_kept_unknown_with_the_reason_and_what_could_not_be_read() -> None:
    (running,) = running_images(WORKLOAD, deployment(("web", WEB)), unread=["its Pods"])
    assert running.digest is None
    assert "no digest known for registry.example.com/shop/web:1.4" in running.unknown_why
    assert "(its Pods could not be read)" in running.unknown_why
    with pytest.raises(NoRunningDigest, match=r"deployment/web, container web: no digest known"):
        baseline_container(WORKLOAD, [running], WEB, None)


def running(container: str, image: str, digest: str | None = OLD) -> RunningImage:
    return RunningImage(container, image, digest, DigestSource.PODS if digest else None, "unknown")


def test_the_baseline_container_is_the_only_one_or_the_one_running_the_same_repository() -> None:
    only = [running("web", WEB)]
    assert baseline_container(WORKLOAD, only, "registry.example.com/other/app:9", None).container == "web"
    both = [running("web", WEB), running("proxy", SIDECAR)]
    assert baseline_container(WORKLOAD, both, "registry.example.com/shop/web:1.5", None).container == "web"
    assert baseline_container(WORKLOAD, both, "registry.example.com/mesh/proxy:2.1", None).container == "proxy"
    assert baseline_container(WORKLOAD, both, "anything:1", "proxy").container == "proxy"


def test_a_baseline_container_that_cannot_be_told_is_a_clear_error() -> None:
    both = [running("web", WEB), running("proxy", SIDECAR)]
    with pytest.raises(NoRunningDigest, match=r"has 2 containers \(web, proxy\) and none runs .*name one with"):
        baseline_container(WORKLOAD, both, "registry.example.com/other/app:1", None)
    with pytest.raises(NoRunningDigest, match=r"has no container 'db' \(its containers: web, proxy\)"):
        baseline_container(WORKLOAD, both, WEB, "db")


def test_the_pods_are_found_by_their_templates_labels_for_every_kind() -> None:
    labels = template_labels(WORKLOAD.kind, deployment(("web", WEB), labels={"tier": "front", "app": "web"}))
    assert label_selector(labels) == "app=web,tier=front"
    cron = parse_workload_name("cronjob/nightly").kind
    body = {"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"job": "nightly"}}}}}}}
    assert template_labels(cron, body) == {"job": "nightly"}
    assert template_labels(parse_workload_name("pod/p").kind, {"metadata": {"labels": {"a": "b"}}}) == {"a": "b"}
