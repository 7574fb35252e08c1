"""A highly available controller (issue 22): two `slimguard controller` processes on one Lease, as the chart's two
replicas run, against an apiserver of their own (no other test's controller sees these workloads or this Lease).

Who wrote what is read from the apiserver's audit log: every write by the controllers' ServiceAccount, of any
resource (the Lease, workloads, Events, ImagePolicy status, ImageReports, PolicyReports), with the User-Agent that
names the replica and the apiserver's own timestamp. So "only the leader writes" is checked on every write the
apiserver took, and a failover is timed from the kill to the standby's first write of a workload, with the
apiserver's clock. Measured numbers are printed as ``LEADER-FAILOVER`` lines; the only thresholds are timeouts.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster import apply, deployment, image_policy, install_crds, namespace, wait_for, wait_for_status

from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, free_port
from slimguard_testbed.controller_process import ControllerProcess
from slimguard_testbed.controlplane import AuditedWrite
from slimguard_testbed.images import FixtureImage, push_image
from slimguard_testbed.install import NAMESPACE, install_rbac

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kustomize" / "base"
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:slimguard-controller"
LEASE = "slimguard-controller-ha"
NS = "ha"
TRIES = 5
NAMES = (f"controller-{n}" for n in itertools.count(1))
"""POD_IDs, unique in the module: the audit log tells replicas apart by them."""
# A control plane of its own, processes started and killed one after another, on a shared 2-core machine.
pytestmark = pytest.mark.timeout(900)


def measured(what: str, **numbers: Any) -> None:
    print(f"LEADER-FAILOVER {json.dumps({'what': what, **numbers}, sort_keys=True)}")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, testbed_ca: CertificateAuthority) -> Iterator[ControlPlane]:
    with ControlPlane(
        workdir=tmp_path_factory.mktemp("ha-plane"),
        ca=testbed_ca,
        audit_writers=(f"system:serviceaccounts:{NAMESPACE}",),
    ) as own:
        install_crds(own, policy_reports=True)
        yield own


@pytest.fixture(scope="module")
def kubeconfig(plane: ControlPlane) -> str:
    return str(install_rbac(plane, BASE, "controller"))


@pytest.fixture(scope="module")
def image(registry: Registry) -> FixtureImage:
    """Two layers: a policy allowing one finds it noncompliant, so the leader writes an Event too."""
    return push_image(registry.endpoint, "shop/ha-app", "1.0", [{"/app/a": b"a" * 512}, {"/app/b": b"b" * 512}])


@pytest.fixture(scope="module")
def cluster_state(plane: ControlPlane, image: FixtureImage) -> str:
    apply(plane, namespace(NS), image_policy("ha", {"maxLayers": 1}, namespaces=[NS]))
    return image.ref


@dataclass
class Replica:
    """One controller process, as one Pod of the chart's Deployment: ``name`` is its POD_ID."""

    name: str
    process: ControllerProcess
    liveness: int
    metrics: int

    @property
    def agent(self) -> str:
        """What its writes carry in the audit log: ``slimguard-controller/V (NAME_suffix)``."""
        return f"({self.name}_"

    def ready(self) -> bool:
        """Its probe answers (the chart's readiness and liveness probes ask the same endpoint)."""
        try:
            with httpx.Client(timeout=5) as http:
                return http.get(f"http://127.0.0.1:{self.liveness}/healthz").status_code == 200
        except httpx.TransportError:  # not listening yet: it starts once the start-up handler has run
            return False

    def leader_gauge(self) -> float | None:
        try:
            with httpx.Client(timeout=5) as http:
                text = http.get(f"http://127.0.0.1:{self.metrics}/metrics").text
        except httpx.TransportError:
            return None
        (line,) = [line for line in text.splitlines() if line.startswith("slimguard_leader ")]
        return float(line.split()[1])


