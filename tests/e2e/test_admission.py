"""Admission end to end: the real apiserver calls the real webhook over TLS, and kubectl shows the answer."""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from cluster import apply, deployment, get, image_policy, namespace, pod, status, wait_for

from slimguard_testbed import ControlPlane, Registry
from slimguard_testbed.images import push_image
from slimguard_testbed.operator_runner import InProcessOperator
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

DENIED = 'admission webhook "images.slimguard.dev" denied the request'


def kubectl_apply(
    plane: ControlPlane, *documents: dict[str, Any], extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("apply", *extra, "-f", "-", input=yaml.safe_dump_all(documents), check=False)


@pytest.fixture(scope="module")
def enforce_ns(control_plane: ControlPlane, webhook: WebhookReplicas) -> str:
    ns = "admit-enforce"
    apply(
        control_plane,
        namespace(ns),
        image_policy("enforce-slim", {"maxCompressedSize": "200Mi"}, namespaces=[ns], mode="Enforce"),
    )
    wait_for("the webhook to see the policy", lambda: _denies_probe(control_plane, ns), timeout=30)
    return ns


def _denies_probe(plane: ControlPlane, ns: str) -> bool:
    probe = pod("probe", ns, "127.0.0.1:1/never/pushed:1")
    result = kubectl_apply(plane, probe, extra=("--dry-run=server",))
    return result.returncode == 0 and "slimguard" in result.stderr  # onUnknown: Allow warns once it applies


def test_enforce_rejects_a_fat_deployment_with_the_violation_and_admits_the_slim_one(
    control_plane: ControlPlane, enforce_ns: str, fixture_images: Any
) -> None:
    fat, slim = fixture_images.fat_app, fixture_images.slim_app
    rejected = kubectl_apply(control_plane, deployment("fat", enforce_ns, fat.ref))
    assert rejected.returncode != 0
    assert DENIED in rejected.stderr
    assert (
        f'slimguard denied Deployment {enforce_ns}/fat: 1 violation(s) of ImagePolicy "enforce-slim"' in rejected.stderr
    )
    assert f'container "api": image {fat.ref} is ' in rejected.stderr
    assert 'ImagePolicy "enforce-slim" allows 200 MiB. Largest layers: layer 1/3 adds ' in rejected.stderr
    assert "Use a multi-stage build" in rejected.stderr
    assert get(control_plane, "deployment", "fat", enforce_ns) is None

    admitted = kubectl_apply(control_plane, deployment("slim", enforce_ns, slim.ref))
    assert admitted.returncode == 0, admitted.stderr
    assert get(control_plane, "deployment", "slim", enforce_ns) is not None


def test_enforce_rejects_a_pod_whose_init_container_is_fat(
    control_plane: ControlPlane, enforce_ns: str, fixture_images: Any
) -> None:
    result = kubectl_apply(
        control_plane, pod("init-fat", enforce_ns, fixture_images.slim_app.ref, init_image=fixture_images.fat_app.ref)
    )
    assert DENIED in result.stderr
    assert f'container "init": image {fixture_images.fat_app.ref}' in result.stderr


def test_an_undecidable_base_rule_is_decided_by_on_unknown(
    control_plane: ControlPlane, webhook: WebhookReplicas, fixture_images: Any
) -> None:
    ns = "admit-base-unknown"
    apply(
        control_plane,
        namespace(ns),
        image_policy(
            "no-bookworm",
            {"deniedBaseImages": ["*/node:*-bookworm"]},
            namespaces=[ns],
            mode="Enforce",
            onUnknown="Deny",
            knownBaseImages=["127.0.0.1:1/base/node:20-bookworm"],
        ),
    )
    wait_for("the webhook to see the policy", lambda: DENIED in _dry_run(control_plane, ns, fixture_images).stderr)
    result = kubectl_apply(control_plane, deployment("fat", ns, fixture_images.fat_app.ref))
    assert result.returncode != 0
    assert "cannot be checked against deniedBaseImages" in result.stderr
    assert "registry 127.0.0.1:1 is unreachable" in result.stderr
    control_plane.kubectl("delete", "imagepolicy", "no-bookworm")


def _dry_run(plane: ControlPlane, ns: str, fixture_images: Any) -> subprocess.CompletedProcess[str]:
    return kubectl_apply(plane, deployment("probe", ns, fixture_images.fat_app.ref), extra=("--dry-run=server",))


def test_server_side_dry_run_evaluates_and_creates_nothing(
    control_plane: ControlPlane, enforce_ns: str, fixture_images: Any
) -> None:
    fat = kubectl_apply(
        control_plane, deployment("dry-fat", enforce_ns, fixture_images.fat_app.ref), extra=("--dry-run=server",)
    )
    assert DENIED in fat.stderr
    slim = kubectl_apply(
        control_plane, deployment("dry-slim", enforce_ns, fixture_images.slim_app.ref), extra=("--dry-run=server",)
    )
    assert slim.returncode == 0, slim.stderr
    assert "(server dry run)" in slim.stdout
    assert get(control_plane, "deployment", "dry-slim", enforce_ns) is None


def test_warn_admits_and_kubectl_prints_the_warnings(
    control_plane: ControlPlane, webhook: WebhookReplicas, fixture_images: Any
) -> None:
    ns = "admit-warn"
    apply(
        control_plane,
        namespace(ns),
        image_policy("warn-slim", {"maxCompressedSize": "200Mi"}, namespaces=[ns], mode="Warn"),
    )
    fat = fixture_images.fat_app

    def warned() -> subprocess.CompletedProcess[str] | None:
        result = kubectl_apply(control_plane, deployment("fat", ns, fat.ref))
        return result if "Warning: slimguard:" in result.stderr else None

    result = wait_for("kubectl to print slimguard's warning", warned, timeout=30)
    assert result.returncode == 0
    assert f'Warning: slimguard: container "api": image {fat.ref} is ' in result.stderr
    assert get(control_plane, "deployment", "fat", ns) is not None


def test_audit_admits_silently_and_the_controller_annotates(
    control_plane: ControlPlane, webhook: WebhookReplicas, operator: InProcessOperator, fixture_images: Any
) -> None:
    ns = "admit-audit"
    apply(
        control_plane,
        namespace(ns),
        image_policy("audit-slim", {"maxCompressedSize": "200Mi"}, namespaces=[ns], mode="Audit"),
    )
    time.sleep(1)  # both the webhook and the controller watch the new policy
    result = kubectl_apply(control_plane, deployment("fat", ns, fixture_images.fat_app.ref))
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    wait_for(
        "the controller's verdict",
        lambda: status(control_plane, "deployment", "fat", ns) == "noncompliant",
    )


def test_exemption_admits_until_it_expires(
    control_plane: ControlPlane, webhook: WebhookReplicas, fixture_images: Any
) -> None:
    ns = "admit-exempt"
    expires = datetime.now(UTC) + timedelta(seconds=8)
    apply(
        control_plane,
        namespace(ns),
        image_policy(
            "exempt-legacy",
            {"maxCompressedSize": "200Mi"},
            namespaces=[ns],
            mode="Enforce",
            exemptions=[
                {
                    "images": ["*/shop/api:1.0-fat"],
                    "reason": "migrating to distroless by Q3",
                    "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ],
        ),
    )
    time.sleep(1)
    admitted = kubectl_apply(control_plane, deployment("legacy", ns, fixture_images.fat_app.ref))
    assert admitted.returncode == 0, admitted.stderr
    wait_for("the exemption to expire", lambda: datetime.now(UTC) > expires + timedelta(seconds=1), timeout=20)
    rejected = kubectl_apply(control_plane, deployment("legacy-2", ns, fixture_images.fat_app.ref))
    assert DENIED in rejected.stderr


def test_fifty_concurrent_creates_on_a_never_seen_image_cost_one_inspection(
    control_plane: ControlPlane, enforce_ns: str, registry: Registry
) -> None:
    fresh = push_image(registry.endpoint, "shop/burst", "1.0", [{"/app/burst.txt": b"burst" * 1000}])
    mark = registry.mark()

    def create(n: int) -> int:
        return kubectl_apply(control_plane, deployment(f"burst-{n:02d}", enforce_ns, fresh.ref)).returncode

    with ThreadPoolExecutor(max_workers=25) as pool:
        codes = list(pool.map(create, range(50)))
    assert codes == [0] * 50
    reads = [r for r in registry.requests(since=mark) if r.repository == "shop/burst" and r.status < 400]
    # Two replicas each inspect at most once: one HEAD, one manifest GET and one config GET apiece.
    assert len([r for r in reads if r.kind == "manifest" and r.method == "GET"]) <= 2, reads
    assert len([r for r in reads if r.kind == "blob"]) <= 2, reads


def test_the_webhook_down_fails_open_with_ignore_closed_with_fail_and_never_blocks_system_namespaces(
    control_plane: ControlPlane, webhook: WebhookReplicas, fixture_images: Any, testbed_ca: Any
) -> None:
    from cluster import WEBHOOK_TEMPLATE

    ns = "admit-down"
    apply(
        control_plane,
        namespace(ns),
        namespace("slimguard"),
        image_policy("down-slim", {"maxCompressedSize": "200Mi"}, namespaces=["*"], mode="Enforce"),
    )
    dead_url = "https://127.0.0.1:1/validate"
    for policy, expected in (("Ignore", 0), ("Fail", 1)):
        register(
            control_plane,
            webhook_configuration(
                WEBHOOK_TEMPLATE, url=dead_url, ca_pem=testbed_ca.cert_pem, name="slimguard-down", failure_policy=policy
            ),
        )
        time.sleep(1)
        result = kubectl_apply(
            control_plane, deployment(f"while-down-{policy.lower()}", ns, fixture_images.slim_app.ref)
        )
        assert (result.returncode != 0) == bool(expected), (policy, result.stderr)
        if expected:
            assert 'failed calling webhook "images.slimguard.dev"' in result.stderr
        for system in ("kube-system", "slimguard"):
            created = kubectl_apply(
                control_plane, deployment(f"system-{policy.lower()}", system, fixture_images.fat_app.ref)
            )
            assert created.returncode == 0, (system, policy, created.stderr)
    control_plane.kubectl("delete", "validatingwebhookconfiguration", "slimguard-down")
    control_plane.kubectl("delete", "imagepolicy", "down-slim")


def test_killing_one_of_two_replicas_during_a_stream_of_creates_fails_no_create(
    control_plane: ControlPlane, webhook: WebhookReplicas, fixture_images: Any, testbed_ca: Any
) -> None:
    from cluster import WEBHOOK_TEMPLATE

    ns = "admit-rolling"
    apply(
        control_plane,
        namespace(ns),
        image_policy("rolling", {"maxCompressedSize": "200Mi"}, namespaces=[ns], mode="Enforce"),
    )
    register(
        control_plane,
        webhook_configuration(
            WEBHOOK_TEMPLATE, url=webhook.url, ca_pem=testbed_ca.cert_pem, name="slimguard-e2e", failure_policy="Fail"
        ),
    )
    time.sleep(1)
    failures: list[str] = []
    created = 0
    stop = threading.Event()

    def stream(worker: int) -> None:
        nonlocal created
        n = 0
        while not stop.is_set() and n < 400:
            name = f"roll-{worker}-{n:03d}"
            result = kubectl_apply(control_plane, deployment(name, ns, fixture_images.slim_app.ref))
            if result.returncode != 0:
                failures.append(result.stderr)
            else:
                created += 1
            n += 1

    streams = [threading.Thread(target=stream, args=(worker,)) for worker in range(3)]
    for thread in streams:
        thread.start()
    time.sleep(3)
    webhook.terminate(0)
    time.sleep(3)
    stop.set()
    for thread in streams:
        thread.join()
    register(
        control_plane,
        webhook_configuration(WEBHOOK_TEMPLATE, url=webhook.url, ca_pem=testbed_ca.cert_pem, name="slimguard-e2e"),
    )
    assert failures == []
    assert created > 10
    assert "slimguard_admission_reviews_total" in webhook.metrics(1)
