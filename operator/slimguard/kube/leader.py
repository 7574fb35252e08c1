"""Leader election on a Lease: of the replicas of a component, one leads (writes), the others stand by.

Why slimguard's own elector, and not one of the two at hand:
- kopf's peering does not elect. Operators of equal priority all warn and *freeze* ("leaving the cluster
  unserved", docs.kopf.dev/en/latest/peering), and a frozen kopf stops its watch streams, so a standby's caches
  would go cold; nor would it pause the work slimguard runs outside kopf's handlers (its informer, workers).
- ``kubernetes.leaderelection`` is synchronous: ``run()`` blocks a thread in ``time.sleep``, cannot be stopped
  or cancelled, elects once (after losing, a new object and thread are needed), never releases the lease on
  shutdown (a clean rollout would leave the standby waiting out the whole lease), keeps its callback running
  until the renew deadline has passed rather than fencing writes by it, and logs at INFO on every retry.
This module is that algorithm (client-go's ``leaderelection``: a candidate takes the lease when its holder has
let ``leaseDurationSeconds`` pass without changing it, as measured on the candidate's own clock from when it
saw the last change, so clocks need not agree), as an asyncio task using the ``kubernetes`` client the controller
already uses, owned and cancelled with the rest, with three additions: a fence (``LeaderElector.holds``) that
every write checks, a release on clean shutdown, and a standby that wakes when the lease it waits for runs out
rather than on its next poll.

Timing. ``renew_deadline`` < ``lease_duration``: a leader stops writing (the fence closes) when it has not renewed
for ``renew_deadline``, before any standby may take over (``lease_duration`` after the last renewal it saw), so two
never write at once, whatever the apiserver or the network do; the gap covers a write already on its way and
clocks running at slightly different rates. client-go's usual 15 s / 10 s / 2 s would let a crashed leader's
standby take over 15-17 s later; scaled to 10 s / 7 s / 2 s, a crash is taken over within ~12 s, and a clean
shutdown (the Pod deleted, a rollout) within a retry period, as the lease is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slimguard.kube.errors import Forbidden, KubeError
from slimguard.kube.lease import LeaseClient, LeaseRecord

log = logging.getLogger(__name__)

JITTER = 0.2
"""A standby's polls are spread by up to this share of the retry period, so candidates do not move in step."""
LEASE_NAME = "slimguard-controller"


def candidate_identity() -> str:
    """The Pod's name (``POD_ID``, which the chart sets; else the host name, a Pod's own) and a random suffix, as
    client-go's: a restarted container is a new candidate, never taken for the one before it."""
    return f"{os.environ.get('POD_ID') or socket.gethostname()}_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class ElectionSettings:
    namespace: str
    name: str
    identity: str
    """Unique to this process: the Pod's name and a random suffix (a restarted container is a new candidate)."""
    lease_duration: float = 10.0
    renew_deadline: float = 7.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.namespace or not self.name or not self.identity:
            raise ValueError("leader election needs a lease namespace, a lease name and an identity")
        if self.retry_period <= 0:
            raise ValueError("--leader-elect-retry-period must be positive")
        if self.renew_deadline <= self.retry_period * (1 + JITTER):
            raise ValueError("--leader-elect-renew-deadline must be longer than the retry period (with its jitter)")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                "--leader-elect-lease-duration must be longer than --leader-elect-renew-deadline: a leader stops "
                "writing at its renew deadline, before another may take the lease"
            )
        if self.lease_duration != int(self.lease_duration):
            raise ValueError("--leader-elect-lease-duration must be whole seconds (the Lease holds an integer)")

    def describe(self) -> str:
        return (
            f"lease {self.namespace}/{self.name} as {self.identity} (duration {self.lease_duration:g}s, "
            f"renew deadline {self.renew_deadline:g}s, retry {self.retry_period:g}s)"
        )


