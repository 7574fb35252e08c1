"""`slimguard controller` and `slimguard webhook` as processes, started as the kubelet starts them (issue 22):
what the first real install met. A wrong --ca-file stops them at once with one line naming it (a crash loop,
not an idle Pod restarted with exit 0); their INFO logs hold no line per apiserver request or probe; the
webhook answers at the path its configuration names; the controller runs under a UID with no passwd entry;
both servers answer over IPv6 and IPv4 on their default address.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import apply, namespace, wait_for

from slimguard_testbed import CertificateAuthority, ControlPlane, free_port
from slimguard_testbed.controller_process import SOURCE_ROOT, ControllerProcess
from slimguard_testbed.process import ManagedProcess
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_TEMPLATE = REPO / "deploy" / "kustomize" / "base" / "validatingwebhookconfiguration.yaml"
MISSING_CA = "/nonexistent/registry-ca.crt"
MISSING_CA_LINE = f"slimguard: error: --ca-file {MISSING_CA} cannot be read: No such file or directory"
# httpx's "HTTP Request: GET ... 200 OK" and aiohttp's access log ('"GET /healthz HTTP/1.1" 200'): one a request.
PER_REQUEST_LINE = re.compile(r'HTTP Request: |"(GET|POST|HEAD) /\S* HTTP/1\.[01]"')


@pytest.fixture
def registry_ca_file(testbed_ca: CertificateAuthority, tmp_path: Path) -> Path:
    """A CA bundle that loads (the registry's own is not needed: no test here reads an image)."""
    path = tmp_path / "registry-ca.crt"
    path.write_bytes(testbed_ca.cert_pem)
    return path


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def exit_code(process: ManagedProcess, timeout: float) -> int | None:
    """The code it exited with within ``timeout`` seconds; None if it is still running then."""
    deadline = time.monotonic() + timeout
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    return None if process.alive() else process.returncode


# -- a CA bundle that cannot be read -------------------------------------------------------------------------


def test_a_missing_ca_file_stops_the_controller_at_start_with_one_line_naming_it(
    operator_kubeconfig: str, tmp_path: Path
) -> None:
    controller = ControllerProcess(kubeconfig=operator_kubeconfig, registry_ca_file=MISSING_CA, workdir=tmp_path)
    try:
        code = exit_code(controller.launch(), timeout=40)
        log = controller.log()
    finally:
        controller.stop()
    assert code == 2, f"still running or exit {code} after 40 s; its log:\n{log[-3000:]}"
    assert lines_of(log) == [MISSING_CA_LINE]


def test_a_missing_ca_file_stops_the_webhook_at_start_with_one_line_naming_it(
    webhook_kubeconfig: str, testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert, key = testbed_ca.issue("slimguard-webhook", hosts=("127.0.0.1",)).write(tmp_path, "webhook")
    argv = [sys.executable, "-m", "slimguard.cli.main", "webhook", "--kubeconfig", webhook_kubeconfig]
    argv += ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--host", "127.0.0.1"]
    argv += ["--port", str(free_port()), "--metrics-port", "0", "--ca-file", MISSING_CA]
    process = ManagedProcess("webhook-missing-ca", argv, log_file=tmp_path / "webhook.log")
    process.start()
    try:
        code = exit_code(process, timeout=40)
        log = process.log_file.read_text(errors="replace")
    finally:
        process.stop()
    assert code == 2, f"still running or exit {code} after 40 s; its log:\n{log[-3000:]}"
    assert lines_of(log) == [MISSING_CA_LINE]


# -- quiet INFO logs -------------------------------------------------------------------------------------------


def trusting(ca: CertificateAuthority) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca.cert_pem.decode())


def probe(url: str, times: int = 5, verify: ssl.SSLContext | bool = True) -> None:
    """``times`` probes answered 200, once the endpoint listens: kopf opens the liveness endpoint beside the
    startup handlers, so on a loaded machine "controller started" can be logged before it accepts connections,
    as a kubelet's first probe can come before it does (its failureThreshold covers that)."""
    with httpx.Client(timeout=5, verify=verify) as http:

        def listening() -> bool:
            try:
                http.get(url)
            except httpx.ConnectError:
                return False
            return True

        wait_for(f"{url} to accept connections", listening, timeout=30, every=0.1)
        for _ in range(times):
            assert http.get(url).status_code == 200, url


def controller_log_after_probes(kubeconfig: str, ca_file: Path, workdir: Path, level: str) -> str:
    """The log of a controller that has listed and watched the cluster and answered liveness probes."""
    liveness = free_port()
    controller = ControllerProcess(
        kubeconfig=kubeconfig,
        registry_ca_file=ca_file,
        workdir=workdir,
        extra_args=(f"--log-level={level}", f"--liveness=http://127.0.0.1:{liveness}/healthz"),
    )
    with controller:
        probe(f"http://127.0.0.1:{liveness}/healthz")
        time.sleep(3)  # the workload informer's LISTs and WATCHes, each an httpx request to the apiserver
        return controller.log()


def test_the_controllers_info_log_has_no_line_per_apiserver_request_or_probe(
    operator_kubeconfig: str, registry_ca_file: Path, tmp_path: Path
) -> None:
    info = controller_log_after_probes(operator_kubeconfig, registry_ca_file, tmp_path / "info", "INFO")
    assert "slimguard controller started" in info
    assert [line for line in lines_of(info) if PER_REQUEST_LINE.search(line)] == []
    # The same process at DEBUG writes them: the INFO log above is quiet, not blind.
    debug = controller_log_after_probes(operator_kubeconfig, registry_ca_file, tmp_path / "debug", "DEBUG")
    assert "HTTP Request: GET " in debug
    assert '"GET /healthz HTTP/1.1" 200' in debug


def test_the_webhooks_info_log_has_no_line_per_probe_or_review(
    webhook_kubeconfig: str, testbed_ca: CertificateAuthority, registry_ca_file: Path, tmp_path: Path
) -> None:
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry_ca_file),
        workdir=tmp_path,
        replicas=1,
        shutdown_delay=0,
    )
    with replicas:
        probe(f"https://127.0.0.1:{replicas.port}/healthz", verify=trusting(testbed_ca))
        probe(f"https://127.0.0.1:{replicas.port}/readyz", verify=trusting(testbed_ca))
        probe(f"http://127.0.0.1:{replicas.metrics_ports[0]}/metrics")
        log = replicas.processes[0].log_file.read_text(errors="replace")
    assert "slimguard webhook started" in log
    assert [line for line in lines_of(log) if PER_REQUEST_LINE.search(line)] == []


