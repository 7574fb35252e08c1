"""The admission benchmarks' bed (admission_latency, kyverno_comparison): the namespace their creates go to,
slimguard's webhook replica and the always-allow floor beside it (bench/always_allow.py: the same certificate,
TLS settings, port sharing and ValidatingWebhookConfiguration; only the url differs), and switching the
apiserver from one webhook to another."""

from __future__ import annotations

import contextlib
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common.apiserver import Apiserver
from bench.common.measure import counter_total
from bench.common.processes import wait_serving
from slimguard_testbed import CertificateAuthority, ControlPlane, Registry, TestbedError, free_port
from slimguard_testbed.install import install_rbac
from slimguard_testbed.process import ManagedProcess
from slimguard_testbed.webhook import WebhookReplicas, webhook_configuration
from slimguard_testbed.workloads import namespace

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "kustomize" / "base" / "validatingwebhookconfiguration.yaml"
ALWAYS_ALLOW = REPO / "bench" / "always_allow.py"
NAMESPACE = "admission-bench"
CONFIGURATIONS_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
REVIEWS = "slimguard_admission_reviews_total"  # the webhook's counter of reviews answered


class WebhookBench:
    """What both admission benchmarks hold: the apiserver, the registry, the CA, slimguard's replica and
    always-allow beside it, and a serial for the names of what they create."""

    def __init__(
        self,
        *,
        api: Apiserver,
        registry: Registry,
        ca: CertificateAuthority,
        slimguard: WebhookReplicas,
        always: AlwaysAllowProcess,
    ) -> None:
        self.api = api
        self.registry = registry
        self.ca = ca
        self.slimguard = slimguard
        self.always = always
        self.serial = 0

    @property
    def slimguard_pid(self) -> int:
        pid = self.slimguard.processes[0].pid
        assert pid is not None
        return pid

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial:05d}"

    def reviews(self) -> dict[str, int]:
        """Reviews answered so far by each webhook."""
        return {
            "slimguard": int(counter_total(self.slimguard.metrics(0), REVIEWS)),
            "always-allow": self.always.reviews(),
        }

    def url(self, variant: str) -> str | None:
        """Where the apiserver sends reviews for a variant of this bench's own configuration (None: nowhere)."""
        return {"slimguard": self.slimguard.url, "always-allow": self.always.url}.get(variant)


class AlwaysAllowProcess:
    """bench/always_allow.py as a child process on its own port, with slimguard's certificate."""

    def __init__(self, *, cert_file: Path, key_file: Path, ca: CertificateAuthority, workdir: Path) -> None:
        self.port = free_port()
        self.ca = ca
        self.process = ManagedProcess(
            "always-allow",
            [
                sys.executable,
                str(ALWAYS_ALLOW),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--cert-file",
                str(cert_file),
                "--key-file",
                str(key_file),
            ],
            log_file=workdir / "always-allow.log",
        )
        self.http = httpx.Client(
            base_url=f"https://127.0.0.1:{self.port}",
            verify=ssl.create_default_context(cadata=ca.cert_pem.decode()),
            timeout=5,
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/validate"

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def start(self) -> AlwaysAllowProcess:
        self.process.start()

        def ready() -> bool:
            return self.http.get("/readyz").status_code == 200

        wait_serving(self.process, ready, timeout=30, every=0.1, failure="always-allow did not become ready")
        return self

    def stop(self) -> None:
        self.http.close()
        self.process.stop()

    def reviews(self) -> int:
        return int(self.http.get("/stats").json()["reviews"])

    def last_review(self, kind: str) -> dict[str, Any]:
        response = self.http.get(f"/last/{kind}")
        response.raise_for_status()
        review: dict[str, Any] = response.json()
        return review


def prepare_namespace(plane: ControlPlane, api: Apiserver) -> Path:
    """slimguard's CRDs and its webhook's RBAC (the install's own), and the bench namespace with its default
    ServiceAccount (Pods are refused until the controller-manager has made it). Returns the webhook's kubeconfig."""
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    plane.wait_established("imagepolicies.slimguard.dev")
    kubeconfig = install_rbac(plane, REPO / "deploy" / "kustomize" / "base", "webhook")
    api.post("/api/v1/namespaces", namespace(NAMESPACE))
    deadline = time.monotonic() + 60
    while not api.exists(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"):
        if time.monotonic() > deadline:
            raise TestbedError("no default ServiceAccount in the bench namespace after 60 s")
        time.sleep(0.2)
    return kubeconfig


def start_webhooks(
    stack: contextlib.ExitStack,
    work: Path,
    *,
    ca: CertificateAuthority,
    kubeconfig: Path,
    registry: Registry,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
) -> tuple[WebhookReplicas, AlwaysAllowProcess]:
    """One `slimguard webhook` replica and always-allow on its certificate, both stopped with ``stack``.
    ``python``: the interpreter that runs the replica (a wrapper setting PYTHONPATH runs another build)."""
    replicas = WebhookReplicas(
        kubeconfig=str(kubeconfig),
        ca=ca,
        registry_ca_file=str(registry.ca_file),
        workdir=work,
        replicas=1,
        shutdown_delay=0.2,
        extra_args=tuple(extra_args),
        python=python,
    )
    stack.enter_context(replicas)
    always = AlwaysAllowProcess(cert_file=replicas.cert_file, key_file=replicas.key_file, ca=ca, workdir=work)
    stack.callback(always.stop)
    always.start()
    return replicas, always


def point_configuration(api: Apiserver, name: str, url: str | None, ca: CertificateAuthority) -> None:
    """The ValidatingWebhookConfiguration ``name`` pointed at ``url``, or removed (None)."""
    api.delete(f"{CONFIGURATIONS_PATH}/{name}")
    if url is not None:
        # failurePolicy Fail: a review that does not happen fails the create, so none can pass unseen.
        configuration = webhook_configuration(TEMPLATE, url=url, ca_pem=ca.cert_pem, name=name, failure_policy="Fail")
        api.post(CONFIGURATIONS_PATH, configuration)


def wait_reviewed_by(
    api: Apiserver,
    variant: str,
    probe: dict[str, Any],
    reviews: Callable[[], dict[str, int]],
    *,
    timeout: float,
    every: float,
    times: int = 1,
) -> None:
    """Until a server-side dry-run create of ``probe`` (a Pod) reaches ``variant``'s webhook and no other's
    (``reviews``: each webhook's count of reviews answered; "none": no webhook at all), ``times`` in a row: the
    apiserver's informer of webhook configurations lags behind their writes."""
    deadline = time.monotonic() + timeout
    text = ""
    seen = 0
    while time.monotonic() < deadline:
        before = reviews()
        status, text, _ = api.create("Pod", probe, dry_run=True)
        after = reviews()
        moved = {name for name in before if after[name] > before[name]}
        if status == 201 and moved == (set() if variant == "none" else {variant}):
            seen += 1
            if seen == times:
                return
        else:
            seen = 0
        time.sleep(every)
    raise TestbedError(f"the apiserver did not switch to {variant} in {timeout:.0f} s (last answer: {text[:300]})")
