"""Pull credentials of a workload: its imagePullSecrets and its ServiceAccount's, briefly cached."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from slimguard.core.model.workload import Workload
from slimguard.kube.gateway import KubeGateway
from slimguard.registry.cache import Coalescer, TtlCache
from slimguard.registry.credentials import Credential, decode_secret_data
from slimguard.tasks import BackgroundTasks


class PullCredentials:
    """Reads Secrets the way the kubelet would; a short TTL keeps 1,000 workloads from meaning 1,000 reads."""

    def __init__(
        self,
        kube: KubeGateway,
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        tasks: BackgroundTasks | None = None,
    ) -> None:
        self.kube = kube
        self.tasks = tasks if tasks is not None else BackgroundTasks("the pull-credential reader")
        self._accounts: TtlCache[tuple[str, str], tuple[str, ...]] = TtlCache(ttl, clock)
        self._secrets: TtlCache[tuple[str, str], list[Credential]] = TtlCache(ttl, clock)
        # Many workloads of one namespace are evaluated at once: they share one read, not one each.
        self._reading_accounts: Coalescer[tuple[str, str], tuple[str, ...]] = Coalescer(self.tasks)
        self._reading_secrets: Coalescer[tuple[str, str], list[Credential]] = Coalescer(self.tasks)

    async def for_workload(self, workload: Workload) -> list[Credential]:
        names = list(workload.pull_secrets)
        account_key = (workload.namespace, workload.service_account)
        from_account = self._accounts.get(account_key)
        if from_account is None:
            from_account = await self._reading_accounts.run(
                account_key, functools.partial(self._read_account, account_key)
            )
        names += from_account
        credentials: list[Credential] = []
        for name in dict.fromkeys(names):
            key = (workload.namespace, name)
            cached = self._secrets.get(key)
            if cached is None:
                cached = await self._reading_secrets.run(key, functools.partial(self._read_secret, key))
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
