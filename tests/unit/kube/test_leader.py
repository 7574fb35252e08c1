"""Leader election: the candidate's arithmetic with given times, and two electors on one in-memory Lease under a
virtual clock (no sleeping: time moves when the test says so). The real apiserver is in tests/e2e."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from slimguard.kube.leader import Candidate, ElectionSettings, LeaderElector
from slimguard.kube.lease import LeaseRecord

WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def settings(identity: str = "a", **durations: float) -> ElectionSettings:
    return ElectionSettings(namespace="slimguard", name="slimguard-controller", identity=identity, **durations)


def held_by(holder: str | None, version: str, *, duration: int = 10, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration_seconds=duration,
        acquired=WALL,
        renewed=WALL,
        transitions=transitions,
        resource_version=version,
    )


# --- the candidate, with given times ---------------------------------------------------------------------------


def test_a_standby_counts_the_holders_lease_from_when_it_saw_the_record_change_not_from_its_renew_time() -> None:
    # The record says it was renewed a year ago (the holder's clock is off): only the standby's own clock counts.
    stale_clock = LeaseRecord("b", 10, WALL - timedelta(days=365), WALL - timedelta(days=365), 0, "7")
    candidate = Candidate(settings("a"))
    candidate.observe(stale_clock, now=100.0)
    assert not candidate.may_take(109.9)
    assert candidate.may_take(110.0)
    # Seen again unchanged later, the term is not restarted; renewed (a new version), it is.
    candidate.observe(stale_clock, now=105.0)
    assert candidate.may_take(110.0)
    candidate.observe(held_by("b", "8"), now=108.0)
    assert not candidate.may_take(117.9)
    assert candidate.may_take(118.0)


def test_the_leader_stops_writing_before_any_standby_may_take_its_lease() -> None:
    """The fence closes at the renew deadline, counted from when the renewal began; a standby counts the lease
    duration from when it saw that renewal, which is later: their windows never overlap."""
    leader, standby = Candidate(settings("a")), Candidate(settings("b"))
    for began in (0.0, 3.0, 50.0):
        for seen_after in (0.0, 0.01, 1.5, 2.4):
            leader.took(held_by("a", f"v{began}"), began=began, now=began + 0.05)
            standby.observe(held_by("a", f"v{began}-{seen_after}"), now=began + seen_after)
            assert leader.holds(began + 6.99)
            closes = began + 7.0
            assert not leader.holds(closes)
            assert not standby.may_take(closes)
            assert standby.expires_at() is not None
            assert standby.expires_at() >= closes + 3.0


def test_a_released_lease_or_one_never_held_may_be_taken_at_once() -> None:
    candidate = Candidate(settings("a"))
    assert candidate.may_take(0.0)
    candidate.observe(held_by(None, "3", duration=1), now=5.0)
    assert candidate.may_take(5.0)


def test_renewing_keeps_the_acquire_time_and_taking_over_counts_a_transition() -> None:
    candidate = Candidate(settings("a"))
    created = candidate.claim(WALL)
    assert (created.holder, created.transitions, created.resource_version) == ("a", 0, None)
    assert created.duration_seconds == 10
    candidate.took(held_by("a", "2"), began=0.0, now=0.1)
    later = WALL + timedelta(seconds=4)
    renewal = candidate.claim(later)
    assert (renewal.acquired, renewal.renewed, renewal.transitions, renewal.resource_version) == (WALL, later, 0, "2")
    other = Candidate(settings("b"))
    other.observe(held_by("a", "9", transitions=4), now=0.0)
    takeover = other.claim(later)
    assert (takeover.holder, takeover.acquired, takeover.transitions, takeover.resource_version) == ("b", later, 5, "9")


def test_only_the_holder_releases_and_its_release_frees_the_lease_at_once() -> None:
    holder, other = Candidate(settings("a")), Candidate(settings("b"))
    holder.took(held_by("a", "4", transitions=2), began=0.0, now=0.0)
    other.observe(held_by("a", "4", transitions=2), now=0.0)
    assert other.release(WALL) is None
    released = holder.release(WALL)
    assert released is not None
    assert (released.holder, released.duration_seconds, released.transitions, released.resource_version) == (
        None,
        1,
        2,
        "4",
    )


def test_a_standby_polls_every_retry_period_and_wakes_as_the_lease_it_waits_for_runs_out() -> None:
    candidate = Candidate(settings("a"))
    assert candidate.delay(0.0, jitter=0.0) == 2.0
    assert candidate.delay(0.0, jitter=0.99) == pytest.approx(2.396)
    candidate.observe(held_by("b", "1"), now=0.0)
    assert candidate.delay(5.0, jitter=0.5) == 2.2
    assert candidate.delay(9.0, jitter=0.5) == pytest.approx(1.01)  # at 10 s, not at 11.2 s
    candidate.took(held_by("a", "2"), began=11.0, now=11.0)
    assert candidate.delay(11.0, jitter=0.99) == 2.0  # a leader renews on the period, unjittered


@pytest.mark.parametrize(
    ("durations", "flag"),
    [
        ({"lease_duration": 7, "renew_deadline": 7}, "--leader-elect-lease-duration"),
        ({"renew_deadline": 2.2, "retry_period": 2}, "--leader-elect-renew-deadline"),
        ({"retry_period": 0}, "--leader-elect-retry-period"),
        ({"lease_duration": 10.5}, "--leader-elect-lease-duration"),
    ],
)
def test_settings_a_leader_could_outlive_are_refused_naming_the_flag(durations: dict[str, float], flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        settings(**durations)


# --- two electors on one Lease, in virtual time ------------------------------------------------------------------


class VirtualTime:
    """A clock that moves only in ``advance``, waking the sleepers due on the way, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), woken))
        await woken

    async def advance(self, seconds: float) -> None:
        end = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= end:
            due, _, woken = heapq.heappop(self._sleepers)
            self.now = due
            if not woken.done():
                woken.set_result(None)
            await settle()
        self.now = end
        await settle()


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


