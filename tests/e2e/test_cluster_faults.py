"""Cluster faults, caused for real: the controller SIGKILLed mid-audit, the apiserver restarted with etcd
stopped (for the controller and the webhook, and for the workload informer's watch), the controller under an
address-space cap. Each on a control plane of its own, so no other test's
operator sees these workloads. Measured numbers are printed as ``FAULT-MATRIX`` lines (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cluster import VIOLATIONS, apply, deployment, get, image_policy, namespace, status_of, wait_for

from slimguard.kube.informer import ResourceInformer, http_client
from slimguard.kube.login import connection_info
from slimguard.kube.resources import WORKLOAD_RESOURCES
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.controller_process import ControllerProcess
from slimguard_testbed.install import install_rbac
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kustomize" / "base"
WORKLOADS = 300
# A control plane of its own and a few hundred workloads on a shared 2-core machine: deadlines, not claims.
pytestmark = pytest.mark.timeout(600)


def measured(fault: str, **numbers: Any) -> None:
    print(f"FAULT-MATRIX {json.dumps({'fault': fault, **numbers}, sort_keys=True)}")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[ControlPlane]:
    with ControlPlane(workdir=tmp_path_factory.mktemp("faulty-plane"), ca=testbed_ca) as own:
        own.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        own.wait_established("imagepolicies.slimguard.dev")
        yield own


@pytest.fixture(scope="module")
def controller_kubeconfig(plane: ControlPlane) -> str:
    return str(install_rbac(plane, BASE, "controller"))


def statuses(plane: ControlPlane, ns: str) -> dict[str, str]:
    listed = json.loads(plane.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)["items"]
    return {item["metadata"]["name"]: status_of(item) or "" for item in listed}


def expected_status(name: str) -> str:
    return "noncompliant" if name.startswith("fat-") else "compliant"


def create_fleet(plane: ControlPlane, ns: str, fat: str, slim: str) -> None:
    """A third of the workloads on the fat image; one kubectl apply, given the time a loaded machine needs."""
    documents = [
        deployment(f"fat-{n:03d}", ns, fat) if n % 3 == 0 else deployment(f"slim-{n:03d}", ns, slim)
        for n in range(WORKLOADS)
    ]
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents), timeout=600)


def test_a_controller_killed_mid_audit_finishes_after_a_restart_with_nothing_lost_or_doubled(
    plane: ControlPlane, controller_kubeconfig: str, registry: Registry, fixture_images: Any, tmp_path: Path
) -> None:
    ns = "killed-mid-audit"
    apply(plane, namespace(ns))
    create_fleet(plane, ns, fixture_images.fat_app.ref, fixture_images.slim_app.ref)
    policy = image_policy("killed", {"maxCompressedSize": "200Mi"}, namespaces=[ns])
    first = ControllerProcess(
        kubeconfig=controller_kubeconfig, registry_ca_file=str(registry.ca_file), workdir=tmp_path
    )
    with first:
        apply(plane, policy)
        at_kill = wait_for(
            "the audit to be under way",
            lambda: (n := sum(1 for s in statuses(plane, ns).values() if s)) >= 20 and n,
            every=0.1,
        )
        first.kill()
    done_at_kill = sum(1 for s in statuses(plane, ns).values() if s)
    assert done_at_kill < WORKLOADS, "the audit finished before the kill: nothing was interrupted"

    restarted_at = time.monotonic()
    second = ControllerProcess(
        kubeconfig=controller_kubeconfig, registry_ca_file=str(registry.ca_file), workdir=tmp_path / "restarted"
    )
    with second:
        wait_for(
            f"all {WORKLOADS} deployments to carry their verdict",
            lambda: all(status == expected_status(name) for name, status in statuses(plane, ns).items()),
            timeout=240,
        )
        recovered = time.monotonic() - restarted_at

        def consistent_status() -> dict[str, Any] | None:
            status = (get(plane, "imagepolicy", "killed") or {}).get("status") or {}
            counts = tuple(status.get(key) for key in ("matchedWorkloads", "compliant", "noncompliant", "errors"))
            return status if counts == (WORKLOADS, WORKLOADS * 2 // 3, WORKLOADS // 3, 0) else None

        wait_for("the ImagePolicy status to count the whole fleet", consistent_status, timeout=60)

    listed = json.loads(plane.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)["items"]
    for item in listed:
        found = item["metadata"].get("annotations") or {}
        if item["metadata"]["name"].startswith("fat-"):
            assert [v["rule"] for v in json.loads(found[VIOLATIONS])] == ["maxCompressedSize"]
        else:
            assert VIOLATIONS not in found, "a compliant workload carries no finding annotation"
    events = json.loads(
        plane.kubectl("get", "events", "-n", ns, "--field-selector", "reason=ImagePolicyViolation", "-o", "json").stdout
    )["items"]
    per_workload = Counter(event["involvedObject"]["name"] for event in events)
    fat = {item["metadata"]["name"] for item in listed if item["metadata"]["name"].startswith("fat-")}
    assert set(per_workload) == fat, "every noncompliant workload has its Event, and only those"
    assert max(per_workload.values()) == 1, "no workload's Event was posted twice"
    assert all(event.get("count", 1) == 1 for event in events)
    measured(
        "controller SIGKILLed mid-audit",
        workloads=WORKLOADS,
        verdicts_before_kill=done_at_kill,
        seen_under_way=at_kill,
        seconds_to_all_verdicts_after_restart=round(recovered, 1),
        events=len(events),
    )
    plane.kubectl("delete", "namespace", ns, "--wait=false")
    plane.kubectl("delete", "imagepolicy", "killed")


def _ready(replicas: WebhookReplicas) -> int:
    try:
        with replicas._client() as client:
            return client.get(f"https://127.0.0.1:{replicas.port}/readyz").status_code
    except httpx.HTTPError:
        return 0


def test_an_apiserver_restart_with_etcd_stopped_is_ridden_out_by_the_controller_and_the_webhook(
    plane: ControlPlane,
    controller_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    fixture_images: Any,
    tmp_path: Path,
) -> None:
    ns, later_ns = "outage", "outage-later"
    apply(
        plane,
        namespace(ns),
        namespace(later_ns),
        image_policy("outage", {"maxCompressedSize": "200Mi"}, namespaces=[ns], mode="Enforce"),
    )
    webhook_kubeconfig = str(install_rbac(plane, BASE, "webhook"))
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path / "webhook",
        replicas=1,
    )
    controller = ControllerProcess(
        kubeconfig=controller_kubeconfig, registry_ca_file=str(registry.ca_file), workdir=tmp_path
    )
    with controller, replicas:
        register(
            plane,
            webhook_configuration(
                BASE / "validatingwebhookconfiguration.yaml",
                url=replicas.url,
                ca_pem=testbed_ca.cert_pem,
                name="slimguard-outage",
                failure_policy="Fail",
            ),
        )
        apply(plane, deployment("before", ns, fixture_images.slim_app.ref))
        wait_for("the verdict before the outage", lambda: statuses(plane, ns).get("before") == "compliant")

        started = time.monotonic()
        plane.outage(etcd_down_seconds=5)
        outage = time.monotonic() - started
        ready_after_outage = _ready(replicas)

        # Watches resumed: a policy and workloads created after the outage are seen by both components.
        back = time.monotonic()
        apply(
            plane,
            image_policy("outage-later", {"maxCompressedSize": "200Mi"}, namespaces=[later_ns], mode="Enforce"),
        )

        def fat_denied() -> str | None:
            result = plane.kubectl(
                "apply",
                "-f",
                "-",
                input=yaml.safe_dump(deployment("fat-after", later_ns, fixture_images.fat_app.ref)),
                check=False,
            )
            if result.returncode == 0:  # not seen yet: take it away and try again
                plane.kubectl("delete", "deployment", "fat-after", "-n", later_ns, "--ignore-not-found")
                return None
            return result.stderr if "denied the request" in result.stderr else None

        denial = wait_for("the webhook to enforce a policy made after the outage", fat_denied, timeout=90, every=1)
        webhook_caught_up = time.monotonic() - back
        assert 'ImagePolicy "outage-later" allows 200 MiB' in denial
        apply(plane, deployment("after", ns, fixture_images.slim_app.ref))
        wait_for(
            "the controller's verdict on a workload made after the outage",
            lambda: statuses(plane, ns).get("after") == "compliant",
            timeout=90,
        )
        controller_caught_up = time.monotonic() - back
        assert controller.alive(), "the controller restarted itself"
        assert all(process.alive() for process in replicas.processes), "a webhook replica restarted itself"
        assert _ready(replicas) == 200
        plane.kubectl("delete", "validatingwebhookconfiguration", "slimguard-outage")
    measured(
        "kube-apiserver restarted, etcd stopped 5 s",
        outage_seconds=round(outage, 1),
        webhook_ready_right_after=ready_after_outage,
        seconds_to_webhook_enforcing_a_new_policy=round(webhook_caught_up, 1),
        seconds_to_controller_verdict_on_a_new_workload=round(controller_caught_up, 1),
    )
    plane.kubectl("delete", "imagepolicy", "outage", "outage-later")


ADDRESS_SPACE_CAP = 1 << 30


def test_a_controller_capped_at_1_gib_of_address_space_still_finishes_a_large_audit(
    plane: ControlPlane, controller_kubeconfig: str, registry: Registry, fixture_images: Any, tmp_path: Path
) -> None:
    ns = "capped"
    apply(plane, namespace(ns))
    create_fleet(plane, ns, fixture_images.fat_app.ref, fixture_images.slim_app.ref)
    capped = ControllerProcess(
        kubeconfig=controller_kubeconfig,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        address_space=ADDRESS_SPACE_CAP,
    )
    with capped:
        started = time.monotonic()
        apply(plane, image_policy("capped", {"maxCompressedSize": "200Mi"}, namespaces=[ns]))
        wait_for(
            f"all {WORKLOADS} deployments under the cap to carry their verdict",
            lambda: all(status == expected_status(name) for name, status in statuses(plane, ns).items()),
            timeout=300,
        )
        memory = capped.memory()
        peak_address_space, peak_resident = memory.peak_address_space_bytes, memory.peak_rss_bytes
        assert capped.alive()
        log = capped.log()
    assert peak_address_space <= ADDRESS_SPACE_CAP
    assert "MemoryError" not in log
    measured(
        "controller under a 1 GiB address-space cap (ulimit -v)",
        workloads=WORKLOADS,
        seconds_to_all_verdicts=round(time.monotonic() - started, 1),
        peak_address_space_mib=peak_address_space >> 20,
        peak_resident_mib=peak_resident >> 20,
    )
    plane.kubectl("delete", "namespace", ns, "--wait=false")
    plane.kubectl("delete", "imagepolicy", "capped")


def test_a_controller_given_too_little_address_space_exits_at_once_saying_so_in_one_line(
    controller_kubeconfig: str, registry: Registry, tmp_path: Path
) -> None:
    """At 160 MiB CPython fails at random places during an audit (MemoryError in a library, or SIGSEGV, seen
    both): the controller refuses such a limit at start, in one line, rather than fail unclearly later."""
    starved = ControllerProcess(
        kubeconfig=controller_kubeconfig,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        address_space=160 << 20,
    )
    starved.launch()
    try:
        wait_for("the starved controller to exit", lambda: not starved.alive(), timeout=60, every=0.2)
        exit_code = starved.returncode
        log = starved.log()
    finally:  # a controller that hangs instead (as it once did) must not outlive the test
        starved.stop()
    last_line = log.rstrip().splitlines()[-1]
    assert exit_code == 3
    assert last_line == (
        "slimguard controller: out of memory (address-space limit 160 MiB): it needs at least 512 MiB of "
        "address space; give it more memory (resources.limits.memory)"
    )


@pytest.mark.timeout(300)
async def test_a_deletion_made_while_no_watch_was_open_is_seen_when_the_expired_watch_is_replaced_by_a_relist(
    plane: ControlPlane, controller_kubeconfig: str
) -> None:
    ns = "informer-relist"
    image = "registry.example/app:1"
    await asyncio.to_thread(apply, plane, namespace(ns), deployment("stays", ns, image), deployment("goes", ns, image))
    deleted: dict[str, bool] = {}

    def observe(kind: str, body: Mapping[str, Any], gone: bool) -> None:
        if body["metadata"].get("namespace") == ns:
            deleted[str(body["metadata"]["name"])] = gone

    client = http_client(lambda: connection_info(controller_kubeconfig))
    informer = ResourceInformer("Deployment", WORKLOAD_RESOURCES["Deployment"], lambda: client, observe)

    async def watch_until(what: str, done: Callable[[], bool]) -> None:
        task = asyncio.create_task(informer.run())
        try:
            deadline = time.monotonic() + 120  # a deadline for waiting, not a claim
            while not done():
                assert time.monotonic() < deadline, f"timed out waiting for {what}; seen {deleted}"
                await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        await watch_until("both listed", lambda: deleted == {"stays": False, "goes": False})
        await asyncio.to_thread(plane.kubectl, "delete", "deployment", "-n", ns, "goes")
        # A restarted apiserver's watch cache begins after the informer's resourceVersion: the watch is refused
        # as expired (410), and only a new LIST can show what went in between.
        await asyncio.to_thread(plane.outage)
        await watch_until("the deletion", lambda: deleted.get("goes") is True)
        assert deleted == {"stays": False, "goes": True}
        assert informer.lists == 2, "the expired watch was replaced by a LIST"
    finally:
        await client.aclose()
