"""What bloat costs, measured on the real node (issue 27): a Deployment on the fat fixture image, pulled cold by the
kubelet, scaled up (the image already present) and, with the image removed from containerd, restarted (pulled cold
again). The kubelet's own Pulled Events, read from the apiserver and parsed here on their own, are the oracle:
the fat image's ImageReport (``report.pulls``) and the controller's metrics (scraped from its Pods through the
apiserver's proxy) must say what they say, and the Deployment's violation must say what a slim image would save per
cold pull. slimguard is installed by its chart as test_install_on_node.py installs it; this module installs and
uninstalls its own release.

The pulls go straight from the node's registry on the bridge (no delay proxy on this path): their durations are
this machine's, printed as ``PULL-COSTS`` lines and compared with the Events, never with a number.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cluster import VIOLATIONS, deployment, image_policy, namespace, wait_for
from prometheus_client.parser import text_string_to_metric_families

from slimguard_testbed import DockerEngine
from slimguard_testbed.images import FixtureImages
from slimguard_testbed.node import RealNode
from slimguard_testbed.node.install import (
    RELEASE,
    RELEASE_NAMESPACE,
    diagnose,
    install_slimguard,
    push_self_image,
)
from slimguard_testbed.node.install import helm as helm_run

pytestmark = pytest.mark.timeout(1200)

WORKLOADS = "node-pulls"
POLICY = "node-pulls"
METRICS_PORT = 9090  # the chart's metrics.port
# The kubelet's words (pkg/kubelet/images/image_manager.go, v1.36), read here without slimguard's parser.
COLD = re.compile(
    r'^Successfully pulled image "(.+)" in (\S+) \((\S+) including waiting\)\. Image size: (\d+) bytes\.$'
)
WARM = re.compile(r'^Container image "(.+)" already present on machine')


def measured(what: str, **numbers: Any) -> None:
    print(f"PULL-COSTS {json.dumps({'what': what, **numbers}, sort_keys=True)}")


def go_seconds(text: str) -> float:
    """Go's Duration.String(), e.g. 1m2.5s, 850ms, 3.2s."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|µs|us|ns|h|m|s)", text)
    assert "".join(number + unit for number, unit in parts) == text, text
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.fixture(scope="module")
def installed(real_node: RealNode, self_image: str, docker_engine: DockerEngine, helm: str) -> Iterator[RealNode]:
    client = docker_engine.client(timeout=600)
    try:
        image = push_self_image(real_node, client, self_image)
    finally:
        client.close()
    install_slimguard(real_node, helm, image)
    yield real_node
    real_node.kubectl("delete", "namespace", WORKLOADS, "--wait=true", "--timeout=120s", "--ignore-not-found")
    real_node.kubectl("delete", "imagepolicy", POLICY, "--ignore-not-found")
    uninstalled = helm_run(helm, real_node, "uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr


def forget_image(node: RealNode, fat: Any) -> list[str]:
    """Remove the fixture's images from containerd (by tag and by digest; their content garbage-collected with
    them), so the kubelet pulls it cold next time; the references removed."""
    ctr = ["ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io"]
    listed = node_run([*ctr, "images", "list", "--quiet"]).splitlines()
    ends = (f"/{fat.repository}:{fat.tag}", f"/{fat.repository}@{fat.digest}")
    names = [name for name in listed if name.endswith(ends)]
    if names:
        node_run([*ctr, "images", "rm", "--sync", *names])
    return names


def node_run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def pods(node: RealNode, app: str) -> list[dict[str, Any]]:
    found = node.kubectl("get", "pods", "-n", WORKLOADS, "-l", f"app={app}", "-o", "json").stdout
    return [pod for pod in json.loads(found)["items"] if not pod["metadata"].get("deletionTimestamp")]


def running(node: RealNode, app: str, count: int) -> bool:
    found = pods(node, app)
    return len(found) == count and all(pod["status"].get("phase") == "Running" for pod in found)


def kubelet_pulls(node: RealNode, image: str) -> dict[str, Any]:
    """The oracle: the kubelet's Pulled Events of ``image`` in the namespace, as the apiserver holds them."""
    found = node.kubectl(
        "get", "events", "-n", WORKLOADS, "--field-selector", "reason=Pulled", "-o", "json"
    ).stdout  # fmt: skip
    cold: list[tuple[float, int]] = []
    warm = 0
    nodes: set[str] = set()
    messages: list[str] = []
    for event in json.loads(found)["items"]:
        message, count = event["message"], int(event.get("count") or 1)
        if (pulled := COLD.match(message)) is not None and pulled.group(1) == image:
            cold += [(go_seconds(pulled.group(2)), int(pulled.group(4)))] * count
        elif (present := WARM.match(message)) is not None and present.group(1) == image:
            warm += count
        else:
            continue
        nodes.add(event["source"]["host"])
        messages.append(f"{count} x {message}")
    return {
        "coldPulls": len(cold),
        "warmPulls": warm,
        "seconds": [seconds for seconds, _ in cold],
        "bytesPulled": sum(size for _, size in cold),
        "nodes": len(nodes),
        "messages": messages,
    }


def controller_metrics(node: RealNode) -> dict[str, float]:
    """The pull counters of every controller Pod in the namespace, summed (only the leader counts), scraped
    through the apiserver's proxy to the Pod."""
    listed = node.kubectl(
        "get", "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/component=controller", "-o", "json"
    ).stdout  # fmt: skip
    totals: dict[str, float] = {}
    for pod in json.loads(listed)["items"]:
        name = pod["metadata"]["name"]
        text = node.kubectl(
            "get", "--raw", f"/api/v1/namespaces/{RELEASE_NAMESPACE}/pods/{name}:{METRICS_PORT}/proxy/metrics"
        ).stdout
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("namespace") != WORKLOADS:
                    continue
                if sample.name.startswith("slimguard_image_pull") or sample.name == "slimguard_pull_seconds_saveable":
                    pull, policy = sample.labels.get("pull", ""), sample.labels.get("policy", "")
                    key = f"{sample.name}{{pull={pull},policy={policy}}}"
                    totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def test_the_kubelets_pulls_of_the_fat_image_are_in_its_report_its_metrics_and_its_violation(
    installed: RealNode, fixture_images: FixtureImages
) -> None:
    node = installed
    fat = fixture_images.fat_app
    image = node.image(fat.repository, fat.tag)
    removed = forget_image(node, fat)
    measured("removed from containerd before the first pull", references=removed)
    node.apply(
        yaml.safe_dump_all(
            [namespace(WORKLOADS), image_policy(POLICY, {"maxCompressedSize": "100Mi"}, namespaces=[WORKLOADS])]
        )
    )
    body = deployment("fat", WORKLOADS, image)
    body["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "3600"]
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    node.apply(yaml.safe_dump(body))
    wait_for("the fat Pod to run (a cold pull)", lambda: running(node, "fat", 1), timeout=300)
    node.kubectl("scale", "deployment", "fat", "-n", WORKLOADS, "--replicas=3")
    wait_for("three fat Pods to run (the image present)", lambda: running(node, "fat", 3), timeout=180)
    measured("removed from containerd before the restart", references=forget_image(node, fat))
    node.kubectl("rollout", "restart", "deployment", "fat", "-n", WORKLOADS)
    rolled = node.kubectl("rollout", "status", "deployment", "fat", "-n", WORKLOADS, "--timeout=300s", check=False)
    assert rolled.returncode == 0, rolled.stderr

    report_name = fat.digest.replace(":", "-")

    def agreed() -> tuple[dict[str, Any], dict[str, Any]] | None:
        events = kubelet_pulls(node, image)
        found = node.kubectl("get", "imagereport", report_name, "-o", "json", check=False)
        if found.returncode != 0:
            return None
        pulls = json.loads(found.stdout)["report"].get("pulls") or {}
        said = (pulls.get("coldPulls"), pulls.get("warmPulls"), pulls.get("bytesPulled"))
        return (events, pulls) if said == (events["coldPulls"], events["warmPulls"], events["bytesPulled"]) else None

    try:
        events, pulls = wait_for("the ImageReport to count what the kubelet's Events say", agreed, timeout=120)
    except AssertionError as missing:
        raise AssertionError(
            f"{missing}\nEvents: {kubelet_pulls(node, image)}\n"
            f"report: {node.kubectl('get', 'imagereport', report_name, '-o', 'json', check=False).stdout[-3000:]}"
            f"{diagnose(node)}"
        ) from None
    measured("the kubelet's Pulled Events", **{key: events[key] for key in events if key != "messages"})
    for message in events["messages"]:
        print(f"PULL-COSTS event: {message}")
    measured("report.pulls", **{key: value for key, value in pulls.items() if key not in ("byNode", "recentSeconds")})
    assert events["coldPulls"] >= 2, events  # the first Pod's, and the restart's
    assert events["warmPulls"] >= 2, events  # the scale-up's
    assert pulls["pullSeconds"]["sum"] == pytest.approx(sum(events["seconds"]), abs=0.01)
    assert pulls["pullSeconds"]["max"] == pytest.approx(max(events["seconds"]), abs=0.001)
    assert pulls["pullSeconds"]["p50"] == pytest.approx(statistics.median(events["seconds"]), abs=0.001)
    assert pulls["nodes"] == events["nodes"] == 1
    (on_node,) = pulls["byNode"]
    assert on_node["sizes"] == "compressed"  # containerd reports compressed sizes
    assert pulls["throughputBytesPerSecond"] == pytest.approx(events["bytesPulled"] / sum(events["seconds"]), abs=1)

    # The metrics count the same pulls (the leader's; a standby counts none).
    def counted() -> dict[str, float] | None:
        found = controller_metrics(node)
        wanted = {
            "slimguard_image_pulls_total{pull=cold,policy=}": events["coldPulls"],
            "slimguard_image_pulls_total{pull=warm,policy=}": events["warmPulls"],
            "slimguard_image_pulled_bytes_total{pull=cold,policy=}": events["bytesPulled"],
        }
        return found if all(found.get(key) == value for key, value in wanted.items()) else None

    metrics = wait_for("the controller's metrics to count the same pulls", counted, timeout=60)
    measured("metrics", **metrics)
    assert metrics["slimguard_image_pull_seconds_total{pull=cold,policy=}"] == pytest.approx(
        sum(events["seconds"]), abs=0.01
    )

    # What an image within the 100Mi limit would save, at the throughput these pulls reached, in the violation.
    excess = fat.compressed_size - 100 * 2**20
    per_pull = excess / pulls["throughputBytesPerSecond"]
    saveable = metrics.get(f"slimguard_pull_seconds_saveable{{pull=,policy={POLICY}}}")
    assert saveable == pytest.approx(events["coldPulls"] * per_pull, rel=0.01)

    def said() -> str | None:
        found = json.loads(node.kubectl("get", "deployment", "fat", "-n", WORKLOADS, "-o", "json").stdout)
        findings = json.loads(found["metadata"].get("annotations", {}).get(VIOLATIONS, "[]"))
        for finding in findings:
            message = str(finding.get("message", ""))
            if finding.get("rule") == "maxCompressedSize" and f"pulled cold {events['coldPulls']} times" in message:
                return message
        return None

    message = wait_for("the violation to say what the pulls cost", said, timeout=60)
    print(f"PULL-COSTS violation: {message}")
    assert "on 1 node since" in message
    assert "an image within the limit would save ~" in message
    assert "per cold pull" in message
    announced = node.kubectl(
        "get", "events", "-n", WORKLOADS, "--field-selector", "reason=ImagePolicyViolation", "-o", "json"
    ).stdout  # fmt: skip
    assert any("per cold pull" in item["message"] for item in json.loads(announced)["items"]), announced
