"""The real node's network, kept on this machine.

Pods live on a bridge of their own; the apiserver, the kubelet and the node's registry listen on the bridge's
address, where Pods reach them. Nothing a Pod or a Service sends may leave the machine, so:
- the Service CIDR is routed onto the bridge (a bare blackhole route would make host-originated Service traffic,
  e.g. apiserver -> webhook ClusterIP, fail with EINVAL before kube-proxy's OUTPUT DNAT runs); a blackhole stays
  behind it with a worse metric;
- an nftables table drops any forwarding into or out of the bridge from another interface and any packet from
  the pod or Service CIDR leaving by an interface other than the bridge or loopback (kube-proxy's own ACCEPT
  rules come before a plain iptables DROP, so that alone would not do), plus an iptables DROP for good measure;
- the CNI bridge does not masquerade and Pods get no upstream DNS (the kubelet's resolv.conf names 127.0.0.1);
- ``check_contained`` asks the kernel (``ip route get``) where Service and Pod addresses go, before anything runs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from slimguard_testbed.node.host import HostChanges, read_sysctl, run
from slimguard_testbed.process import TestbedError

# Sysctls the bridge plugin, the kubelet or this module change; their values of before are restored on stop.
TOUCHED_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.panic_on_oom",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.conf.all.route_localnet",
)
# The kubelet (protectKernelDefaults: false) sets these when it starts and never reads them again: the shared
# host gets its own values back as soon as the node is up.
KUBELET_HOST_SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
FENCE_TABLE = "slimguard_node_fence"


@dataclass(frozen=True)
class NodeNetwork:
    """Addresses of the one real node a machine runs (CIDRs as in the verified recipe, bridge of our own name)."""

    bridge: str = "slimguard0"
    host_ip: str = "10.244.0.1"
    pod_subnet: str = "10.244.0.0/24"
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    # Fixed ports below the ephemeral range: the bridge address is the node's alone, and a free port picked from
    # the ephemeral range could be the source port of a connection to the apiserver on that address already.
    apiserver_port: int = 6443
    registry_port: int = 5000

    @property
    def kubernetes_service_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_cidr)[1])

    def fence_rules(self) -> str:
        """The nftables table that keeps Pod and Service traffic on the bridge."""
        bridge, cluster, services = self.bridge, self.cluster_cidr, self.service_cidr
        return f"""table ip {FENCE_TABLE} {{
  chain forward {{
    type filter hook forward priority -200; policy accept;
    ip saddr {cluster} ip daddr != {cluster} drop
    iifname "{bridge}" oifname != "{bridge}" drop
    iifname != "{bridge}" oifname "{bridge}" drop
  }}
  chain postrouting {{
    type filter hook postrouting priority 300; policy accept;
    oifname != {{ "lo", "{bridge}" }} ip saddr {cluster} drop
    oifname != {{ "lo", "{bridge}" }} ip daddr {services} drop
    oifname != {{ "lo", "{bridge}" }} ct original ip daddr {services} drop
  }}
}}
"""

    def refuse_if_taken(self) -> None:
        """Refuse to start where these addresses are already in use (a real cluster's CNI uses 10.244/16 too)."""
        if run(["ip", "link", "show", self.bridge], check=False).returncode == 0:
            raise TestbedError(f"network interface {self.bridge} exists: another real node runs, or one was not undone")
        for network in (self.cluster_cidr, self.service_cidr):
            routes = run(["ip", "-o", "route", "show", "match", network]).stdout
            for route in routes.splitlines():
                if not route.startswith("default"):
                    raise TestbedError(f"{network} is already routed on this machine ({route.strip()}): not starting")

    def bring_up(self, changes: HostChanges) -> None:
        """Bridge, routes and fence, each remembered in ``changes`` as it is made."""
        for name in TOUCHED_SYSCTLS:
            changes.remember(["sysctl", "-qw", f"{name}={read_sysctl(name)}"])
        changes.make(["ip", "link", "add", self.bridge, "type", "bridge"], undo=["ip", "link", "del", self.bridge])
        run(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        changes.make(
            ["ip", "route", "add", "blackhole", self.service_cidr, "metric", "4000"],
            undo=["ip", "route", "del", "blackhole", self.service_cidr, "metric", "4000"],
        )
        changes.make(
            ["ip", "route", "add", self.service_cidr, "dev", self.bridge, "metric", "100"],
            undo=["ip", "route", "del", self.service_cidr, "dev", self.bridge, "metric", "100"],
        )
        changes.make(["nft", "-f", "-"], input=self.fence_rules(), undo=["nft", "delete", "table", "ip", FENCE_TABLE])
        drop = ["FORWARD", "-s", self.cluster_cidr, "!", "-d", self.cluster_cidr, "-j", "DROP"]
        changes.make(["iptables", "-I", *drop], undo=["iptables", "-D", *drop])
        # Forwarding between the bridge's ports goes through iptables (kube-proxy's DNAT of Pod -> Service).
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"])
        self.check_contained()

    def check_contained(self) -> None:
        """The kernel routes Service and Pod addresses onto the bridge, and the fence is in place."""
        services = ipaddress.ip_network(self.service_cidr)
        pods = ipaddress.ip_network(self.pod_subnet)
        for address in (services[1], services[200 * 256 + 200], pods[7]):
            route = run(["ip", "-o", "route", "get", str(address)]).stdout
            device = route.split(" dev ", 1)[1].split()[0] if " dev " in route else ""
            if device != self.bridge:
                raise TestbedError(f"{address} would leave by {device or route.strip()!r}, not {self.bridge}")
        if f"ip {FENCE_TABLE}" not in run(["nft", "list", "tables"]).stdout:
            raise TestbedError(f"the nftables fence {FENCE_TABLE} is not in place")


__all__ = ["FENCE_TABLE", "KUBELET_HOST_SYSCTLS", "TOUCHED_SYSCTLS", "NodeNetwork"]