# -- the review path -------------------------------------------------------------------------------------------


def review(uid: str) -> dict[str, object]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "namespace": "default",
            "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}},
        },
    }


def test_the_webhook_answers_reviews_at_the_path_its_configuration_names(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    testbed_ca: CertificateAuthority,
    registry_ca_file: Path,
    tmp_path: Path,
) -> None:
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry_ca_file),
        workdir=tmp_path,
        replicas=1,
        shutdown_delay=0,
        path="/admit/images",
    )
    name = "slimguard-path-e2e"
    with replicas:
        assert replicas.url == f"https://127.0.0.1:{replicas.port}/admit/images"
        with httpx.Client(verify=trusting(testbed_ca), timeout=5) as client:
            answered = client.post(replicas.url, json=review("direct"))
            assert answered.status_code == 200, answered.text
            assert answered.json()["response"]["uid"] == "direct"
            default_path = f"https://127.0.0.1:{replicas.port}/validate"
            assert client.post(default_path, json=review("elsewhere")).status_code == 404
        # Through the apiserver, with failurePolicy Fail: an unanswered review would refuse the Deployment.
        register(
            control_plane,
            webhook_configuration(
                WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name=name, failure_policy="Fail"
            ),
        )
        try:
            ns = f"path-{uuid.uuid4().hex[:6]}"
            apply(control_plane, namespace(ns))
            created = control_plane.kubectl(
                "create", "deployment", "app", "--image=registry.invalid/app:1", "-n", ns, "--dry-run=server"
            )
            assert "deployment.apps/app created (server dry run)" in created.stdout
        finally:
            control_plane.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


# -- an arbitrary UID ------------------------------------------------------------------------------------------


def uid_without_passwd_entry() -> int:
    for uid in range(12345, 12445):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise AssertionError("no UID between 12345 and 12444 lacks a passwd entry")


