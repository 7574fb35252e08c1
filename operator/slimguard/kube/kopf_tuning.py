"""kopf settings both slimguard processes share.

slimguard only observes (``@kopf.on.event``): it never uses kopf's change detection, so kopf need not copy
every object of every watch event to compute a diff base. On a 2,000-Deployment audit that copy was about a
quarter of the webhook's CPU (bench/README.md, admission_latency.py, "Why slimguard missed, from profiles"); this
storage skips it and stores nothing on objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Coroutine, Iterable
from typing import Any

import kopf
from kopf._core.engines.peering import Identity  # kopf.run's parameter type, not re-exported by kopf

from slimguard.tasks import AsyncGeneratorsClosedOutermostFirst


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff-base storage for operators without change handlers: nothing built, fetched or stored."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def is_deletion(event: kopf.RawEvent) -> bool:
    return event.get("type") == "DELETED"


def tune(settings: kopf.OperatorSettings) -> None:
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300


def own_identity(component: str) -> Identity:
    """Who this process is to kopf: ``POD_ID`` (the chart sets it to the Pod's name), else component@host/pid.

    Left to itself kopf asks ``getpass.getuser()``, which raises under a UID with no passwd entry (OpenShift's
    arbitrary UIDs, ``docker run --user 12345``): the process died before its first watch.
    """
    return Identity(os.environ.get("POD_ID") or f"{component}@{socket.gethostname()}/{os.getpid()}")


def run_operator(operator: Coroutine[Any, Any, None]) -> None:
    """``kopf.run`` for ``kopf.operator(...)``, with the watch streams kopf abandons closed in order before the
    loop ends, so a stop logs no error (see ``AsyncGeneratorsClosedOutermostFirst``)."""
    with contextlib.suppress(asyncio.CancelledError):  # as kopf.run: a cancelled operator is a stopped one
        asyncio.run(AsyncGeneratorsClosedOutermostFirst().run(operator))
