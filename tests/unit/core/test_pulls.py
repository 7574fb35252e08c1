"""Pull facts from the kubelet: its Pulled messages read exactly as v1.36 writes them, folded once per Event into
bounded per-image records that survive the Events' expiry, and what a slimmer image would save per cold pull."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.builders import facts
from slimguard.core.facts.image_report import read_report, report_body
from slimguard.core.facts.pulls import (
    MAX_NODES,
    MAX_SEEN_EVENTS,
    ImagePulls,
    PulledMessage,
    SizeKind,
    go_duration_seconds,
    parse_pulled_message,
    pull_cost_note,
    pull_event,
    pulls_in,
    pulls_out,
    size_kind,
)

DIGEST = "sha256:" + "a" * 64
T0 = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
FAT = "10.244.0.1:5000/fixtures/fat:1"


def event(
    uid: str,
    message: str,
    *,
    node: str = "node-a",
    at: datetime = T0,
    count: int = 1,
    namespace: str = "shop",
    reason: str = "Pulled",
) -> dict[str, Any]:
    """A core/v1 Event as the kubelet's recorder writes it."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"web-1.{uid}", "namespace": namespace, "uid": uid},
        "involvedObject": {
            "kind": "Pod",
            "namespace": namespace,
            "name": "web-1",
            "apiVersion": "v1",
            "fieldPath": "spec.containers{app}",
        },
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastTimestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "count": count,
        "type": "Normal",
    }


def cold(seconds: str, size: int = 800_000_000, image: str = FAT) -> str:
    return f'Successfully pulled image "{image}" in {seconds} ({seconds} including waiting). Image size: {size} bytes.'


def folded(pulls: ImagePulls, body: dict[str, Any], kind: SizeKind = SizeKind.COMPRESSED) -> int:
    parsed = pull_event(body)
    assert parsed is not None
    return pulls.fold(parsed, kind)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12.3s", 12.3), ("1m2.345s", 62.345), ("345ms", 0.345), ("0s", 0.0), ("1h0m1s", 3601.0), ("1.5µs", 1.5e-6)],
)
def test_durations_read_as_go_prints_them(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "12", "1x", "s", "12.3s garbage", "-1s"])
def test_what_is_not_a_go_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        go_duration_seconds(text)


def test_a_cold_pull_gives_its_duration_its_wait_and_the_size_the_runtime_reported() -> None:
    message = (
        'Successfully pulled image "10.244.0.1:5000/fat:latest" in 12.3s (1m2.5s including waiting). '
        "Image size: 123456789 bytes."
    )
    assert parse_pulled_message(message) == PulledMessage(
        "10.244.0.1:5000/fat:latest", True, seconds=12.3, seconds_with_waiting=62.5, size=123456789
    )


@pytest.mark.parametrize(
    "message",
    [
        'Container image "nginx:1.27" already present on machine',
        'Container image "nginx:1.27" already present on machine and can be accessed by the pod',
    ],
)
def test_an_image_already_present_is_a_warm_start(message: str) -> None:
    assert parse_pulled_message(message) == PulledMessage("nginx:1.27", False)


@pytest.mark.parametrize(
    "message",
    [
        'Pulling image "nginx:1.27"',
        'Successfully pulled image "nginx" in 3s. Image size: 12 bytes.',  # before v1.30: no wait, no size
        'Successfully pulled image "nginx" in 3 seconds (3s including waiting). Image size: 12 bytes.',
        'Successfully pulled image "nginx" in 3s (3s including waiting). Image size: 12 bytes. and more',
    ],
)
def test_other_words_are_not_read_as_a_pull(message: str) -> None:
    assert parse_pulled_message(message) is None


def test_a_quoted_reference_is_unquoted_as_go_quotes_it() -> None:
    pulled = parse_pulled_message('Container image "a\\"b" already present on machine')
    assert pulled is not None
    assert pulled.image == 'a"b'