class StoredLease:
    """The Lease as the apiserver keeps it: a resourceVersion bumped by every write, a replace at a stale
    version refused. ``down``: every request fails, as when the apiserver cannot be reached."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False

    def stored(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        return self.record


class MemoryLeaseClient:
    """LeaseClient's interface over a StoredLease; each call yields once, as a round trip does. ``cut``: this
    client's requests fail (its replica partitioned away, or killed: either way, nothing it sends arrives)."""

    namespace, name = "slimguard", "slimguard-controller"

    def __init__(self, store: StoredLease, time: VirtualTime) -> None:
        self.store = store
        self.time = time
        self.cut = False
        self.closed = False
        self.slow: list[float] = []
        """Round trips that take this long (virtual seconds), one each, before the others take none."""
        self.slow_answers: list[float] = []
        """Replaces whose answer comes this long after the write was made, one each: cancelled meanwhile, the
        write is made all the same, as a request already sent is."""
        self.requests = 0

    async def _round_trip(self) -> None:
        self.requests += 1
        await asyncio.sleep(0)
        if self.slow:
            await self.time.sleep(self.slow.pop(0))
        if self.store.down or self.cut:
            raise ConnectionRefusedError("the apiserver is unreachable")

    async def get(self) -> LeaseRecord | None:
        await self._round_trip()
        return self.store.record

    async def create(self, record: LeaseRecord) -> LeaseRecord | None:
        await self._round_trip()
        return None if self.store.record is not None else self.store.stored(record)

    async def replace(self, record: LeaseRecord) -> LeaseRecord | None:
        await self._round_trip()
        current = self.store.record
        if current is None or current.resource_version != record.resource_version:
            return None
        stored = self.store.stored(record)
        if self.slow_answers:
            await self.time.sleep(self.slow_answers.pop(0))
        return stored

    def close(self) -> None:
        self.closed = True