@dataclass
class Candidate:
    """The pure part of an election: what was seen when, and what follows. Times are given, never read: ``now``
    is a monotonic clock's seconds, ``wall`` a datetime for the record (only people read it)."""

    settings: ElectionSettings
    observed: LeaseRecord | None = None
    observed_at: float = 0.0
    """When ``observed`` was first seen as it is: a standby counts the holder's lease from here."""
    renewed_at: float | None = None
    """When the attempt that last made or kept this candidate the holder began; None: not leading."""
    _seen: tuple[str | None, str | None] | None = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        return self.settings.identity

    @property
    def leading(self) -> bool:
        return self.renewed_at is not None

    def holds(self, now: float) -> bool:
        """May this candidate write now? Only until ``renew_deadline`` after its last renewal began."""
        renewed = self.renewed_at
        return renewed is not None and now < renewed + self.settings.renew_deadline

    def observe(self, record: LeaseRecord, now: float) -> None:
        """A record as read; any write to the Lease changes its resourceVersion, and restarts its holder's term."""
        seen = (record.resource_version, record.holder)
        if seen != self._seen:
            self.observed, self.observed_at, self._seen = record, now, seen

    def expires_at(self) -> float | None:
        """When another's hold on the observed record runs out (None: nobody else holds it)."""
        record = self.observed
        if record is None or not record.holder or record.holder == self.identity:
            return None
        duration = record.duration_seconds or self.settings.lease_duration
        return self.observed_at + duration

    def may_take(self, now: float) -> bool:
        expiry = self.expires_at()
        return expiry is None or now >= expiry

    def claim(self, wall: datetime) -> LeaseRecord:
        """The record to write to take or keep the lease, over the one observed (None: there is no lease yet)."""
        old = self.observed
        ours = old is not None and old.holder == self.identity
        return LeaseRecord(
            holder=self.identity,
            duration_seconds=int(self.settings.lease_duration),
            acquired=old.acquired if ours and old is not None and old.acquired is not None else wall,
            renewed=wall,
            transitions=(old.transitions if ours else old.transitions + 1) if old is not None else 0,
            resource_version=old.resource_version if old is not None else None,
        )

    def release(self, wall: datetime) -> LeaseRecord | None:
        """The record that gives the lease up at once (client-go's: no holder, a 1 s lease); None if not ours."""
        old = self.observed
        if old is None or old.holder != self.identity:
            return None
        return LeaseRecord(
            holder=None,
            duration_seconds=1,
            acquired=wall,
            renewed=wall,
            transitions=old.transitions,
            resource_version=old.resource_version,
        )

    def took(self, record: LeaseRecord, began: float, now: float) -> None:
        """Our write of ``record`` succeeded; the attempt that made it began at ``began``."""
        self.observe(record, now)
        self.renewed_at = began

    def step_down(self) -> None:
        self.renewed_at = None

    def delay(self, now: float, jitter: float) -> float:
        """Seconds until the next attempt; ``jitter`` in [0, 1). A leader renews every retry period; a standby
        polls as often, spread by the jitter, and wakes just as the lease it waits for runs out."""
        period = self.settings.retry_period
        if self.leading:
            return period
        wait = period * (1 + JITTER * jitter)
        expiry = self.expires_at()
        if expiry is not None:
            wait = min(wait, max(expiry - now, 0.0) + 0.01)
        return wait


Transition = Callable[[], Awaitable[None]]


