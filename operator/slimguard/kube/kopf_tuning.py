"""kopf settings both slimguard processes share.

slimguard only observes (``@kopf.on.event``): it never uses kopf's change detection, so kopf need not copy
every object of every watch event to compute a diff base. On a 2,000-Deployment audit that copy was about a
quarter of the webhook's CPU (bench/ADMISSION.md); this storage skips it and stores nothing on objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf


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