class Replica:
    """An elector and the transitions it was told, as ("lead" | "follow", virtual time)."""

    def __init__(self, identity: str, store: StoredLease, time: VirtualTime) -> None:
        self.told: list[tuple[str, float]] = []
        self.leading_takes = asyncio.Event()  # cleared: ``lead`` waits on it (a slow start)
        self.leading_takes.set()

        async def lead() -> None:
            await self.leading_takes.wait()
            self.told.append(("lead", time.now))

        async def follow() -> None:
            self.told.append(("follow", time.now))

        self.lease = MemoryLeaseClient(store, time)
        self.elector = LeaderElector(
            settings(identity),
            self.lease,  # type: ignore[arg-type]
            lead=lead,
            follow=follow,
            clock=time.clock,
            wall=lambda: WALL + timedelta(seconds=time.now),
            jitter=lambda: 0.0,
            sleep=time.sleep,
        )


@pytest.fixture
def time() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def store() -> StoredLease:
    return StoredLease()


async def two_replicas(store: StoredLease, time: VirtualTime) -> tuple[Replica, Replica]:
    """``a`` starts at 0 s and leads; ``b`` starts at 0.5 s and stands by."""
    first, second = Replica("a", store, time), Replica("b", store, time)
    first.elector.start()
    await time.advance(0.5)
    second.elector.start()
    await time.advance(0.5)
    return first, second


async def watch(time: VirtualTime, seconds: float, *replicas: Replica) -> list[tuple[float, tuple[bool, ...]]]:
    """Who holds the fence, every 50 ms for ``seconds``; asserts that never two do."""
    seen = []
    for _ in range(int(seconds / 0.05)):
        await time.advance(0.05)
        holding = tuple(replica.elector.holds() for replica in replicas)
        assert sum(holding) <= 1, f"two replicas may write at {time.now:.2f} s"
        seen.append((time.now, holding))
    return seen


async def test_of_two_replicas_the_first_leads_and_the_second_stands_by_writing_nothing(
    store: StoredLease, time: VirtualTime
) -> None:
    first, second = await two_replicas(store, time)
    try:
        await time.advance(59)
        assert first.told == [("lead", 0.0)]
        assert second.told == []
        assert first.elector.holds()
        assert not second.elector.holds()
        assert store.record is not None
        assert store.record.holder == "a"
        # Created at 0 s and renewed every retry period until 60 s: the leader's writes alone, the standby's none.
        assert store.version == 31
        # A read and a create, then one request a renewal; the standby only reads.
        assert first.lease.requests == 32
    finally:
        await first.elector.close()
        await second.elector.close()


async def test_a_leader_cut_off_stops_writing_at_its_renew_deadline_and_the_standby_takes_over_after_the_lease(
    store: StoredLease, time: VirtualTime
) -> None:
    first, second = await two_replicas(store, time)
    try:
        await time.advance(9.5)  # the last renewal that arrives began at 10 s
        first.lease.cut = True
        seen = await watch(time, 20, first, second)
        first_stops = next(t for t, (a, _) in seen if not a)
        second_writes = next(t for t, (_, b) in seen if b)
        assert first_stops == pytest.approx(17.0)  # 10 s + the 7 s renew deadline, whatever its loop does
        # The standby saw that renewal at its poll at 10.5 s; the lease ran out 10 s later and it woke then.
        assert second_writes == pytest.approx(20.5, abs=0.06)
        assert first.told == [("lead", 0.0), ("follow", 18.0)]  # told at its first attempt after the deadline
        assert second.told == [("lead", pytest.approx(20.5))]
        assert store.record is not None
        assert (store.record.holder, store.record.transitions) == ("b", 1)
    finally:
        await first.elector.close()
        await second.elector.close()


async def test_a_leader_that_shuts_down_releases_the_lease_and_the_standby_takes_it_at_its_next_poll(
    store: StoredLease, time: VirtualTime
) -> None:
    first, second = await two_replicas(store, time)
    try:
        await time.advance(9.7)
        await first.elector.retire()
        await time.advance(3)  # shutting down: still renewed while the writers stop
        assert first.elector.holds()
        assert store.record is not None
        assert store.record.holder == "a"
        await first.elector.close()
        released_at = time.now
        assert not first.elector.holds()
        assert store.record.holder is None
        assert first.lease.closed
        await watch(time, 3, first, second)
        (told,) = second.told
        assert told[0] == "lead"
        assert told[1] - released_at <= 2.0
        assert first.told == [("lead", 0.0)], "no follow after retiring: shutdown stops the work itself"
    finally:
        await second.elector.close()