class LeaderElector:
    """Runs the election: ``lead`` is awaited when this process becomes the leader, ``follow`` when it stops being
    one (its lease taken, or not renewed within the deadline). ``holds`` is the fence writes check.

    Two tasks: the election itself, which never waits on a transition (a ``lead`` that lists a fleet's reports
    must not delay the renewals that keep the lead), and the transitions, applied in order and coalesced (lost
    and won again while ``lead`` ran: nothing more to do).

    At shutdown: ``retire`` first (no transition from then on; no lease is taken; one held is still renewed while
    the writers stop), then ``close`` once nothing writes any more, which ends the election and releases the
    lease, so a standby takes over within its retry period instead of waiting the lease out.
    """

    def __init__(
        self,
        settings: ElectionSettings,
        lease: LeaseClient,
        *,
        lead: Transition,
        follow: Transition,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.lease = lease
        self.candidate = Candidate(settings)
        self._lead, self._follow = lead, follow
        self.clock, self.wall, self.jitter, self.sleep = clock, wall, jitter, sleep
        self._election: asyncio.Task[None] | None = None
        self._transitions: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._retired = False
        self._said: str | None = None  # the last failure logged, so a lasting one is logged once

    @property
    def leading(self) -> bool:
        return self.candidate.leading

    def holds(self) -> bool:
        """True while this process may write: it holds the lease and renewed it within the renew deadline.
        Read from any thread (the gateway checks it just before each request leaves)."""
        return self.candidate.holds(self.clock())

    def start(self) -> None:
        log.info("leader election: %s", self.settings.describe())
        loop = asyncio.get_running_loop()
        self._transitions = loop.create_task(self._apply_transitions(), name="slimguard-leader-transitions")
        self._election = loop.create_task(self._elect(), name="slimguard-leader-election")

    async def retire(self) -> None:
        """Shutting down: no ``lead`` or ``follow`` from now on (one under way is cancelled and awaited, so it
        cannot start work behind shutdown's back) and no lease taken; a lease held is still renewed."""
        self._retired = True
        await _cancel(self._transitions)
        self._transitions = None

    async def close(self) -> None:
        """End the election, then release the lease if this process holds it."""
        await self.retire()
        await _cancel(self._election)
        self._election = None
        try:
            await self._release()
        finally:
            self.lease.close()

    async def _release(self) -> None:
        """The fence closes first, then the record is cleared at the version last seen: a lease someone else
        has taken meanwhile is left alone (the write conflicts). A renewal still on its way when the election
        stopped (its request outlives the cancelled task) moves the version on: read again, and if the lease is
        still this process's, released at that version."""
        record = self.candidate.release(self.wall())
        self.candidate.step_down()
        if record is None:
            return
        try:
            released = await self.lease.replace(record)
            if released is None and (current := await self.lease.get()) is not None:
                self.candidate.observe(current, self.clock())
                again = self.candidate.release(self.wall())
                released = await self.lease.replace(again) if again is not None else None
        except Exception as error:  # the standby then takes over when the lease runs out, as after a crash
            log.warning("could not release lease %s/%s: %s", self.lease.namespace, self.lease.name, _reason(error))
            return
        if released is not None:
            log.info("released lease %s/%s", self.lease.namespace, self.lease.name)
        else:
            log.info("lease %s/%s was taken meanwhile: not released", self.lease.namespace, self.lease.name)

    async def _elect(self) -> None:
        while True:
            await self.step()
            await self.sleep(self.candidate.delay(self.clock(), self.jitter()))

    async def step(self) -> None:
        """One attempt to take or renew the lease; a change of leadership is handed to the transitions task."""
        was_leading = self.candidate.leading
        if self._retired and not was_leading:
            return
        deadline = self.candidate.renewed_at
        try:
            await self._attempt()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._failed(error)
        else:
            self._said = None
        now = self.clock()
        # A renewal slow enough to end past the deadline closed the fence for a while, though it kept the lease:
        # writes were refused (dropped work, a status not written) with no one told. That is a lost leadership too:
        # followed, then led again at the next attempt, whose re-audit makes up for what was refused.
        lapsed = deadline is not None and now >= deadline + self.settings.renew_deadline
        if was_leading and (lapsed or not self.candidate.holds(now)):
            self.candidate.step_down()
            holder = self.candidate.observed.holder if self.candidate.observed is not None else None
            log.warning(
                "lost leadership of lease %s/%s%s: this replica writes nothing until it leads again",
                self.lease.namespace,
                self.lease.name,
                f" (now held by {holder})" if holder and holder != self.candidate.identity else "",
            )
            self._changed.set()
        elif not was_leading and self.candidate.leading:
            log.info("became the leader (lease %s/%s)", self.lease.namespace, self.lease.name)
            self._changed.set()

    async def _apply_transitions(self) -> None:
        applied = False
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = self.candidate.leading
            if wanted == applied:
                continue
            try:
                await (self._lead if wanted else self._follow)()
                applied = wanted
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug, logged with its traceback. Leading half-started is no leading: undone, and the next
                # renewal (the lease is still ours) tries again.
                log.exception("%s failed", "taking the lead" if wanted else "stepping down")
                if wanted:
                    self.candidate.step_down()
                    with contextlib.suppress(Exception):
                        await self._follow()
                    applied = False

    async def _attempt(self) -> None:
        """One try to take or renew the lease; the candidate records the outcome. A leader renews with one request
        (a replace at the version it wrote last), so a slow apiserver costs it one round trip, not two; a
        conflict sends it through a read, as a candidate goes."""
        candidate = self.candidate
        began = self.clock()
        if candidate.leading and candidate.observed is not None and candidate.observed.holder == candidate.identity:
            renewed = await self.lease.replace(candidate.claim(self.wall()))
            if renewed is not None:
                candidate.took(renewed, began, self.clock())
                return
        record = await self.lease.get()
        if record is None:
            candidate.observed = None
            if self._retired:
                return
            created = await self.lease.create(candidate.claim(self.wall()))
            if created is not None:
                candidate.took(created, began, self.clock())
            return
        before = candidate.observed.holder if candidate.observed is not None else None
        candidate.observe(record, self.clock())
        if record.holder != before and record.holder and record.holder != candidate.identity:
            log.info("lease %s/%s is held by %s; standing by", self.lease.namespace, self.lease.name, record.holder)
        if not candidate.may_take(self.clock()) or (self._retired and record.holder != candidate.identity):
            if candidate.leading:
                candidate.step_down()  # someone else holds it: stop at once, not at the renew deadline
            return
        written = await self.lease.replace(candidate.claim(self.wall()))
        if written is not None:
            candidate.took(written, began, self.clock())

    def _failed(self, error: Exception) -> None:
        reason = _reason(error)
        if reason != self._said:
            self._said = reason
            hint = ""
            if isinstance(error, Forbidden):
                hint = (
                    f"; grant get, create and update on leases.coordination.k8s.io in namespace "
                    f"{self.lease.namespace} (the chart's Role does)"
                )
            log.error(
                "leader election on lease %s/%s failed: %s%s", self.lease.namespace, self.lease.name, reason, hint
            )


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _reason(error: Exception) -> str:
    if isinstance(error, KubeError):
        return f"{error.status} {error.reason}"
    return repr(error)