def closed_to_others(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that users other than its owner cannot enter, if any."""
    for directory in (*reversed(path.parents), path):
        if not directory.stat().st_mode & 0o001:
            return directory
    return None


def interpreter_for(uid: int) -> str:
    """This Python, or the system's of the same version, whichever ``uid`` can run slimguard's code with (pyenv's
    lives under a home directory other users cannot enter). The code is the checkout's, run as another user: a
    checkout (or its .venv) below a directory only root may enter fails here, saying so."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    env = {**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        runs = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", candidate, "-c",
             "import slimguard.cli.main, kopf"],
            capture_output=True, check=False, env=env,
        )  # fmt: skip
        if runs.returncode == 0:
            return candidate
    closed = closed_to_others(SOURCE_ROOT) or closed_to_others(Path(sys.prefix))
    raise AssertionError(
        f"UID {uid} cannot run slimguard's code from this checkout with any {version}"
        + (f": {closed} is closed to other users (mode {closed.stat().st_mode & 0o777:o});" if closed else ";")
        + " these tests run the checkout's code as another user, as a Pod's arbitrary UID runs the image's: "
        "clone where other users may enter (e.g. chmod o+x on that directory)"
    )


@pytest.fixture
def uid_workdir() -> Iterator[tuple[int, Path]]:
    """A directory only that UID can use, outside pytest's (whose parents only root may enter)."""
    uid = uid_without_passwd_entry()
    workdir = Path(tempfile.mkdtemp(prefix="slimguard-uid-"))
    os.chown(workdir, uid, uid)
    yield uid, workdir
    shutil.rmtree(workdir, ignore_errors=True)


def owned_copies(uid: int, workdir: Path, kubeconfig: str, ca: CertificateAuthority) -> tuple[Path, Path]:
    """The kubeconfig and a registry CA bundle, readable by ``uid`` alone."""
    kubeconfig_copy, ca_file = workdir / "kubeconfig", workdir / "registry-ca.crt"
    shutil.copyfile(kubeconfig, kubeconfig_copy)
    ca_file.write_bytes(ca.cert_pem)
    for path in (kubeconfig_copy, ca_file):
        os.chown(path, uid, uid)
    return kubeconfig_copy, ca_file


def assert_runs_as(pid: int, uid: int) -> None:
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s", status, re.MULTILINE), status


def test_the_controller_runs_under_a_uid_with_no_passwd_entry(
    operator_kubeconfig: str, testbed_ca: CertificateAuthority, uid_workdir: tuple[int, Path]
) -> None:
    uid, workdir = uid_workdir
    kubeconfig, ca_file = owned_copies(uid, workdir, operator_kubeconfig, testbed_ca)
    liveness = free_port()
    controller = ControllerProcess(
        kubeconfig=kubeconfig,
        registry_ca_file=ca_file,
        workdir=workdir,
        as_uid=uid,
        python=interpreter_for(uid),
        extra_args=(f"--liveness=http://127.0.0.1:{liveness}/healthz",),
    )
    with controller:  # started: kopf has named itself and run the startup handler
        assert_runs_as(controller.pid, uid)
        probe(f"http://127.0.0.1:{liveness}/healthz", times=1)


def test_the_webhook_runs_under_a_uid_with_no_passwd_entry(
    webhook_kubeconfig: str, testbed_ca: CertificateAuthority, uid_workdir: tuple[int, Path]
) -> None:
    uid, workdir = uid_workdir
    kubeconfig, ca_file = owned_copies(uid, workdir, webhook_kubeconfig, testbed_ca)
    replicas = WebhookReplicas(
        kubeconfig=str(kubeconfig),
        ca=testbed_ca,
        registry_ca_file=str(ca_file),
        workdir=workdir,
        replicas=1,
        shutdown_delay=0,
        as_uid=uid,
        python=interpreter_for(uid),
    )
    with replicas:  # ready: it has loaded the policies and answers /readyz over TLS
        (process,) = replicas.processes
        assert process.pid is not None
        assert_runs_as(process.pid, uid)


# -- dual-stack listeners --------------------------------------------------------------------------------------


def test_the_servers_answer_over_ipv6_and_ipv4_on_their_default_address(
    testbed_ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert, key = testbed_ca.issue("slimguard-webhook", hosts=("127.0.0.1", "::1")).write(tmp_path, "webhook")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(testbed_ca.cert_pem)
    # A network namespace of its own: "every address" there is loopback, so nothing listens beyond this machine.
    script = f'ip link set lo up && exec "{sys.executable}" -m slimguard_testbed.listeners "$@"'
    result = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script, "sh", str(cert), str(key), str(ca_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.splitlines()[-1])
    assert answers == {
        "https://127.0.0.1:8443/healthz": 200,
        "http://127.0.0.1:9090/metrics": 200,
        "https://[::1]:8443/healthz": 200,
        "http://[::1]:9090/metrics": 200,
    }