async def test_a_retired_standby_never_takes_the_lease(store: StoredLease, time: VirtualTime) -> None:
    first, second = await two_replicas(store, time)
    await second.elector.retire()
    await first.elector.close()
    await time.advance(30)
    assert second.told == []
    assert not second.elector.holds()
    assert store.record is not None
    assert store.record.holder is None
    await second.elector.close()


async def test_the_election_keeps_renewing_while_a_slow_lead_is_still_starting(
    store: StoredLease, time: VirtualTime
) -> None:
    only = Replica("a", store, time)
    only.leading_takes.clear()
    only.elector.start()
    try:
        await watch(time, 30, only)
        assert only.elector.holds(), "renewals went on while lead() waited"
        assert store.version == 16
        only.leading_takes.set()
        await settle()
        assert only.told == [("lead", pytest.approx(30.0))]
    finally:
        await only.elector.close()


async def test_when_the_apiserver_is_unreachable_the_leader_steps_down_once_and_leads_again_when_it_is_back(
    store: StoredLease, time: VirtualTime
) -> None:
    first, second = await two_replicas(store, time)
    try:
        await time.advance(3.2)
        store.down = True  # the last renewal that arrived began at 4 s
        await watch(time, 30, first, second)
        assert first.told == [("lead", 0.0), ("follow", 12.0)]
        assert second.told == []
        store.down = False
        await watch(time, 20, first, second)
        # The record still names the first replica: it renews and leads again at once; the standby waits.
        assert first.told[2:] == [("lead", 36.0)]
        assert second.told == []
    finally:
        await first.elector.close()
        await second.elector.close()


async def test_a_renewal_that_ends_past_the_deadline_is_a_lost_leadership_and_the_next_one_leads_again(
    store: StoredLease, time: VirtualTime
) -> None:
    """The fence closed while the renewal was on its way (writes were refused) though the lease was kept: the
    work refused meanwhile is made up for by a follow and a lead (its re-audit), never lost without a word."""
    only = Replica("a", store, time)
    only.elector.start()
    try:
        # The renewal at 10 s takes 6 s: it keeps the lease (its own term would run to 17 s), but the term the one
        # at 8 s began ran out at 15 s, while it was on its way.
        await time.advance(9.5)
        only.lease.slow.append(6.0)
        seen = await watch(time, 12, only)
        closed = [t for t, (holding,) in seen if not holding]
        assert closed[0] == pytest.approx(15.0, abs=0.06)  # the last renewal that arrived in time began at 8 s
        assert only.told == [("lead", 0.0), ("follow", pytest.approx(16.0)), ("lead", pytest.approx(18.0))]
        assert only.elector.holds()
        # One request per renewal: created at 0 s, renewed at 2, 4, 6 and 8 s, by the slow request at 16 s, taken
        # again at 18 s (a read, then a write) and renewed at 20 s.
        assert store.version == 8
    finally:
        await only.elector.close()


async def test_a_leader_stopped_while_a_renewal_is_on_its_way_still_releases_the_lease(
    store: StoredLease, time: VirtualTime
) -> None:
    """The renewal's write is made, its answer never reaches the cancelled election: the release conflicts with
    the version that write made, reads the lease again, finds it still its own and releases it."""
    first, second = await two_replicas(store, time)
    try:
        await time.advance(0.95)  # the leader renews at 2 s
        first.lease.slow_answers.append(1.0)
        await time.advance(0.1)
        assert store.record is not None
        assert store.version == 2  # the renewal was written; its answer is a second away
        await first.elector.close()
        assert store.record.holder is None
        await time.advance(2.5)
        assert [told for told, _ in second.told] == ["lead"]
    finally:
        await second.elector.close()