def test_an_event_names_its_pod_container_node_and_time() -> None:
    parsed = pull_event(event("u1", cold("41.2s"), count=2))
    assert parsed is not None
    assert (parsed.namespace, parsed.pod, parsed.container, parsed.node) == ("shop", "web-1", "app", "node-a")
    assert (parsed.uid, parsed.count, parsed.at) == ("u1", 2, T0)


def test_other_reasons_and_kinds_are_not_pulls() -> None:
    assert pull_event(event("u1", cold("1s"), reason="Pulling")) is None
    body = event("u1", cold("1s"))
    body["involvedObject"]["kind"] = "Node"
    assert pull_event(body) is None


@pytest.mark.parametrize(
    ("runtime", "kind"),
    [
        ("containerd://1.6.20", SizeKind.COMPRESSED),
        ("cri-o://1.30.2", SizeKind.UNCOMPRESSED),
        ("docker://24.0.7", SizeKind.UNKNOWN),
        ("", SizeKind.UNKNOWN),
    ],
)
def test_whether_sizes_are_compressed_follows_the_nodes_runtime(runtime: str, kind: SizeKind) -> None:
    assert size_kind(runtime) is kind


def test_pulls_are_counted_per_image_with_seconds_bytes_nodes_and_namespaces() -> None:
    pulls = ImagePulls(DIGEST)
    assert folded(pulls, event("u1", cold("40s", 400_000_000))) == 1
    assert folded(pulls, event("u2", cold("42s", 400_000_000), node="node-b", at=T0 + timedelta(minutes=1))) == 1
    assert folded(pulls, event("u3", cold("50s", 400_000_000), node="node-c", namespace="batch")) == 1
    assert folded(pulls, event("u4", 'Container image "x" already present on machine', count=3)) == 3
    assert (pulls.total.cold, pulls.total.warm, pulls.node_count) == (3, 3, 3)
    assert pulls.total.seconds == pytest.approx(132.0)
    assert (pulls.median_seconds, pulls.max_seconds, pulls.total.bytes) == (42.0, 50.0, 1_200_000_000)
    assert pulls.throughput == pytest.approx(1_200_000_000 / 132)
    assert {name: tally.cold for name, tally in pulls.namespaces.items()} == {"shop": 2, "batch": 1}


def test_an_event_listed_again_is_not_counted_again_and_its_repeats_are() -> None:
    pulls = ImagePulls(DIGEST)
    warm = 'Container image "x" already present on machine'
    assert folded(pulls, event("u1", warm)) == 1
    assert folded(pulls, event("u1", warm)) == 0  # a relist, a restart
    assert folded(pulls, event("u1", warm, count=4, at=T0 + timedelta(minutes=5))) == 3  # the recorder's count
    assert pulls.total.warm == 4


def test_what_was_folded_outlives_the_events_and_a_restart_counts_nothing_twice() -> None:
    before = ImagePulls(DIGEST)
    for index in range(5):
        folded(before, event(f"u{index}", cold("41s"), at=T0 + timedelta(seconds=index)))
    stored = pulls_out(before)
    after = pulls_in(DIGEST, stored)  # the controller restarted: what the report held
    for index in range(5):  # the same Events, listed again before they expire
        assert folded(after, event(f"u{index}", cold("41s"), at=T0 + timedelta(seconds=index))) == 0
    assert folded(after, event("u9", cold("41s"), at=T0 + timedelta(minutes=9))) == 1
    # The Events expired (--event-ttl): nothing is listed any more, and nothing counted is lost.
    assert pulls_out(after)["coldPulls"] == 6
    assert pulls_out(pulls_in(DIGEST, pulls_out(after))) == pulls_out(after)


def test_memory_is_bounded_per_node_and_an_event_older_than_those_forgotten_counts_as_folded() -> None:
    pulls = ImagePulls(DIGEST)
    warm = 'Container image "x" already present on machine'
    for index in range(MAX_SEEN_EVENTS + 10):
        folded(pulls, event(f"u{index}", warm, at=T0 + timedelta(seconds=index)))
    assert len(pulls.nodes["node-a"].seen) == MAX_SEEN_EVENTS
    assert folded(pulls, event("u0", warm, at=T0)) == 0  # forgotten, and older than what is remembered
    assert pulls.total.warm == MAX_SEEN_EVENTS + 10


