"""Pull credentials of a workload: its imagePullSecrets and its ServiceAccount's, kept and re-read in the background."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from slimguard.core.model.workload import Workload
from slimguard.kube.gateway import KubeGateway
from slimguard.registry.cache import Coalescer, RevalidatingCache
from slimguard.registry.credentials import Credential, decode_secret_data
from slimguard.tasks import BackgroundTasks

FRESH_SECONDS = 30.0
"""A ServiceAccount's or Secret's answer older than this is read again, in the background."""
STALE_SECONDS = 300.0
"""How much longer an old answer is used while it is read again (the apiserver slow or unreachable); after that a
workload waits for the read, as the first one of a namespace does."""
RETRY_SECONDS = 5.0
"""After a failed background read, the next is not tried sooner than this."""


class PullCredentials:
    """Reads Secrets the way the kubelet would, and keeps what it read: 1,000 workloads are not 1,000 reads.

    Stale-while-revalidate, as the tag cache: a ServiceAccount or Secret read before is answered from memory
    and, once ``ttl`` old, read again in the background. A decision waited for the apiserver before each time
    an answer expired (every 30 s per namespace): an admission review then took a ServiceAccount GET and a
    Secret GET longer than its neighbours, which is the tail the admission bench measured (issue 29); the
    audit likewise stopped for ~300 reads per 10,000 workloads (issue 26).
    """

    def __init__(
        self,
        kube: KubeGateway,
        *,
        ttl: float = FRESH_SECONDS,
        max_stale: float = STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        tasks: BackgroundTasks | None = None,
    ) -> None:
        self.kube = kube
        self.tasks = tasks if tasks is not None else BackgroundTasks("the pull-credential reader")
        self._accounts: RevalidatingCache[tuple[str, str], tuple[str, ...]] = self._cache(ttl, max_stale, clock)
        self._secrets: RevalidatingCache[tuple[str, str], list[Credential]] = self._cache(ttl, max_stale, clock)
        # Many workloads of one namespace are evaluated at once: they share one read, not one each.
        self._reading_accounts: Coalescer[tuple[str, str], tuple[str, ...]] = Coalescer(self.tasks)
        self._reading_secrets: Coalescer[tuple[str, str], list[Credential]] = Coalescer(self.tasks)

    def _cache(self, ttl: float, max_stale: float, clock: Callable[[], float]) -> RevalidatingCache[Any, Any]:
        return RevalidatingCache(
            ttl=ttl, max_stale=max_stale, refresh_after=ttl, retry_seconds=RETRY_SECONDS, clock=clock, tasks=self.tasks
        )

    async def for_workload(self, workload: Workload) -> list[Credential]:
        names = list(workload.pull_secrets)
        account_key = (workload.namespace, workload.service_account)
        read_account = functools.partial(self._read_account, account_key)
        from_account = self._accounts.get(account_key, read_account)
        if from_account is None:
            from_account = await self._reading_accounts.run(account_key, read_account)
        names += from_account
        credentials: list[Credential] = []
        for name in dict.fromkeys(names):
            key = (workload.namespace, name)
            read_secret = functools.partial(self._read_secret, key)
            cached = self._secrets.get(key, read_secret)
            if cached is None:
                cached = await self._reading_secrets.run(key, read_secret)
            credentials.extend(cached)
        return credentials

    async def _read_account(self, key: tuple[str, str]) -> tuple[str, ...]:
        names = await self.kube.service_account_pull_secrets(*key)
        self._accounts.put(key, names)
        return names

    async def _read_secret(self, key: tuple[str, str]) -> list[Credential]:
        found = [c for data in await self.kube.pull_secrets(key[0], [key[1]]) for c in decode_secret_data(data)]
        self._secrets.put(key, found)
        return found

    async def settled(self) -> None:
        """Returns once no background re-read is in flight (for tests)."""
        await self._accounts.settled()
        await self._secrets.settled()
