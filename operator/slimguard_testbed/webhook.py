"""Webhook replicas run as real ``slimguard webhook`` processes, and their registration with the apiserver.

Replicas share one port (SO_REUSEPORT), so the single ``url`` an apiserver can call here reaches all of them,
as a Service would. The registration is the install's own ValidatingWebhookConfiguration (deploy/), with its
Service clientConfig swapped for that URL.
"""

from __future__ import annotations

import base64
import copy
import os
import signal
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from slimguard_testbed.certs import CertificateAuthority, KeyPair
from slimguard_testbed.controlplane import ControlPlane
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError, as_uid

SELF_MANAGED_SECRET = "slimguard-webhook-tls"
SELF_MANAGED_SERVICE = "slimguard-webhook"
SELF_MANAGED_CONFIGURATION = "slimguard"
"""The names the install's RBAC (deploy/kustomize/base) lets the webhook's ServiceAccount write: its Secret, in its
namespace (the test bed's ``install.NAMESPACE``), and the ValidatingWebhookConfiguration whose caBundle it keeps."""


@dataclass(frozen=True)
class SelfManaged:
    """``--certificate-secret``: the replicas make and rotate their own certificate, for 127.0.0.1 too (the
    apiserver calls them by ``url``); the Secret lives in ``namespace``. Short delays make a rotation seconds long."""

    namespace: str
    secret: str = SELF_MANAGED_SECRET
    configuration: str = SELF_MANAGED_CONFIGURATION
    trust_delay: float = 3.0
    overlap: float = 3.0

    def args(self) -> list[str]:
        return [
            "--certificate-secret", self.secret, "--namespace", self.namespace, "--service", SELF_MANAGED_SERVICE,
            "--webhook-configuration", self.configuration, "--certificate-host", "127.0.0.1",
            "--ca-trust-delay", str(self.trust_delay), "--ca-overlap", str(self.overlap),
        ]  # fmt: skip


