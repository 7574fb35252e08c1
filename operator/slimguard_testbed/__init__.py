"""The slimguard test bed: real parts started on 127.0.0.1 for the end-to-end tests, the benchmarks and
the demo. A Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager), OCI registries with
TLS and htpasswd or bearer-token auth, and a Docker Engine. Nothing here is a mock.
"""

from slimguard_testbed.cache import cache_dir, cache_root, k8s_binaries, node_binaries
from slimguard_testbed.certs import CertificateAuthority, KeyPair
from slimguard_testbed.controlplane import ControlPlane, KubectlError
from slimguard_testbed.docker_engine import DockerEngine
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import TestbedError
from slimguard_testbed.registry import Registry, RegistryEndpoint, RegistryRequest
from slimguard_testbed.token_issuer import TokenIssuer, TokenRequest

__all__ = [
    "CertificateAuthority",
    "ControlPlane",
    "DockerEngine",
    "KeyPair",
    "KubectlError",
    "Registry",
    "RegistryEndpoint",
    "RegistryRequest",
    "TestbedError",
    "TokenIssuer",
    "TokenRequest",
    "cache_dir",
    "cache_root",
    "free_port",
    "k8s_binaries",
    "node_binaries",
]