class Replicas:
    """Starts replicas named controller-1, controller-2, ... on the one Lease; stops what is left at the end."""

    def __init__(self, kubeconfig: str, registry: Registry, workdir: Path) -> None:
        self.kubeconfig, self.registry, self.workdir = kubeconfig, registry, workdir
        self.started: list[Replica] = []
        self.since = datetime.now(UTC)

    def start(self) -> Replica:
        name = next(NAMES)
        liveness, metrics = free_port(), free_port()
        process = ControllerProcess(
            kubeconfig=self.kubeconfig,
            registry_ca_file=self.registry.ca_file,
            workdir=self.workdir / name,
            lease=LEASE,
            env={"POD_ID": name},
            extra_args=(
                f"--liveness=http://127.0.0.1:{liveness}/healthz",
                f"--metrics-port={metrics}",
                "--metrics-address=127.0.0.1",
            ),
        )
        process.start()
        replica = Replica(name, process, liveness, metrics)
        self.started.append(replica)
        return replica

    def stop(self) -> None:
        for replica in self.started:
            replica.process.stop()


@pytest.fixture
def replicas(kubeconfig: str, registry: Registry, tmp_path: Path) -> Iterator[Replicas]:
    running = Replicas(kubeconfig, registry, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def holder(plane: ControlPlane) -> str | None:
    found = plane.kubectl("get", "lease", LEASE, "-n", NAMESPACE, "-o", "json", "--ignore-not-found").stdout.strip()
    return (json.loads(found).get("spec") or {}).get("holderIdentity") if found else None


def wait_for_leader(plane: ControlPlane, *candidates: Replica) -> Replica:
    def leading() -> Replica | None:
        name = holder(plane)
        return next((r for r in candidates if name is not None and name.startswith(f"{r.name}_")), None)

    return wait_for(f"one of {[r.name for r in candidates]} to lead", leading, timeout=60)


def controller_writes(plane: ControlPlane, since: datetime) -> list[AuditedWrite]:
    """Every write the controllers' ServiceAccount made since ``since`` that the apiserver took, oldest first."""
    writes = [w for w in plane.audited_writes() if w.user == ACCOUNT and w.at is not None and w.at >= since]
    return sorted(writes, key=lambda w: w.at or since)


def writer(write: AuditedWrite, replicas: list[Replica]) -> str:
    (name,) = [r.name for r in replicas if r.agent in write.user_agent] or [write.user_agent]
    return name


def first_write(
    plane: ControlPlane, since: datetime, by: Replica, resource: str, name: str | None = None
) -> AuditedWrite:
    def found() -> AuditedWrite | None:
        return next(
            (
                w
                for w in controller_writes(plane, since)
                if w.resource == resource and name in (None, w.name) and by.agent in w.user_agent
            ),
            None,
        )

    return wait_for(f"{by.name}'s first write of {resource} {name or ''}", found, timeout=120, every=0.2)


def writers_in_turn(plane: ControlPlane, replicas: Replicas) -> list[str]:
    """The replicas in the order they wrote, consecutive writes of one counted once; asserts none wrote again
    after another had begun (each appears once)."""
    writes = controller_writes(plane, replicas.since)
    order = [name for name, _ in itertools.groupby(writer(w, replicas.started) for w in writes)]
    assert len(order) == len(set(order)), f"replicas wrote in turns: {order}"
    return order


def policy_status(plane: ControlPlane, name: str = "ha") -> dict[str, Any]:
    return dict(json.loads(plane.kubectl("get", "imagepolicy", name, "-o", "json").stdout).get("status") or {})


def test_of_two_replicas_one_writes_and_the_other_stands_by_ready_writing_nothing(
    plane: ControlPlane, replicas: Replicas, cluster_state: str
) -> None:
    first = replicas.start()
    second = replicas.start()
    leader = wait_for_leader(plane, first, second)
    standby = second if leader is first else first
    # A policy made after the replicas started, as an admin would: its status is the leader's to write too.
    apply(plane, image_policy("ha-late", {"maxCompressedSize": "1Gi"}, namespaces=[NS]))
    apply(plane, deployment("one-writer", NS, cluster_state))
    wait_for_status(plane, "Deployment", "one-writer", NS, "noncompliant", timeout=120)
    wait_for("the leader's ImagePolicy status", lambda: policy_status(plane).get("noncompliant", 0) >= 1)
    wait_for("the late policy's status", lambda: policy_status(plane, "ha-late").get("compliant", 0) >= 1)
    first_write(plane, replicas.since, leader, "policyreports")
    assert standby.ready()
    assert leader.ready()
    assert (leader.leader_gauge(), standby.leader_gauge()) == (1.0, 0.0)

    writes = controller_writes(plane, replicas.since)
    kinds = {(w.resource, w.subresource) for w in writes}
    # The leader's writes reached every kind slimguard writes; the standby made none, not even to the Lease.
    assert {("leases", ""), ("deployments", ""), ("events", ""), ("imagepolicies", "status")} <= kinds
    assert {("imagereports", ""), ("policyreports", "")} <= kinds
    assert {writer(w, replicas.started) for w in writes} == {leader.name}, "the standby wrote"
    assert standby.process.alive()
    assert "became the leader" not in standby.process.log()
    assert f"is held by {leader.name}_" in standby.process.log()


def test_the_standby_takes_over_from_a_killed_leader_5_times_in_a_row(
    plane: ControlPlane, replicas: Replicas, cluster_state: str
) -> None:
    """SIGKILL, as a node failure or the OOM killer: nothing is released, the standby waits the lease out. Each
    try kills the leader, creates a workload only the next leader can label, and starts a new standby."""
    first, second = replicas.start(), replicas.start()
    leader = wait_for_leader(plane, first, second)
    standby = second if leader is first else first
    leaders = [leader]
    taken, written = [], []
    for attempt in range(1, TRIES + 1):
        wait_for(f"{standby.name} to be a Ready standby", lambda s=standby: s.ready() and s.leader_gauge() == 0.0)
        name = f"after-kill-{attempt}"
        killed_at = datetime.now(UTC)
        leader.process.kill()
        apply(plane, deployment(name, NS, cluster_state))
        write = first_write(plane, replicas.since, standby, "deployments", name)
        lease = first_write(plane, replicas.since, standby, "leases")
        assert write.at is not None
        assert lease.at is not None
        taken.append(round((lease.at - killed_at).total_seconds(), 2))
        written.append(round((write.at - killed_at).total_seconds(), 2))
        measured("SIGKILL", attempt=attempt, lease_taken_s=taken[-1], first_workload_write_s=written[-1])
        wait_for_status(plane, "Deployment", name, NS, "noncompliant", timeout=60)
        leader, standby = standby, replicas.start()
        leaders.append(leader)
    measured("SIGKILL summary", first_workload_write_s=written, lease_taken_s=taken, worst_s=max(written))
    assert writers_in_turn(plane, replicas) == [r.name for r in leaders]


def test_a_leader_stopped_with_sigterm_releases_its_lease_and_the_standby_writes_within_seconds(
    plane: ControlPlane, replicas: Replicas, cluster_state: str
) -> None:
    """SIGTERM, as the kubelet sends when the leader's Pod is deleted, drained or rolled: exit 0, the lease
    released after its last write, the standby leading at its next poll instead of after the lease duration."""
    first, second = replicas.start(), replicas.start()
    leader = wait_for_leader(plane, first, second)
    standby = second if leader is first else first
    wait_for(f"{standby.name} to be a Ready standby", lambda: standby.ready() and standby.leader_gauge() == 0.0)
    stopped_at = datetime.now(UTC)
    started = time.monotonic()
    code = leader.process.terminate()
    exited = time.monotonic() - started
    apply(plane, deployment("after-sigterm", NS, cluster_state))
    write = first_write(plane, replicas.since, standby, "deployments", "after-sigterm")
    lease = first_write(plane, replicas.since, standby, "leases")
    log = leader.process.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "released lease" in log
    assert write.at is not None
    assert lease.at is not None
    measured(
        "SIGTERM",
        process_exit_s=round(exited, 2),
        lease_taken_s=round((lease.at - stopped_at).total_seconds(), 2),
        first_workload_write_s=round((write.at - stopped_at).total_seconds(), 2),
    )
    assert writers_in_turn(plane, replicas) == [leader.name, standby.name]