class WebhookReplicas:
    def __init__(
        self,
        *,
        kubeconfig: str,
        ca: CertificateAuthority,
        registry_ca_file: str | None,
        workdir: Path,
        replicas: int = 2,
        timeout_seconds: float = 3.0,
        shutdown_delay: float = 1.0,
        cert_reload_interval: float = 10.0,
        serving: KeyPair | None = None,
        extra_args: tuple[str, ...] = (),
        path: str = "/validate",
        as_uid: int | None = None,
        python: str = sys.executable,
        self_managed: SelfManaged | None = None,
    ) -> None:
        """``registry_ca_file`` None: no ``--ca-file``, as a fresh install without the registry's CA runs;
        ``serving``: the certificate to present (default: a fresh one from ``ca`` for 127.0.0.1);
        ``extra_args``: more flags for ``slimguard webhook`` (e.g. ``--tag-ttl``); ``path``: where reviews are
        served (``--path``, the webhook configuration's clientConfig path); ``as_uid``: run the replicas under
        that UID with no user name known to them (``process.as_uid``; ``workdir`` must be theirs), with ``python``,
        an interpreter that UID can execute; ``self_managed``: no certificate files, the replicas make their own
        (``cert_file`` and ``key_file`` are then unused, and /readyz is asked without verifying, as the kubelet
        asks)."""
        self.kubeconfig = kubeconfig
        self.ca = ca
        self.registry_ca_file = registry_ca_file
        self.workdir = workdir
        self.count = replicas
        self.timeout_seconds = timeout_seconds
        self.shutdown_delay = shutdown_delay
        self.cert_reload_interval = cert_reload_interval
        self.extra_args = extra_args
        self.path = path
        self.as_uid = as_uid
        self.python = python
        self.self_managed = self_managed
        self.port = free_port()
        self.metrics_ports: list[int] = []
        self.processes: list[ManagedProcess] = []
        serving = serving or ca.issue("slimguard-webhook", hosts=("127.0.0.1",))
        self.cert_file, self.key_file = serving.write(workdir, "webhook")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"

    def _client(self) -> httpx.Client:
        if self.self_managed is not None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        return httpx.Client(verify=context, timeout=2)

    def _certificate_args(self) -> list[str]:
        if self.self_managed is not None:
            return self.self_managed.args()
        return ["--tls-cert-file", str(self.cert_file), "--tls-key-file", str(self.key_file)]

    def start_replica(self, *, wait_ready: bool = True) -> ManagedProcess:
        """Start one more replica; with ``wait_ready`` False, wait only for its metrics (it may never be ready)."""
        process, metrics_port = self._spawn_replica()
        self._wait_ready(process, metrics_port, https=wait_ready)
        return process

    def spawn(self) -> ManagedProcess:
        """Start one more replica and return at once: a benchmark times the way to its first decision itself."""
        return self._spawn_replica()[0]

    def start_together(self, count: int) -> list[ManagedProcess]:
        """Start ``count`` replicas at the same moment, then wait for each to be ready (as a Deployment's Pods)."""
        spawned = [self._spawn_replica() for _ in range(count)]
        for process, metrics_port in spawned:
            self._wait_ready(process, metrics_port, https=True)
        return [process for process, _ in spawned]

    def _spawn_replica(self) -> tuple[ManagedProcess, int]:
        index = len(self.processes)
        metrics_port = free_port()
        as_user: list[str] = []
        env: dict[str, str] | None = None
        if self.as_uid is not None:
            as_user, env = as_uid(self.as_uid, home=self.workdir, env=os.environ)
            os.chown(self.cert_file, self.as_uid, self.as_uid)
            os.chown(self.key_file, self.as_uid, self.as_uid)
        process = ManagedProcess(
            f"webhook-{index}",
            [
                *as_user,
                self.python,
                "-m",
                "slimguard.cli.main",
                "webhook",
                "--kubeconfig",
                self.kubeconfig,
                *self._certificate_args(),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--metrics-port",
                str(metrics_port),
                "--timeout-seconds",
                str(self.timeout_seconds),
                "--shutdown-delay",
                str(self.shutdown_delay),
                "--cert-reload-interval",
                str(self.cert_reload_interval),
                "--allow-loopback-registries",
                *(["--ca-file", self.registry_ca_file] if self.registry_ca_file is not None else []),
                # Its default left unsaid, as a user leaves it.
                *(["--path", self.path] if self.path != "/validate" else []),
                *self.extra_args,
            ],
            log_file=self.workdir / f"webhook-{index}.log",
            env=env,
        )
        process.start()
        self.processes.append(process)
        self.metrics_ports.append(metrics_port)
        return process, metrics_port

    def _wait_ready(self, process: ManagedProcess, metrics_port: int, *, https: bool, timeout: float = 120) -> None:
        # A deadline, not a speed claim: on a loaded machine importing kopf alone can take half a minute.
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as plain:
            while time.monotonic() < deadline:
                process.check_alive()
                try:
                    # The shared port's /readyz may be a sibling's answer, and the metrics port is up before the
                    # replica has loaded policies and ImageReports: its own log says when it serves.
                    serving = "slimguard webhook started" in process.log_file.read_text(errors="replace")
                    if serving and plain.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 200:
                        if not https:
                            return
                        with self._client() as client:
                            if client.get(f"https://127.0.0.1:{self.port}/readyz").status_code == 200:
                                return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise TestbedError(f"webhook replica did not become ready:\n{process.tail()}")

    def start(self) -> WebhookReplicas:
        for _ in range(self.count):
            self.start_replica()
        return self

    def failure(self) -> str | None:
        """Why the replicas are unusable (a replica exited that no one stopped or terminated), else None."""
        for process in self.processes:
            if (reason := process.failure()) is not None:
                return reason
        return None

    def terminate(self, index: int, timeout: float = 30) -> int | None:
        """SIGTERM, as the kubelet sends: the replica drains and exits. Returns its exit code (None: killed)."""
        process = self.processes[index]
        if process.pid is not None and process.alive():
            os.kill(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while process.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        code = process.returncode
        process.stop()
        return code

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def metrics(self, index: int) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_ports[index]}/metrics", timeout=5).text

    def __enter__(self) -> WebhookReplicas:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def webhook_configuration(
    template: Path, *, url: str, ca_pem: bytes | None, name: str, failure_policy: str = "Ignore"
) -> dict[str, Any]:
    """The install's ValidatingWebhookConfiguration, pointed at ``url`` instead of the Service; without ``ca_pem``,
    no caBundle, as the install renders it for a webhook that patches its own in."""
    document = next(
        doc
        for doc in yaml.safe_load_all(template.read_text())
        if doc and doc["kind"] == "ValidatingWebhookConfiguration"
    )
    configuration: dict[str, Any] = copy.deepcopy(document)
    configuration["metadata"] = {"name": name}
    for webhook in configuration["webhooks"]:
        webhook["clientConfig"] = {"url": url}
        if ca_pem is not None:
            webhook["clientConfig"]["caBundle"] = base64.b64encode(ca_pem).decode()
        webhook["failurePolicy"] = failure_policy
    return configuration


def register(plane: ControlPlane, configuration: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(configuration))
