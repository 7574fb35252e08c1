"""The real node starts, runs Pods that reach the cluster only through the node's bridge, and leaves this machine
as it found it: after its own stop, and after a run killed outright (undone by the next start or by
``python -m slimguard_testbed.node down``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pods import pod_phase, sleeping_pod

from slimguard_testbed import oci
from slimguard_testbed.cache import cache_dir, k8s_binaries
from slimguard_testbed.images.small_bases import build_busybox
from slimguard_testbed.node import NodeNetwork, RealNode
from slimguard_testbed.node.host import HostChanges, host_snapshot, read_sysctl
from slimguard_testbed.node.network import KUBELET_HOST_SYSCTLS, TOUCHED_SYSCTLS
from slimguard_testbed.process import wait_until
from slimguard_testbed.registry import RegistryEndpoint

# Own nodes, started and stopped here: ~30 s each warm. A deadline against hangs, never a speed claim.
pytestmark = [pytest.mark.own_node, pytest.mark.timeout(600)]

OPERATOR_DIR = Path(__file__).resolve().parents[3] / "operator"


def snapshot(workdir: Path) -> dict[str, object]:
    return host_snapshot(
        sysctls=TOUCHED_SYSCTLS, mount_roots=(cache_dir("realnode"), workdir), address=NodeNetwork().host_ip
    )


def run_pod(kubectl: Any, registry: RegistryEndpoint, name: str) -> None:
    oci.push(registry, "node-test/busybox", "1", build_busybox())
    pod = sleeping_pod(name, "default", f"{registry.host}/node-test/busybox:1")
    kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))


def test_a_stopped_node_leaves_the_machine_as_it_found_it(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    node = RealNode(workdir=tmp_path).start()
    try:
        print(f"real node Ready in {node.ready_seconds:.1f} s")
        # The kubelet set these for itself at start; the shared machine has its own values back at once.
        assert {name: read_sysctl(name) for name in KUBELET_HOST_SYSCTLS} == {
            name: before["sysctls"][name]  # type: ignore[index]
            for name in KUBELET_HOST_SYSCTLS
        }
        run_pod(node.kubectl, node.registry.endpoint, "sleeper")
        wait_until(lambda: pod_phase(node, "sleeper", "default") == "Running", timeout=120, what="the Pod to run")

        # The Pod reaches the apiserver through the `kubernetes` Service (kube-proxy's DNAT, on the bridge), and
        # it has no route but the bridge's: no default route, so any other address is unreachable from inside.
        reached = node.kubectl(
            "exec", "sleeper", "--", "sh", "-c", "busybox nc -w 3 10.96.0.1 443 </dev/null && echo connected"
        )
        assert reached.stdout.strip() == "connected"
        routes = node.kubectl("exec", "sleeper", "--", "busybox", "ip", "route").stdout
        assert [" ".join(line.split()[:3]) for line in routes.splitlines()] == [
            "10.96.0.0/16 via 10.244.0.1",
            "10.244.0.0/24 dev eth0",
        ]
        # Seen from the machine: Service and Pod addresses go to the bridge, and the fence is up.
        node.network.check_contained()
        assert node.leftovers()  # there is something to clean up
        # ... but not by `node down` while this node runs: it refuses, and the node goes on.
        down = subprocess.run(
            [sys.executable, "-m", "slimguard_testbed.node", "down"],
            capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(OPERATOR_DIR)},
        )  # fmt: skip
        assert down.returncode == 1
        assert "another session runs a real node" in down.stderr
        assert node.failure() is None
        node.network.check_contained()
    finally:
        node.stop()
    assert node.leftovers() == []
    assert snapshot(tmp_path) == before


def test_a_node_killed_outright_is_undone_by_node_down(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(OPERATOR_DIR), "TMPDIR": str(tmp_path)}
    up = subprocess.Popen(
        [sys.executable, "-m", "slimguard_testbed.node", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert up.stdout is not None
        said = "".join(up.stdout.readline() for _ in range(2))
        kubeconfig_line = re.search(r"KUBECONFIG=(\S+)", said)
        registry_line = re.search(r"registry: (\S+) \(CA (\S+)\)", said)
        assert kubeconfig_line, said
        assert registry_line, said
        kubeconfig, (registry, ca) = kubeconfig_line.group(1), registry_line.groups()
        kubectl_binary = str(k8s_binaries() / "kubectl")

        def kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [kubectl_binary, f"--kubeconfig={kubeconfig}", *args], input=input, text=True, capture_output=True,
                check=True,
            )  # fmt: skip

        run_pod(kubectl, RegistryEndpoint(registry, Path(ca), None, None), "orphan")

        def running() -> bool:
            phase = kubectl("get", "pod", "orphan", "-o", "jsonpath={.status.phase}").stdout
            return phase == "Running"

        wait_until(running, timeout=120, what="the Pod to run")
    finally:
        up.send_signal(signal.SIGKILL)  # no stop, no undo: what a killed pytest leaves
        up.wait()
    time.sleep(1)  # the node's processes die with their parent (PDEATHSIG); its container and shim do not
    left = snapshot(tmp_path)
    assert left != before
    assert HostChanges(cache_dir("realnode") / "host-changes.jsonl").pending

    down = subprocess.run(
        [sys.executable, "-m", "slimguard_testbed.node", "down"], capture_output=True, text=True, env=env, check=False
    )
    assert (down.returncode, down.stdout.strip()) == (0, "clean"), down.stdout + down.stderr
    assert snapshot(tmp_path) == before
