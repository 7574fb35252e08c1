"""Pull facts: however the kubelets' Events arrive (repeated, relisted, out of order, with the controller restarted
from its report at any point between them), every occurrence is counted at most once, and within the bounds
exactly once; a pulls field someone else wrote is read back or refused, never a crash."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from slimguard.core.facts.pulls import (
    MAX_SEEN_EVENTS,
    ImagePulls,
    PulledMessage,
    PullEvent,
    SizeKind,
    parse_pulled_message,
    pulls_in,
    pulls_out,
)

from .strategies import json_values

DIGEST = "sha256:" + "c" * 64
T0 = datetime(2026, 12, 7, tzinfo=UTC)


@st.composite
def event_histories(draw: st.DrawFn) -> list[PullEvent]:
    """Events of a few nodes, each maybe repeated by the recorder (its count raised, its time later)."""
    events: list[PullEvent] = []
    for index in range(draw(st.integers(0, 20))):
        cold = draw(st.booleans())
        pulled = PulledMessage("x", cold, seconds=draw(st.floats(0, 300)), size=draw(st.integers(0, 2**40)))
        at = T0 + timedelta(seconds=index * 10)
        node = draw(st.sampled_from(["a", "b", "c"]))  # an Event is one Pod's, on one node
        for count in range(1, draw(st.integers(1, 3)) + 1):
            events.append(PullEvent(f"u{index}", count, at + timedelta(seconds=count), "ns", "p", "c", node, pulled))
    return events


@given(event_histories(), st.data())
def test_each_occurrence_is_counted_once_across_relists_and_restarts(
    events: list[PullEvent], data: st.DataObject
) -> None:
    pulls = ImagePulls(DIGEST)
    for event in events:
        pulls.fold(event, SizeKind.COMPRESSED)
        if data.draw(st.booleans()):  # the controller restarts: it goes on from what its report holds
            pulls = pulls_in(DIGEST, pulls_out(pulls))
    relisted = data.draw(st.permutations(events))
    assert sum(pulls.fold(event, SizeKind.COMPRESSED) for event in relisted) == 0
    # Every Event's last count, exactly, while no node has more Events than it remembers.
    occurrences = {event.uid: event.count for event in events}
    counted = pulls.total.cold + pulls.total.warm
    assert counted <= sum(event.count for event in events)
    if len(occurrences) <= MAX_SEEN_EVENTS:
        assert counted == sum(occurrences.values())


@given(json_values())
def test_a_pulls_field_anyone_wrote_is_read_or_refused(value: object) -> None:
    for candidate in (value, {"total": value, "pullSeconds": {"max": 1}}, {"total": {}, "pullSeconds": value}):
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError, OverflowError):
            pulls_in(DIGEST, candidate)  # type: ignore[arg-type]


@given(st.text(max_size=200))
def test_any_message_is_read_as_a_pull_or_not_at_all(message: str) -> None:
    parse_pulled_message(message)