def test_at_most_max_nodes_records_and_every_node_counted() -> None:
    pulls = ImagePulls(DIGEST)
    for index in range(MAX_NODES + 6):
        folded(pulls, event(f"u{index}", cold("1s"), node=f"n{index}", at=T0 + timedelta(seconds=index)))
    assert len(pulls.nodes) == MAX_NODES
    assert (pulls.node_count, pulls.total.cold) == (MAX_NODES + 6, MAX_NODES + 6)
    assert folded(pulls, event("u0", cold("1s"), node="n0", at=T0)) == 0  # its node record dropped: not new


def test_throughput_is_measured_on_compressed_sizes_only() -> None:
    pulls = ImagePulls(DIGEST)
    folded(pulls, event("u1", cold("10s", 2_000_000_000)), SizeKind.UNCOMPRESSED)
    assert pulls.throughput is None
    assert pulls.seconds_saved_per_pull(100) is None
    folded(pulls, event("u2", cold("10s", 500_000_000), node="node-b"), SizeKind.COMPRESSED)
    assert pulls.throughput == pytest.approx(50_000_000)


def test_the_saving_is_the_bytes_a_slim_image_drops_at_the_measured_throughput() -> None:
    pulls = ImagePulls(DIGEST)
    for index, node in enumerate(("node-a", "node-b", "node-c")):
        for repeat in range(2):
            uid = f"u{index}{repeat}"
            folded(pulls, event(uid, cold("41s", 410_000_000), node=node, at=T0 + timedelta(minutes=repeat)))
    assert pulls.seconds_saved_per_pull(330_000_000) == pytest.approx(33.0)
    assert pull_cost_note(pulls, 330_000_000, "the slimmer base") == (
        "pulled cold 6 times on 3 nodes since 2026-12-07T22:00:00Z, 41 s each at the median; the slimmer base "
        "would save ~33 s per cold pull (9.54 MiB/s measured)"
    )


def test_pulls_under_a_second_are_said_in_milliseconds_as_the_kubelet_writes_them() -> None:
    # The real node's registry on its own bridge: 355 MiB in 32 and 40 ms (tests/e2e/node/test_pull_costs_on_node.py).
    pulls = ImagePulls(DIGEST)
    folded(pulls, event("u1", cold("32ms", 372_501_894)), SizeKind.COMPRESSED)
    folded(pulls, event("u2", cold("40ms", 372_501_894), at=T0 + timedelta(minutes=1)), SizeKind.COMPRESSED)
    assert pull_cost_note(pulls, 267_644_000, "an image within the limit") == (
        "pulled cold 2 times on 1 node since 2026-12-07T22:00:00Z, 36 ms each at the median; an image within the "
        "limit would save ~26 ms per cold pull (9.64 GiB/s measured)"
    )


def test_no_cold_pull_no_note() -> None:
    pulls = ImagePulls(DIGEST)
    folded(pulls, event("u1", 'Container image "x" already present on machine'))
    assert pull_cost_note(pulls, 100, "the slimmer base") is None


def test_a_garbled_pulls_field_is_refused() -> None:
    stored = pulls_out(ImagePulls(DIGEST))
    with pytest.raises((KeyError, TypeError, ValueError)):
        pulls_in(DIGEST, {**stored, "total": {"cold": -1}})
    with pytest.raises(KeyError):
        pulls_in(DIGEST, {"coldPulls": 1})


def test_the_image_report_keeps_the_pulls_and_a_garbled_pulls_field_costs_only_the_counts() -> None:
    image = facts()
    pulls = ImagePulls(image.digest)
    folded(pulls, event("u1", cold("41s")))
    body = report_body(image, [FAT], (), pulls)
    assert body["report"]["pulls"]["coldPulls"] == 1
    stored = read_report(body)
    assert stored.pulls is not None
    assert pulls_out(stored.pulls) == pulls_out(pulls)
    body["report"]["pulls"]["total"] = "many"
    garbled = read_report(body)
    assert garbled.pulls is None
    assert garbled.facts == stored.facts
