"""The test bed's Pulled Events read as a real kubelet's: slimguard's parser takes each as the kubelet means it."""

from __future__ import annotations

import pytest

from slimguard.core.facts.pulls import go_duration_seconds, pull_event
from slimguard_testbed.kubelet_events import go_duration, present_message, pulled_event, pulled_message


@pytest.mark.parametrize(
    ("seconds", "printed"),
    [(0.0, "0s"), (0.345, "345ms"), (12.3, "12.3s"), (41.0, "41s"), (62.345, "1m2.345s"), (3601.5, "1h0m1.5s")],
)
def test_durations_print_as_go_prints_them(seconds: float, printed: str) -> None:
    assert go_duration(seconds) == printed
    assert go_duration_seconds(printed) == pytest.approx(seconds)


def test_a_made_event_reads_as_the_pull_it_stands_for() -> None:
    message = pulled_message("10.244.0.1:5000/fat:1", 41.2, 43.0, 845_000_000)
    assert message == (
        'Successfully pulled image "10.244.0.1:5000/fat:1" in 41.2s (43s including waiting). '
        "Image size: 845000000 bytes."
    )
    body = pulled_event(namespace="shop", pod="web-0", container="app", node="node-a", message=message)
    body["metadata"]["uid"] = "assigned-by-the-apiserver"
    read = pull_event(body)
    assert read is not None
    assert (read.namespace, read.pod, read.container, read.node) == ("shop", "web-0", "app", "node-a")
    assert (read.pulled.cold, read.pulled.seconds, read.pulled.size) == (True, 41.2, 845_000_000)
    warm = pull_event({**body, "message": present_message("10.244.0.1:5000/fat:1")})
    assert warm is not None
    assert not warm.pulled.cold
