"""Whatever slimguard finds of its own on a workload (its label, the annotation-only format of earlier builds,
findings, hints, a user's edits, any mix), one patch brings it to what the verdict says, never leaves the old
status annotation beside the label, and after it nothing is left to write."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from slimguard.controller import annotations as notes
from slimguard.core.evaluation.verdict import Finding, FindingKind, Status, Verdict
from slimguard.core.facts.bases import SlimmerBase
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import Mode
from slimguard.core.model.workload import WorkloadKey

KEY = WorkloadKey("Deployment", "shop", "api")


def _finding(message: str, kind: FindingKind) -> Finding:
    return Finding(
        policy="slim", mode=Mode.AUDIT, container="api", image="x", rule="maxCompressedSize", message=message, kind=kind
    )


_HINT = SlimmerBase(
    policy="slim",
    image="x",
    base="r.example/base/node:20-bookworm",
    base_size=380 << 20,
    alternative="r.example/base/node:20-alpine",
    alternative_size=45 << 20,
    platform=Platform("linux", "amd64"),
)

findings = st.lists(
    st.builds(_finding, st.sampled_from(["too big", "no USER"]), st.sampled_from(list(FindingKind))), max_size=2
)
verdicts = st.one_of(
    st.none(),
    st.just(Verdict(KEY, ())),  # no policy applies
    st.builds(
        lambda found, pending, hinted: Verdict(
            KEY, ("slim",), tuple(found), pending_images=("x",) if pending else (), hints=(_HINT,) if hinted else ()
        ),
        findings,
        st.booleans(),
        st.booleans(),
    ),
)
times = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


@st.composite
def found_marks(draw: st.DrawFn) -> notes.Marks:
    """What a workload may carry of ours: any label value or none, and any of our annotations with any text, some
    of it what a verdict would write."""
    label = draw(st.one_of(st.none(), st.sampled_from([status.value for status in Status]), st.text(max_size=8)))
    written = notes.desired(draw(verdicts), draw(times))
    values = st.one_of(
        st.text(max_size=12), st.sampled_from(sorted((written.annotations if written else {}).values()) or ["[]"])
    )
    said = draw(st.dictionaries(st.sampled_from(notes.OURS), values))
    if draw(st.booleans()):
        said[notes.LEGACY_STATUS] = draw(st.sampled_from([status.value for status in Status]))
    return notes.Marks(label, said)


@given(current=found_marks(), verdict=verdicts, now=times)
def test_one_patch_brings_any_marks_to_the_verdict_and_the_old_status_annotation_never_stays(
    current: notes.Marks, verdict: Verdict | None, now: datetime
) -> None:
    wanted = notes.desired(verdict, now)
    target = wanted or notes.Marks()
    patch = notes.patch_for(current, wanted)
    after = current if patch is None else notes.applied(current, patch)

    assert after.status == target.status
    assert notes.LEGACY_STATUS not in after.annotations
    # Everything as wanted, but the time of the findings: it is written only with what it dates.
    undated = {key: value for key, value in after.annotations.items() if key != notes.CHECKED_AT}
    assert undated == {key: value for key, value in target.annotations.items() if key != notes.CHECKED_AT}
    if notes.CHECKED_AT not in target.annotations:
        assert notes.CHECKED_AT not in after.annotations
    assert notes.patch_for(after, wanted) is None, "a second look writes nothing"


@given(verdict=verdicts, then=times, now=times)
def test_a_verdict_written_once_is_never_written_again_while_it_holds(
    verdict: Verdict | None, then: datetime, now: datetime
) -> None:
    written = notes.desired(verdict, then) or notes.Marks()
    assert notes.patch_for(written, notes.desired(verdict, now)) is None
