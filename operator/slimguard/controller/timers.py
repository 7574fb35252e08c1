"""Timers the audit loop sets for itself (an exemption running out, a registry error worth asking again).

The scheduler is injected, so tests fire timers by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


Scheduler = Callable[[float, Callable[[], None]], Timer]


def loop_scheduler(delay: float, callback: Callable[[], None]) -> Timer:
    """The running event loop's ``call_later``: the controller's timers live and die with its loop."""
    return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(frozen=True, slots=True)
class Backoff:
    """``first``, doubling each attempt, never more than ``cap`` seconds: bounded both ways.

    A registry that recovered is noticed soon; one that is still down is asked a few times an hour at most.
    """

    first: float
    cap: float

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap:
            raise ValueError(f"a backoff needs 0 < first <= cap, not first={self.first}, cap={self.cap}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first)."""
        return min(self.first * 2.0 ** min(attempt, 32), self.cap)

    @classmethod
    def after_failure_cache(cls, failure_ttl: float, *, cap: float = 240.0) -> Backoff:
        """A backoff whose first retry comes once the inspector's failure cache has let go of the error.

        Any sooner, the retry would only be answered from that cache (and so prove nothing); 5 s later covers
        timer slack. With the default 15 s cache: 20 s, 40 s, 80 s, 160 s, then every 4 minutes.
        """
        first = failure_ttl + 5.0
        return cls(first=first, cap=max(cap, first))
