"""The real node: a one-node Kubernetes whose Pods run (kubelet, containerd, CNI, kube-proxy), on this machine."""

from __future__ import annotations

from slimguard_testbed.node.cluster import NODE_NAME, RealNode, clean_leftovers
from slimguard_testbed.node.network import NodeNetwork

__all__ = ["NODE_NAME", "NodeNetwork", "RealNode", "clean_leftovers"]
