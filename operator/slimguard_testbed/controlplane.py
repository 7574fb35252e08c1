"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager.

There is no scheduler and no kubelet: Pods stay Pending, but admission, RBAC, garbage collection and
workload controllers (Deployment -> ReplicaSet -> Pods) run for real.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

from slimguard_testbed.cache import etcd_binary, k8s_binaries
from slimguard_testbed.certs import CertificateAuthority, KeyPair, key_pem, public_key_pem, rsa_key
from slimguard_testbed.lifecycle import Service
from slimguard_testbed.ports import free_port
from slimguard_testbed.process import ManagedProcess, TestbedError, pid_alive, wait_until

# Controllers that need nodes, a pod network or a cloud: none exist here.
_CONTROLLERS = "*,-nodeipam,-nodelifecycle,-service,-route,-cloud-node-lifecycle"
_FIELD_MANAGER = "slimguard-testbed"
# The apiserver's audit policy when writes are audited: every create, update and patch of an apps object, at
# the Metadata level (who, what, the answer; no bodies), once each (at ResponseComplete).
_WRITE_AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch"], "resources": [{"group": "apps"}]},
        {"level": "None"},
    ],
}


@dataclass(frozen=True)
class AuditedWrite:
    """One write to an apps object (or by an ``audit_writers`` user) as the apiserver's audit log tells it."""

    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user: str
    code: int
    user_agent: str = ""
    """Who wrote, within ``user``: slimguard's controller names its replica here (``slimguard-controller/V (ID)``)."""
    at: datetime | None = None
    """When the apiserver answered it (its stageTimestamp, ResponseComplete)."""


@dataclass(frozen=True)
class AuditedRead:
    """One GET, LIST or WATCH of an ``audit_reads`` resource as the apiserver's audit log tells it."""

    verb: str
    """get, list or watch."""
    resource: str
    namespace: str
    user: str
    uri: str
    """The request URI as sent: its ``limit``, ``continue`` and ``resourceVersion`` say how it was paged."""
    stage: str
    """ResponseComplete; a watch is also logged when its response starts (ResponseStarted)."""
    user_agent: str = ""

    @property
    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.uri).query).items()}


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; unlike CalledProcessError, the message shows what kubectl said."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stderr or '').strip()}"


