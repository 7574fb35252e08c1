"""Where the test bed keeps what outlives a run: Kubernetes binaries, the Docker data root, image fixtures."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slimguard_testbed.process import TestbedError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_K8S = REPO_ROOT / "scripts" / "build-k8s.sh"


def cache_root() -> Path:
    """The cache directory shared with `scripts/build-k8s.sh` ($SLIMGUARD_CACHE or ~/.cache/slimguard)."""
    root = os.environ.get("SLIMGUARD_CACHE") or str(Path.home() / ".cache" / "slimguard")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(name: str) -> Path:
    """A named sub-directory of the cache, created if missing."""
    path = cache_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an flock on `path` so concurrent test sessions on one machine do not race each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def k8s_binaries() -> Path:
    """The directory holding kube-apiserver, kube-controller-manager and kubectl.

    Runs `scripts/build-k8s.sh`, which returns at once when the binaries are cached (or in
    $KUBEBUILDER_ASSETS) and builds them otherwise (~10 min cold).
    """
    return _built_k8s("control", ("kube-apiserver", "kube-controller-manager", "kubectl"))


@functools.cache
def node_binaries() -> Path:
    """The directory holding the real node's kubelet, kube-scheduler, kube-proxy and pause binaries.

    `scripts/build-k8s.sh node`: ~1 min once the control part has warmed Go's build cache, ~5 min cold.
    """
    return _built_k8s("node", ("kubelet", "kube-scheduler", "kube-proxy", "pause"))


def _built_k8s(part: str, names: tuple[str, ...]) -> Path:
    # The lock keeps two sessions from building at once: the script starts by wiping its work directory.
    if not BUILD_K8S.exists():
        raise TestbedError(f"{BUILD_K8S} is missing")
    with file_lock(cache_root() / "k8s-build.lock"):
        result = subprocess.run(
            ["bash", str(BUILD_K8S), part], capture_output=True, text=True, check=False, cwd=REPO_ROOT
        )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-30:])
        raise TestbedError(f"scripts/build-k8s.sh {part} failed ({result.returncode}):\n{tail}")
    directory = Path(result.stdout.strip().splitlines()[-1])
    for name in names:
        if not (directory / name).exists():
            raise TestbedError(f"{name} is missing from {directory}")
    return directory


def etcd_binary() -> Path:
    """etcd from $KUBEBUILDER_ASSETS when it has one (envtest convention), else Debian's etcd-server."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and (Path(assets) / "etcd").exists():
        return Path(assets) / "etcd"
    return require_binary("etcd", hint="apt-get install etcd-server")


def require_binary(name: str, *, hint: str) -> Path:
    """The path of a program on $PATH (or /usr/sbin, which root's PATH may lack); fails loudly if absent."""
    found = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    if found is None:
        raise TestbedError(f"{name} not found: {hint} (or run scripts/bootstrap.sh)")
    return Path(found)
