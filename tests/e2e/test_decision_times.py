"""`slimguard webhook --decision-times FILE` with the real apiserver calling it: one raw sample per review it
answered, all of them in the file once the replica has stopped (the benchmarks read it: bench/admission_latency.py)."""

from __future__ import annotations

from pathlib import Path

import yaml
from cluster import WEBHOOK_TEMPLATE, apply, namespace, pod, wait_for

from slimguard_testbed import CertificateAuthority, ControlPlane, Registry
from slimguard_testbed.webhook import WebhookReplicas, register, webhook_configuration

CONFIGURATION = "slimguard-decision-times"
STAGES = {"ignored", "unchanged", "unsynced", "unmatched", "evaluated", "failed"}


def reviews_answered(replicas: WebhookReplicas) -> int:
    prefix = "slimguard_admission_reviews_total{"
    return int(
        sum(float(line.rsplit(" ", 1)[1]) for line in replicas.metrics(0).splitlines() if line.startswith(prefix))
    )


def test_every_review_the_apiserver_sent_is_one_sample_in_the_file(
    control_plane: ControlPlane,
    webhook_kubeconfig: str,
    registry: Registry,
    testbed_ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    times = tmp_path / "decision-times.txt"
    ns = "decision-times"
    apply(control_plane, namespace(ns))
    replicas = WebhookReplicas(
        kubeconfig=webhook_kubeconfig,
        ca=testbed_ca,
        registry_ca_file=str(registry.ca_file),
        workdir=tmp_path,
        replicas=1,
        shutdown_delay=0.2,
        extra_args=("--decision-times", str(times)),
    )

    def dry_run(name: str) -> bool:
        probe = pod(name, ns, "127.0.0.1:1/never/pushed:1")
        result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(probe), check=False)
        return result.returncode == 0

    with replicas:
        configuration = webhook_configuration(
            WEBHOOK_TEMPLATE, url=replicas.url, ca_pem=testbed_ca.cert_pem, name=CONFIGURATION, failure_policy="Fail"
        )
        register(control_plane, configuration)
        try:
            wait_for("the apiserver to call the replica", lambda: dry_run("probe") and reviews_answered(replicas))
            for n in range(5):
                assert dry_run(f"timed-{n}")
        finally:
            control_plane.kubectl("delete", "validatingwebhookconfiguration", CONFIGURATION, "--ignore-not-found")
        answered = reviews_answered(replicas)
    lines = times.read_text().splitlines()
    assert lines[0] == "# started_ns took_ns kind stage decision cpu_ns gc_ns gc_generation"
    samples = [line.split() for line in lines[1:]]
    assert len(samples) >= answered >= 6  # >=: a review may still arrive between the scrape and the stop
    assert all(int(took) > 0 and stage in STAGES for _, took, _, stage, *_ in samples)
    assert all(int(cpu) > 0 and int(gc) >= 0 and -1 <= int(gen) <= 2 for *_, cpu, gc, gen in samples)
    assert sum(1 for _, _, kind, *_ in samples if kind == "Pod") >= 6  # the probes and the five dry runs