class ControlPlane(Service):
    """etcd + kube-apiserver + kube-controller-manager with real TLS and `--authorization-mode=Node,RBAC`.

    Use as a context manager, or call `start()` and `stop()`. Logs go to `workdir/logs/`.
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        binaries: Path | None = None,
        ca: CertificateAuthority | None = None,
        apiserver_args: tuple[str, ...] = (),
        start_timeout: float = 60.0,
        audit_writes: bool = False,
        audit_writers: tuple[str, ...] = (),
        audit_reads: tuple[str, ...] = (),
        address: str = "127.0.0.1",
        service_cidr: str = "10.0.0.0/24",
        controllers: str = _CONTROLLERS,
        controller_manager_args: tuple[str, ...] = (),
        port: int = 0,
    ) -> None:
        """``audit_writes``: the apiserver logs every write to an apps object (``audited_writes``), so a test
        can count who wrote what. Off by default: benchmarks must not pay for it. ``audit_writers``: user groups
        (``system:serviceaccounts:NS``) whose every write, of any resource, is logged too. ``audit_reads``:
        resources (``plural.group``) whose every GET, LIST and WATCH is logged (``audited_reads``), to count how a
        component reads them.

        ``address``, ``port``, ``service_cidr``, ``controllers`` and ``controller_manager_args``: where the
        apiserver listens (port 0: a free one) and what the controller-manager runs; the real node
        (``slimguard_testbed.node``) puts the apiserver on its bridge, where Pods reach it through the
        ``kubernetes`` Service, and runs the node-facing controllers.
        """
        self._own_workdir = workdir is None
        self._keep_workdir = False
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="slimguard-cp-"))
        self._binaries = binaries
        self.ca = ca or CertificateAuthority()
        self.apiserver_args = apiserver_args
        self.start_timeout = start_timeout
        self.audit_writes = audit_writes or bool(audit_writers)
        self.audit_writers = audit_writers
        self.audit_reads = audit_reads
        self.address = address
        self.service_cidr = service_cidr
        self.controllers = controllers
        self.controller_manager_args = controller_manager_args
        self.port = port
        self._etcd_data: Path | None = None
        self._processes: list[ManagedProcess] = []

    # -- public surface -------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def binaries(self) -> Path:
        if self._binaries is None:
            self._binaries = k8s_binaries()
        return self._binaries

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def audit_log(self) -> Path:
        return self.log_dir / "audit.log"

    def audited_writes(
        self, *, resource: str | None = None, namespace: str | None = None, name: str | None = None
    ) -> list[AuditedWrite]:
        """Every write to an apps object so far, oldest first (needs ``audit_writes``), optionally of one object."""
        if not self.audit_writes:
            raise TestbedError("this control plane does not audit writes: start it with audit_writes=True")
        found = []
        for line in self.audit_log.read_text().splitlines() if self.audit_log.exists() else ():
            event = json.loads(line)
            target = event.get("objectRef") or {}
            write = AuditedWrite(
                verb=str(event.get("verb")),
                resource=str(target.get("resource") or ""),
                subresource=str(target.get("subresource") or ""),
                namespace=str(target.get("namespace") or ""),
                name=str(target.get("name") or ""),
                user=str((event.get("user") or {}).get("username") or ""),
                code=int((event.get("responseStatus") or {}).get("code") or 0),
                user_agent=str(event.get("userAgent") or ""),
                at=_timestamp(event.get("stageTimestamp")),
            )
            if all(
                wanted is None or have == wanted
                for wanted, have in ((resource, write.resource), (namespace, write.namespace), (name, write.name))
            ):
                found.append(write)
        return found

    def audited_reads(self, resource: str, *, user: str | None = None) -> list[AuditedRead]:
        """Every GET, LIST and WATCH of ``resource`` (``plural.group``, one of ``audit_reads``) so far, oldest
        first, optionally by one user."""
        if resource not in self.audit_reads:
            raise TestbedError(f"this control plane does not audit reads of {resource}: start it with audit_reads")
        plural, _, group = resource.partition(".")
        found = []
        for line in self.audit_log.read_text().splitlines() if self.audit_log.exists() else ():
            event = json.loads(line)
            target = event.get("objectRef") or {}
            if (target.get("resource"), target.get("apiGroup") or "") != (plural, group):
                continue
            if event.get("verb") not in ("get", "list", "watch"):
                continue
            read = AuditedRead(
                verb=str(event.get("verb")),
                resource=plural,
                namespace=str(target.get("namespace") or ""),
                user=str((event.get("user") or {}).get("username") or ""),
                uri=str(event.get("requestURI") or ""),
                stage=str(event.get("stage") or ""),
                user_agent=str(event.get("userAgent") or ""),
            )
            if user is None or read.user == user:
                found.append(read)
        return found

    def process(self, name: str) -> ManagedProcess:
        """The running ``etcd``, ``kube-apiserver`` or ``kube-controller-manager`` process."""
        return next(process for process in self._processes if process.name == name)

    def failure(self) -> str | None:
        """Why the control plane is unusable (one of its processes exited on its own), else None."""
        for process in self._processes:
            if (reason := process.failure()) is not None:
                return reason
        return None

    def outage(self, *, etcd_down_seconds: float = 0.0) -> None:
        """Restart kube-apiserver for real, with etcd stopped for ``etcd_down_seconds`` in between.

        Same ports, flags and data: what clients see when a control plane is upgraded or its node reboots.
        Every watch breaks and every connection is refused until /readyz is ok again.
        """
        apiserver, etcd = self.process("kube-apiserver"), self.process("etcd")
        apiserver.stop()
        if etcd_down_seconds:
            etcd.stop()
            time.sleep(etcd_down_seconds)
            etcd.start()
        apiserver.start()
        self._wait_ready()

    def _wait_ready(self) -> None:
        pki = self.workdir / "pki"
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        with httpx.Client(base_url=self.server, verify=context, timeout=2.0) as client:
            wait_until(
                lambda: _ok(client, "/readyz"),
                timeout=self.start_timeout,
                what="kube-apiserver /readyz",
                watch=self._processes,
            )

    def stop(self) -> None:
        """Stop every process (process groups, SIGTERM then SIGKILL); idempotent."""
        # Reverse order: clients before the servers they talk to, etcd last.
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        if self._etcd_data is not None:
            shutil.rmtree(self._etcd_data, ignore_errors=True)
            self._etcd_data = None
        if self._own_workdir and not self._keep_workdir and not os.environ.get("SLIMGUARD_KEEP_TESTBED"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane (as admin unless `kubeconfig` is given)."""
        argv = [
            str(self.binaries / "kubectl"),
            f"--kubeconfig={kubeconfig or self.admin_kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def wait_established(self, *crds: str, timeout: float = 60.0) -> None:
        """Wait until each named CRD (or every CRD, when none is named) is Established.

        Not ``kubectl wait``: right after an apply a CRD may have no ``status.conditions`` yet, and kubectl
        1.36 then fails at once ("accessor error") instead of waiting.
        """
        names = list(crds) or self.kubectl("get", "crd", "-o", "name").stdout.split()
        established = '{.status.conditions[?(@.type=="Established")].status}'

        def all_established() -> bool:
            return all(
                self.kubectl(
                    "get",
                    "crd",
                    name.removeprefix("customresourcedefinition.apiextensions.k8s.io/"),
                    "-o",
                    f"jsonpath={established}",
                    check=False,
                ).stdout
                == "True"
                for name in names
            )

        wait_until(all_established, timeout=timeout, interval=0.2, what=f"CRDs {', '.join(names)} to be Established")

    def apply(self, manifest: str | Path) -> subprocess.CompletedProcess[str]:
        """Server-side apply of YAML text (str) or a file or directory (Path)."""
        base = ["apply", "--server-side", "--force-conflicts", f"--field-manager={_FIELD_MANAGER}"]
        if isinstance(manifest, Path):
            return self.kubectl(*base, "-f", str(manifest))
        return self.kubectl(*base, "-f", "-", input=manifest)

    def service_account_kubeconfig(self, namespace: str, name: str, *, duration: str = "24h") -> Path:
        """A kubeconfig that acts as ServiceAccount `namespace/name` (which must exist) via a bound token."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()
        path = self.workdir / "kubeconfigs" / f"sa-{namespace}-{name}.kubeconfig"
        user = f"system:serviceaccount:{namespace}:{name}"
        self.write_kubeconfig(path, user=user, credentials={"token": token}, namespace=namespace)
        return path

    # -- start-up -------------------------------------------------------------------------------------

    def _start(self) -> None:
        binaries = self.binaries  # before anything starts: building or a missing binary fails here
        for name in ("kube-apiserver", "kube-controller-manager", "kubectl"):
            if not os.access(binaries / name, os.X_OK):
                raise TestbedError(f"{binaries / name} is missing: run scripts/bootstrap.sh")
        etcd = etcd_binary()
        pki = self.workdir / "pki"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ca_file = self.ca.write(pki, with_key=True)
        self.port = self.port or free_port()
        etcd_port, etcd_peer_port, cm_port = free_port(), free_port(), free_port()

        apiserver_cert, apiserver_key = self.ca.issue(
            "kube-apiserver",
            hosts=(
                *dict.fromkeys((self.address, "127.0.0.1")),
                "localhost",
                str(ipaddress.ip_network(self.service_cidr)[1]),  # the `kubernetes` Service's ClusterIP
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        ).write(pki, "apiserver")
        sa = rsa_key()
        sa_key, sa_pub = pki / "sa.key", pki / "sa.pub"
        KeyPair(public_key_pem(sa), key_pem(sa)).write(pki, "sa")
        (pki / "sa.crt").rename(sa_pub)  # KeyPair names files .crt/.key; this one is a public key

        admin = self.ca.issue("slimguard-admin", organizations=("system:masters",))
        self.write_kubeconfig(self.admin_kubeconfig, user="admin", credentials=client_cert(admin))
        cm_kubeconfig = self.workdir / "controller-manager.kubeconfig"
        # The controller-manager's own identity, bound by RBAC's bootstrap policy like a real cluster's.
        cm_identity = self.ca.issue("system:kube-controller-manager")
        self.write_kubeconfig(cm_kubeconfig, user="controller-manager", credentials=client_cert(cm_identity))

        self._etcd_data = _etcd_data_dir(self.workdir)
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{etcd_peer_port}"
        self._spawn(
            "etcd",
            [
                etcd,
                "--name=default",
                f"--data-dir={self._etcd_data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--logger=zap",
                "--log-outputs=stderr",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                binaries / "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                f"--secure-port={self.port}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={apiserver_cert}",
                f"--tls-private-key-file={apiserver_key}",
                f"--client-ca-file={ca_file}",
                f"--service-cluster-ip-range={self.service_cidr}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--allow-privileged=true",
                "--profiling=false",
                *self._audit_args(),
                *self.apiserver_args,
            ],
        )
        context = ssl.create_default_context(cafile=str(ca_file))
        admin_cert, admin_key = admin.write(pki, "admin")
        context.load_cert_chain(str(admin_cert), str(admin_key))
        with httpx.Client(base_url=self.server, verify=context, timeout=2.0) as client:
            wait_until(
                lambda: _ok(client, "/readyz"),
                timeout=self.start_timeout,
                what="kube-apiserver /readyz",
                watch=self._processes,
            )
            # Only once the apiserver is ready: its RBAC bootstrap roles are then in place. Started at once, it
            # waits 20 s for /healthz (forbidden to it until they are) and exits: on a loaded machine it did.
            self._spawn(
                "kube-controller-manager",
                [
                    binaries / "kube-controller-manager",
                    f"--kubeconfig={cm_kubeconfig}",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={ca_file}",
                    f"--cluster-signing-cert-file={ca_file}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    "--use-service-account-credentials",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={cm_port}",
                    f"--controllers={self.controllers}",
                    # Client-side throttling (20 qps by default) is what makes it slow to start and to react.
                    "--kube-api-qps=500",
                    "--kube-api-burst=1000",
                    "--profiling=false",
                    *self.controller_manager_args,
                ],
            )
            # The `default` ServiceAccount appears once the controller-manager's controllers run.
            wait_until(
                lambda: _ok(client, "/api/v1/namespaces/default/serviceaccounts/default"),
                timeout=self.start_timeout,
                what="the default ServiceAccount (kube-controller-manager)",
                watch=self._processes,
            )

    def _audit_args(self) -> list[str]:
        if not self.audit_writes and not self.audit_reads:
            return []
        policy = self.workdir / "audit-policy.yaml"
        rules = list(_WRITE_AUDIT_POLICY["rules"])
        if self.audit_writers:
            writes = ["create", "update", "patch", "delete"]
            rules.insert(-1, {"level": "Metadata", "verbs": writes, "userGroups": list(self.audit_writers)})
        for resource in self.audit_reads:
            plural, _, group = resource.partition(".")
            reads = {"group": group, "resources": [plural]}
            rules.insert(-1, {"level": "Metadata", "verbs": ["get", "list", "watch"], "resources": [reads]})
        policy.write_text(yaml.safe_dump({**_WRITE_AUDIT_POLICY, "rules": rules}))
        # Blocking: an event is in the file before its request is answered, so a test reads it at once.
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
        ]

    def _spawn(self, name: str, argv: list[Any]) -> ManagedProcess:
        process = ManagedProcess(name, [str(a) for a in argv], log_file=self.log_dir / f"{name}.log", cwd=self.workdir)
        self._processes.append(process)
        process.start()
        return process

    def write_kubeconfig(
        self, path: Path, *, user: str, credentials: dict[str, str], namespace: str = "default"
    ) -> None:
        """A kubeconfig for this apiserver as ``user`` (``credentials``: a token or client certificate data)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "slimguard-testbed",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(self.ca.cert_pem).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [
                {
                    "name": user,
                    "context": {
                        "cluster": "slimguard-testbed",
                        "user": user,
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": user,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config, sort_keys=False))


def _timestamp(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _etcd_data_dir(fallback: Path) -> Path:
    """etcd's data in memory when /dev/shm exists: fsync on a VM disk is the slowest thing here.

    The owner's pid is in the name, so data left by a killed session (~60 MB of WAL each) is removed.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return Path(tempfile.mkdtemp(prefix="slimguard-etcd-", dir=fallback))
    for stale in shm.glob("slimguard-etcd-*-*"):
        owner = stale.name.split("-")[2]
        if owner.isdigit() and not pid_alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"slimguard-etcd-{os.getpid()}-", dir=shm))


def client_cert(pair: KeyPair) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(pair.cert_pem).decode(),
        "client-key-data": base64.b64encode(pair.key_pem).decode(),
    }


def _ok(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.HTTPError:
        return False


__all__ = ["ControlPlane", "KubectlError", "TestbedError", "client_cert"]
