"""A one-node Kubernetes v1.36 whose Pods really run, on this machine: the test bed's third tier.

etcd, kube-apiserver and kube-controller-manager (``ControlPlane``, its apiserver on the node's bridge address),
kube-scheduler, a TLS registry on the bridge address that containerd pulls from, containerd 1.6 with runc and
the CNI bridge plugin, the kubelet and kube-proxy (iptables mode). Pods reach the apiserver through the
``kubernetes`` Service and the registry on the bridge; the apiserver reaches webhooks through their Services.

One real node per machine (fixed CIDRs and bridge): an flock serialises sessions. Host changes go through
``HostChanges`` (``node/host.py``) and the network stays on the machine (``node/network.py``). What the three
walls of the recipe (../shared/realnode) needed is set where it is needed: ``failCgroupV1: false`` (this
machine has cgroup v1), ``restrict_oom_score_adj`` (no CAP_SYS_RESOURCE here, so runc cannot lower the pause
container's oom_score_adj), containerd 1.6 without the ``RuntimeConfig`` CRI call (the kubelet falls back).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import yaml

from slimguard_testbed import oci
from slimguard_testbed.cache import cache_dir, k8s_binaries, node_binaries, require_binary
from slimguard_testbed.certs import CertificateAuthority
from slimguard_testbed.controlplane import ControlPlane, client_cert
from slimguard_testbed.lifecycle import Service
from slimguard_testbed.node.host import (
    KUBELET_HOST_PATHS,
    HostChanges,
    ProcessRecord,
    kill_cgroup_members,
    kubepods_cgroups,
    mounts_below,
    nft_tables,
    processes_with_argument,
    remove_cgroups,
    remove_empty_nft_tables,
    remove_kubelet_chains,
    run,
    unmount_below,
)
from slimguard_testbed.node.network import KUBELET_HOST_SYSCTLS, NodeNetwork
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError, wait_until
from slimguard_testbed.registry import Registry

NODE_NAME = "slimguard-node"
PAUSE_REPOSITORY = "slimguard-node/pause"
PAUSE_TAG = "3.10"
# containerd answers `ctr version` before its CRI service has initialised, and a kubelet started in that gap exits
# with "server is not initialized" (seen once in ~30 node starts). containerd 1.6 marks the CRI service initialised
# right after logging this line, and there is no crictl here to ask the CRI itself.
_CRI_SERVING = "Start streaming server"
_NODE_PACKAGES = "apt-get install containerd runc containernetworking-plugins nftables iptables"
_CNI_BIN = Path("/usr/lib/cni")


class RealNode(Service):
    """The whole one-node cluster; ``kubectl`` and ``server`` as on ``ControlPlane``; ``registry`` for images.

    ``registry_storage``: serve an existing registry directory on the bridge (the e2e session's, so every image
    pushed there is pullable by the node at once). State that outlives a run (containerd's image store, the
    journal of host changes, the lock) lives in ``~/.cache/slimguard/realnode``; logs and configs in ``workdir``.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        ca: CertificateAuthority | None = None,
        registry_storage: Path | None = None,
        network: NodeNetwork | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.workdir = workdir
        self.ca = ca or CertificateAuthority("slimguard real node CA")
        self.network = network or NodeNetwork()
        self.start_timeout = start_timeout
        self.state = cache_dir("realnode")
        self.changes = HostChanges(self.state / "host-changes.jsonl")
        self.pids = ProcessRecord(self.state / "processes.jsonl")
        self.plane = ControlPlane(
            workdir=workdir / "control-plane",
            ca=self.ca,
            address=self.network.host_ip,
            service_cidr=self.network.service_cidr,
            controllers="*",
            apiserver_args=self._apiserver_args(),
            start_timeout=start_timeout,
            port=self.network.apiserver_port,
        )
        self.registry = Registry(
            storage_dir=registry_storage or workdir / "registry-storage",
            ca=self.ca,
            workdir=workdir / "registry",
            address=self.network.host_ip,
        )
        self.registry.port = self.network.registry_port
        self._processes: list[ManagedProcess] = []
        self._lock: IO[str] | None = None
        self.ready_seconds = 0.0
        """How long the last start took from the first host change to a Ready node."""

    # -- public surface -------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return self.plane.server

    @property
    def admin_kubeconfig(self) -> Path:
        return self.plane.admin_kubeconfig

    @property
    def containerd_socket(self) -> Path:
        return self.state / "containerd-state" / "containerd.sock"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, **kwargs)

    def apply(self, manifest: str | Path) -> subprocess.CompletedProcess[str]:
        return self.plane.apply(manifest)

    def image(self, repository: str, tag: str) -> str:
        """The reference a Pod uses for an image in the node's registry."""
        return f"{self.registry.host}/{repository}:{tag}"

    def failure(self) -> str | None:
        """Why the node is unusable (one of its processes exited on its own), else None."""
        for reason in (self.plane.failure(), self.registry.failure(), *(p.failure() for p in self._processes)):
            if reason is not None:
                return reason
        return None

    def process(self, name: str) -> ManagedProcess:
        return next(process for process in self._processes if process.name == name)

    def leftovers(self) -> list[str]:
        """What of the node is still on the host (empty once it is stopped): for the teardown's own test."""
        found = []
        if self.changes.pending:
            found.append(f"undone host changes in {self.changes.journal}")
        found += [f"node process {pid}" for pid in self.pids.survivors()]
        if run(["ip", "link", "show", self.network.bridge], check=False).returncode == 0:
            found.append(f"network interface {self.network.bridge}")
        found += [f"nft table {table}" for table in nft_tables() if "slimguard_node" in table]
        found += [f"cgroup {cgroup}" for cgroup in kubepods_cgroups()]
        found += [f"containerd shim {pid}" for pid in processes_with_argument(str(self.containerd_socket))]
        found += [f"mount {target}" for target in mounts_below(self.state, self.workdir)]
        return found

    # -- start-up -------------------------------------------------------------------------------------

    def _start(self) -> None:
        k8s_binaries()  # building (or a missing binary) fails here, before any change to the host
        node = node_binaries()
        tools = {
            name: require_binary(name, hint=_NODE_PACKAGES)
            for name in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "nft", "iptables", "ip")
        }
        if not (_CNI_BIN / "bridge").exists():
            raise TestbedError(f"no CNI bridge plugin in {_CNI_BIN}: {_NODE_PACKAGES}")
        if os.geteuid() != 0:
            raise TestbedError("the real node needs root (bridge, routes, nftables, cgroups, mounts)")
        self._lock = take_node_lock(self.state / "lock")
        clean_leftovers(self)  # of a run that was killed before it could stop
        self.network.refuse_if_taken()
        (self.state / "nft-tables.before").write_text("\n".join(sorted(nft_tables())))
        for path in KUBELET_HOST_PATHS:
            if not path.exists():
                self.changes.remember(["rm", "-rf", str(path)])
        for stale in ("containerd-state", "kubelet", "cni", "pod-logs"):
            shutil.rmtree(self.state / stale, ignore_errors=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()

        self.network.bring_up(self.changes)
        pki = self.workdir / "pki"
        self.ca.write(pki, with_key=True)
        self.ca.issue("kube-apiserver-kubelet-client", organizations=("system:masters",)).write(pki, "kubelet-client")
        self.plane.start()
        for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
            self.pids.remember(self.plane.process(name).pid)
        self.registry.start()
        self.pids.remember(self.registry.pid)
        self._push_pause(node / "pause")
        self._start_containerd(tools["containerd"], tools["runc"])
        self._start_kubelet(node / "kubelet", pki)
        self._start_kube_proxy(node / "kube-proxy")
        self._start_scheduler(node / "kube-scheduler")
        self._wait_ready()
        self.changes.restore_sysctls(KUBELET_HOST_SYSCTLS)
        self.network.check_contained()
        self.ready_seconds = time.monotonic() - started

    def _apiserver_args(self) -> tuple[str, ...]:
        pki = self.workdir / "pki"
        return (
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--enable-admission-plugins=NodeRestriction",
        )

    def _kubeconfig(self, name: str, common_name: str, organizations: tuple[str, ...] = ()) -> Path:
        path = self.workdir / "kubeconfigs" / f"{name}.kubeconfig"
        identity = self.ca.issue(common_name, organizations=organizations)
        self.plane.write_kubeconfig(path, user=name, credentials=client_cert(identity))
        return path

    def _spawn(self, name: str, argv: list[Any]) -> ManagedProcess:
        process = ManagedProcess(name, [str(a) for a in argv], log_file=self.log_dir / f"{name}.log", cwd=self.workdir)
        self._processes.append(process)
        process.start()
        self.pids.remember(process.pid)
        return process

    def _push_pause(self, binary: Path) -> None:
        layer = oci.layer_from_files({"pause": (binary.read_bytes(), 0o755)}, created_by="COPY pause /pause")
        image = oci.build_image([layer], entrypoint=["/pause"], user="65535:65535")
        oci.push(self.registry.endpoint, PAUSE_REPOSITORY, PAUSE_TAG, image)

    def _start_containerd(self, containerd: Path, runc: Path) -> None:
        etc = self.workdir / "etc"
        certs = etc / "certs.d"
        registry_hosts = certs / self.registry.host / "hosts.toml"
        registry_hosts.parent.mkdir(parents=True, exist_ok=True)
        registry_hosts.write_text(
            f'server = "https://{self.registry.host}"\n'
            f'[host."https://{self.registry.host}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
            f'  ca = "{self.registry.ca_file}"\n'
        )
        # An image named without a registry (a typo) would be docker.io's: send it to a closed loopback port.
        (certs / "docker.io").mkdir(parents=True, exist_ok=True)
        (certs / "docker.io" / "hosts.toml").write_text('server = "https://127.0.0.1:9"\n')
        cni = etc / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-slimguard-node.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        state = self.containerd_socket.parent
        config = etc / "containerd.toml"
        config.write_text(
            _CONTAINERD_CONFIG.format(
                root=self.state / "containerd-root",
                state=state,
                socket=self.containerd_socket,
                pause=self.image(PAUSE_REPOSITORY, PAUSE_TAG),
                runc=runc,
                runc_root=state / "runc",
                cni_bin=_CNI_BIN,
                cni_conf=cni,
                certs=certs,
            )
        )
        process = self._spawn("containerd", [containerd, f"--config={config}"])
        ctr = require_binary("ctr", hint=_NODE_PACKAGES)
        wait_until(
            lambda: (
                run([str(ctr), "--address", str(self.containerd_socket), "version"], check=False).returncode == 0
                and _CRI_SERVING in process.log_file.read_text(errors="replace")
            ),
            timeout=30,
            what="containerd and its CRI service",
            watch=[process],
            interval=0.2,
        )

    def _cni_config(self) -> dict[str, Any]:
        net = self.network
        return {
            "cniVersion": "1.0.0",
            "name": "slimguard-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": net.bridge,
                    "isGateway": True,
                    "ipMasq": False,  # nothing leaves the machine, so nothing needs the host's address
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.state / "cni"),
                        "ranges": [[{"subnet": net.pod_subnet, "gateway": net.host_ip}]],
                        "routes": [{"dst": net.service_cidr}],
                    },
                }
            ],
        }

    def _start_kubelet(self, kubelet: Path, pki: Path) -> None:
        etc = self.workdir / "etc"
        resolv = etc / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")  # Pods get no DNS server beyond their own loopback
        serving_cert, serving_key = self.ca.issue(NODE_NAME, hosts=(self.network.host_ip, NODE_NAME)).write(
            pki, "kubelet-serving"
        )
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # Kubernetes 1.36 refuses cgroup v1 by default; this machine has it
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": self.network.host_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "tlsCertFile": str(serving_cert),
            "tlsPrivateKeyFile": str(serving_key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            "podLogsDir": str(self.state / "pod-logs"),
            "failSwapOn": False,
            "serializeImagePulls": False,
            # A shared build machine's disk is never the node's to reclaim: no eviction, no image GC.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "maxPods": 40,
        }
        config_file = etc / "kubelet.yaml"
        config_file.write_text(yaml.safe_dump(config))
        kubeconfig = self._kubeconfig("kubelet", f"system:node:{NODE_NAME}", ("system:nodes",))
        self._spawn(
            "kubelet",
            [
                kubelet,
                f"--config={config_file}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.state / 'kubelet'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.network.host_ip}",
            ],
        )

    def _start_kube_proxy(self, kube_proxy: Path) -> None:
        net = self.network
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self._kubeconfig("kube-proxy", "system:kube-proxy"))},
            "hostnameOverride": NODE_NAME,
            "bindAddress": net.host_ip,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "clusterCIDR": net.cluster_cidr,
            "detectLocalMode": "ClusterCIDR",
            "nodePortAddresses": [f"{net.host_ip}/32"],
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
            # Zeroes: kube-proxy leaves the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        config_file = self.workdir / "etc" / "kube-proxy.yaml"
        config_file.write_text(yaml.safe_dump(config))
        self.changes.remember([str(kube_proxy), "--cleanup", f"--config={config_file}"])
        self._spawn("kube-proxy", [kube_proxy, f"--config={config_file}"])

    def _start_scheduler(self, scheduler: Path) -> None:
        kubeconfig = self._kubeconfig("kube-scheduler", "system:kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                scheduler,
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--profiling=false",
            ],
        )

    def _wait_ready(self) -> None:
        ready = '{.status.conditions[?(@.type=="Ready")].status}'

        def node_ready() -> bool:
            result = self.kubectl("get", "node", NODE_NAME, "-o", f"jsonpath={ready}", check=False)
            return result.stdout.strip() == "True"

        wait_until(node_ready, timeout=self.start_timeout, what=f"node {NODE_NAME} Ready", interval=0.2,
                   watch=self._processes)  # fmt: skip
        wait_until(
            lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
            timeout=self.start_timeout,
            what="the default ServiceAccount",
            interval=0.2,
        )

    # -- stop -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Pods away through the kubelet (CNI DEL, sandboxes' mounts gone), node components, control plane, then
        every host change undone; idempotent. Raises if something of the node is still on the host."""
        if self._lock is None:
            return
        try:
            self._drain_pods()
            for name in ("kube-scheduler", "kube-proxy", "kubelet", "containerd"):
                with contextlib.suppress(StopIteration):
                    self.process(name).stop(timeout=15)
            self._processes.clear()
            self.registry.stop()
            self.plane.stop()
            clean_leftovers(self)
        finally:
            release_node_lock(self._lock)
            self._lock = None
        left = self.leftovers()
        if left:
            raise TestbedError(f"the real node left on this machine: {'; '.join(left)}")

    def _drain_pods(self) -> None:
        with contextlib.suppress(StopIteration):
            self.plane.process("kube-controller-manager").stop()  # nothing recreates what is deleted
        with contextlib.suppress(StopIteration):
            self.process("kube-scheduler").stop()
        if not (self._alive("kubelet") and self.plane.failure() is None and self.plane.port):
            return
        kubectl = ("--request-timeout=10s",)
        self.kubectl("delete", "validatingwebhookconfigurations,mutatingwebhookconfigurations", "--all",
                     *kubectl, check=False)  # fmt: skip
        self.kubectl("delete", "pods", "--all", "-A", "--grace-period=1", "--wait=false", *kubectl, check=False)
        ctr = shutil.which("ctr")
        if ctr is None:
            return
        wait_until(
            lambda: (
                not run(
                    [ctr, "--address", str(self.containerd_socket), "-n", "k8s.io", "tasks", "ls", "-q"], check=False
                ).stdout.strip()
            ),
            timeout=45,
            what="the node's containers to stop",
            interval=0.5,
            fail=False,
        )

    def _alive(self, name: str) -> bool:
        try:
            return self.process(name).alive()
        except StopIteration:
            return False


def clean_leftovers(node: RealNode) -> list[str]:
    """Stop and undo whatever a node left on this machine (its own stop, or a run killed outright): containers
    whose shim outlived containerd, mounts below the node's directories, the journal of host changes, the
    kubelet's iptables chains, emptied nft tables, the kubepods cgroups. Returns the undo commands that failed."""
    node.pids.kill_survivors()
    for pid in processes_with_argument(f"-address {node.containerd_socket}"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    kill_cgroup_members(kubepods_cgroups())
    unmount_below(node.state, node.workdir)
    failed = node.changes.undo_all()
    remove_kubelet_chains()
    before_file = node.state / "nft-tables.before"
    before = before_file.read_text().splitlines() if before_file.exists() else []
    remove_empty_nft_tables(keep=before)
    remove_cgroups(kubepods_cgroups())
    return failed


def take_node_lock(path: Path, *, timeout: float = 1200.0) -> IO[str]:
    """One real node per machine: wait (a while) for a node another session runs to stop; refuse at once a second
    node in this process, which would wait for itself."""
    if _RUNNING_HERE:
        raise TestbedError("this process already runs a real node, and a machine runs one at a time")
    handle = path.open("a")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise TestbedError(
                    f"another session runs a real node (it holds {path}; waited {timeout:.0f} s)"
                ) from None
            time.sleep(1)
            continue
        _RUNNING_HERE.add(path)
        return handle


def release_node_lock(handle: IO[str]) -> None:
    _RUNNING_HERE.discard(Path(handle.name))
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


_RUNNING_HERE: set[Path] = set()  # the lock files this process holds


_CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{state}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE here: runc cannot set the sandbox's oom_score_adj of -998 ("can't get final child's PID
  # from pipe: EOF"); clamp every score to containerd's own instead.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"""

__all__ = ["NODE_NAME", "RealNode", "clean_leftovers", "release_node_lock", "take_node_lock"]
