"""The pull ledger: each Pulled Event folded once into the digest the node pulled, starting from what the
ImageReport holds, with the node's runtime deciding whether its sizes are compressed."""

from __future__ import annotations

from typing import Any

from slimguard.core.facts.pulls import ImagePulls, PullEvent, SizeKind, pull_event
from slimguard.engine.pull_ledger import PullLedger, digest_of_image_id
from slimguard_testbed.kubelet_events import present_message, pulled_event, pulled_message

FAT = "10.244.0.1:5000/shop/fat:1"
DIGEST = "sha256:" + "f" * 64
OTHER = "sha256:" + "e" * 64


def containerd_node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.6.20"}}}


def event(pod: str, message: str, uid: str, node: str = "node-a") -> PullEvent:
    body = pulled_event(namespace="shop", pod=pod, container="app", node=node, message=message)
    body["metadata"]["uid"] = uid
    parsed = pull_event(body)
    assert parsed is not None
    return parsed


class Cluster:
    """What the ledger reads, as plain data: each Pod's container image IDs (a list: one answer per read)."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], list[dict[str, str] | None]] = {}
        self.reads = 0
        self.stored: dict[str, ImagePulls] = {}
        self.changed: list[str] = []
        self.counted: list[tuple[str, int]] = []

    async def image_ids(self, namespace: str, pod: str) -> dict[str, str] | None:
        self.reads += 1
        answers = self.pods.get((namespace, pod))
        if not answers:
            return None
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def load(self, digest: str) -> ImagePulls | None:
        return self.stored.get(digest)

    def ledger(self, resolved: dict[str, str] | None = None) -> PullLedger:
        return PullLedger(
            pulls={},
            pod_image_ids=self.image_ids,
            load=self.load,
            resolved=resolved or {},
            changed=lambda digest, _: self.changed.append(digest),
            counted=lambda _event, digest, times: self.counted.append((digest, times)),
            retry_seconds=(0.01, 0.01),
        )


def test_image_ids_name_the_digest_as_each_runtime_writes_it() -> None:
    assert digest_of_image_id(f"10.244.0.1:5000/shop/fat@{DIGEST}") == DIGEST  # containerd
    assert digest_of_image_id(f"docker-pullable://shop/fat@{DIGEST}") == DIGEST
    assert digest_of_image_id(DIGEST) == DIGEST
    assert digest_of_image_id("shop/fat:1") is None


async def test_a_pull_by_tag_is_counted_for_the_digest_the_pod_runs_once() -> None:
    cluster = Cluster()
    cluster.pods[("shop", "web-0")] = [{"app": f"10.244.0.1:5000/shop/fat@{DIGEST}"}]
    ledger = cluster.ledger()
    ledger.observe_node(containerd_node("node-a"))
    cold = event("web-0", pulled_message(FAT, 40.0, 41.0, 400_000_000), "u1")
    assert await ledger.fold(cold) == 1
    assert await ledger.fold(cold) == 0  # listed again
    record = ledger.pulls[DIGEST]
    assert (record.total.cold, record.throughput) == (1, 10_000_000)
    assert record.nodes["node-a"].size_kind is SizeKind.COMPRESSED
    assert (cluster.changed, cluster.counted) == ([DIGEST], [(DIGEST, 1)])


async def test_a_container_not_started_yet_is_asked_again_and_a_pod_gone_falls_back_to_the_resolved_digest() -> None:
    cluster = Cluster()
    cluster.pods[("shop", "web-0")] = [{}, {"app": f"10.244.0.1:5000/shop/fat@{DIGEST}"}]
    ledger = cluster.ledger(resolved={FAT: OTHER})
    assert await ledger.fold(event("web-0", present_message(FAT), "u1")) == 1
    assert ledger.pulls[DIGEST].total.warm == 1
    assert await ledger.fold(event("gone", present_message(FAT), "u2")) == 1
    assert ledger.pulls[OTHER].total.warm == 1


async def test_a_pull_by_digest_needs_no_pod_and_what_the_report_held_is_added_to() -> None:
    cluster = Cluster()
    by_digest = f"10.244.0.1:5000/shop/fat@{DIGEST}"
    old = event("old", pulled_message(by_digest, 30.0, 30.0, 300), "u0")
    stored = ImagePulls(DIGEST)
    stored.fold(old, SizeKind.COMPRESSED)
    cluster.stored[DIGEST] = stored
    ledger = cluster.ledger()
    assert await ledger.fold(event("web-1", pulled_message(by_digest, 50.0, 50.0, 500), "u1")) == 1
    assert await ledger.fold(old) == 0  # folded before the restart: the report says so
    assert cluster.reads == 0
    assert ledger.pulls[DIGEST].total.cold == 2
    assert stored.total.cold == 1  # the report's record is not changed under it


async def test_events_observed_are_folded_by_the_ledgers_task_and_expiry_changes_nothing() -> None:
    cluster = Cluster()
    ledger = cluster.ledger()
    body = pulled_event(namespace="shop", pod="p", container="app", node="n", message=present_message(f"x@{DIGEST}"))
    body["metadata"]["uid"] = "u1"
    ledger.start()
    try:
        ledger.observe_event(body, False)
        ledger.observe_event({"reason": "Pulling", "message": "Pulling image"}, False)
        ledger.observe_event(body, True)  # expired: nothing happens to what was counted
        await ledger._queue.join()
    finally:
        await ledger.stop()
    assert ledger.pulls[DIGEST].total.warm == 1
    assert ledger.events_seen == 1


async def test_at_most_max_images_records_are_held_the_least_recently_pulled_going_first() -> None:
    cluster = Cluster()
    ledger = cluster.ledger()
    ledger.max_images = 2
    digests = ["sha256:" + str(n) * 64 for n in range(3)]
    for index, digest in enumerate([digests[0], digests[1], digests[0], digests[2]]):
        await ledger.fold(event("p", present_message(f"x@{digest}"), f"u{index}"))
    assert list(ledger.pulls) == [digests[0], digests[2]]
