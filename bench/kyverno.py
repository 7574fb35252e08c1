"""Kyverno v1.19.1 beside slimguard: built from its Go module once (cached in ~/.cache/slimguard, like the Kubernetes
binaries), its CRDs installed, its admission controller run out of cluster against the test bed's apiserver, and
its own sample policy `block-large-images`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.common.measure import counter_total
from bench.common.processes import log, wait_serving
from bench.common.webhooks import NAMESPACE
from slimguard_testbed import ControlPlane, Registry, free_port
from slimguard_testbed.cache import cache_root, file_lock
from slimguard_testbed.process import ManagedProcess

KYVERNO_VERSION = "v1.19.1"
KYVERNO_MODULE = "github.com/kyverno/kyverno"
# Kyverno's go.mod replaces this one module; a throw-away module building it must say the same.
KYVERNO_REPLACE = (
    "k8s.io/pod-security-admission => github.com/kyverno/pod-security-admission v0.0.0-20251031094455-46f20778634f"
)
KYVERNO_POLICY = "block-large-images"
LIMIT = "200Mi"  # the sample's limit, and the one slimguard's ImagePolicy is given in the comparison


def kyverno_binary() -> Path:
    """Build Kyverno from its Go module once (~8 min with a warm Go cache; 190 MB) and keep it in the cache."""
    target = cache_root() / f"kyverno-{KYVERNO_VERSION}"
    binary = target / "kyverno"
    if binary.exists():
        return binary
    with file_lock(cache_root() / "kyverno-build.lock"):  # another run may be building it right now
        if binary.exists():
            return binary
        module = Path(tempfile.mkdtemp(prefix="kyverno-build-"))
        (module / "go.mod").write_text(f"module slimguard.dev/kyverno-build\n\ngo 1.25\n\nreplace {KYVERNO_REPLACE}\n")
        partial = target.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        log(f"building Kyverno {KYVERNO_VERSION} from its Go module (several minutes)")
        for command in (
            ["go", "get", f"{KYVERNO_MODULE}/cmd/kyverno@{KYVERNO_VERSION}"],
            ["go", "build", "-o", f"{partial}/", f"{KYVERNO_MODULE}/cmd/kyverno"],
        ):
            subprocess.run(command, cwd=module, check=True)
        partial.rename(target)
        shutil.rmtree(module, ignore_errors=True)
    return binary


def kyverno_module_dir() -> Path:
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(modcache) / f"{KYVERNO_MODULE}@{KYVERNO_VERSION}"


def kyverno_policy(*, to_string: bool = True) -> dict[str, Any]:
    """Kyverno's own sample (kyverno/policies, other/block-large-images) with the limit at 200Mi, in Enforce.

    Without `to_string` (the mistake its users commonly make) the sum is a number, which the quantity comparison
    cannot parse: Kyverno logs an error and the condition never holds.
    """
    jmespath = "to_string(sum(manifest.layers[*].size))" if to_string else "sum(manifest.layers[*].size)"
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": KYVERNO_POLICY},
        "spec": {
            "background": False,
            "rules": [
                {
                    "name": "block-over-200mi",
                    "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": [NAMESPACE]}}]},
                    "validate": {
                        "failureAction": "Enforce",
                        "message": f"Images containing layers which sum to more than {LIMIT} in size are not allowed.",
                        "foreach": [
                            {
                                "list": "request.object.spec.containers",
                                "context": [
                                    {
                                        "name": "imageSize",
                                        "imageRegistry": {"reference": "{{ element.image }}", "jmesPath": jmespath},
                                    }
                                ],
                                "deny": {
                                    "conditions": {
                                        "all": [{"key": LIMIT, "operator": "LessThan", "value": "{{imageSize}}"}]
                                    }
                                },
                            }
                        ],
                    },
                }
            ],
        },
    }


class Kyverno:
    """`kyverno` (the admission controller) out of cluster, with the recipe of shared/testbed.md."""

    def __init__(self, binary: Path, plane: ControlPlane, registry: Registry, workdir: Path) -> None:
        self.binary = binary
        self.plane = plane
        self.port = free_port()
        self.metrics_port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "KYVERNO_NAMESPACE": "kyverno",
                "KYVERNO_POD_NAME": "kyverno-local",
                "KYVERNO_SERVICEACCOUNT_NAME": "kyverno-admission-controller",
                "KYVERNO_ROLE_NAME": "kyverno",
                "KYVERNO_DEPLOYMENT": "kyverno",
                "KYVERNO_SVC": "kyverno-svc",
                "INIT_CONFIG": "kyverno",
                "METRICS_CONFIG": "kyverno-metrics",
                # --allowInsecureRegistry only falls back to plain HTTP; the registry's CA must be trusted.
                "SSL_CERT_FILE": str(registry.ca_file),
            }
        )
        self.process = ManagedProcess(
            "kyverno",
            [
                str(binary),
                f"--kubeconfig={plane.admin_kubeconfig}",
                f"--serverIP=127.0.0.1:{self.port}",
                "--webhookServerHost=127.0.0.1",
                f"--webhookServerPort={self.port}",
                f"--metricsPort={self.metrics_port}",
                "--metricsHost=127.0.0.1",
                "--controllerRuntimeMetricsAddress=0",
                "--admissionReports=false",
                "--allowInsecureRegistry",
                "--caSecretName=kyverno-svc.kyverno.svc.kyverno-tls-ca",
                "--tlsSecretName=kyverno-svc.kyverno.svc.kyverno-tls-pair",
                "--backgroundServiceAccountName=kyverno-background-controller",
                "--reportsServiceAccountName=kyverno-reports-controller",
            ],
            log_file=workdir / "kyverno.log",
            env=env,
        )

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def install(self) -> None:
        crds = kyverno_module_dir() / "config" / "crds"
        for folder in ("kyverno", "policyreport", "reports", "policies.kyverno.io"):
            self.plane.kubectl("apply", "--server-side", "-f", str(crds / folder))
        self.plane.kubectl("create", "namespace", "kyverno")
        self.plane.kubectl("create", "serviceaccount", "kyverno-admission-controller", "-n", "kyverno")
        self.plane.wait_established("clusterpolicies.kyverno.io")

    def start(self) -> Kyverno:
        self.process.start()

        def ready() -> bool:
            return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).status_code == 200

        failure = "Kyverno did not serve its metrics within 180 s"
        wait_serving(self.process, ready, timeout=180, every=0.5, failure=failure)
        return self

    def reviews(self) -> int:
        """Admission requests Kyverno has answered (its `kyverno_admission_requests_total`)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return int(counter_total(text, "kyverno_admission_requests_total"))

    def stop(self) -> None:
        self.process.stop()
