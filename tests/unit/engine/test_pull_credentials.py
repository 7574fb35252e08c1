"""A workload's pull credentials: read once, then answered from memory and re-read in the background, so no
decision waits for the apiserver because an answer grew old."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from manual_clock import Clock

from slimguard.core.model.workload import Workload, normalise
from slimguard.engine.credentials import FRESH_SECONDS, STALE_SECONDS, PullCredentials
from slimguard.kube.errors import Unavailable


def docker_config(user: str) -> dict[str, str]:
    auths = {"registry.example.com": {"auth": base64.b64encode(f"{user}:secret".encode()).decode()}}
    return {".dockerconfigjson": base64.b64encode(json.dumps({"auths": auths}).encode()).decode()}


class Apiserver:
    """The two reads PullCredentials makes, each answered only when the test opens the gate."""

    def __init__(self) -> None:
        self.secret_user = "first"
        self.reads: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False

    async def service_account_pull_secrets(self, namespace: str, name: str) -> tuple[str, ...]:
        self.reads.append(f"serviceaccount {namespace}/{name}")
        await self.gate.wait()
        if self.failing:
            raise Unavailable("503 Service Unavailable", status=503)
        return ("pull",)

    async def pull_secrets(self, namespace: str, names: list[str]) -> list[dict[str, str]]:
        self.reads.append(f"secret {namespace}/{names[0]}")
        await self.gate.wait()
        if self.failing:
            raise Unavailable("503 Service Unavailable", status=503)
        return [docker_config(self.secret_user)]


def workload() -> Workload:
    return normalise(
        "Deployment",
        {
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "registry.example.com/api:1"}]}}},
        },
    )


def users(credentials: list[Any]) -> list[str]:
    return [credential.username for credential in credentials]


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_namespace_read_once_is_answered_from_memory_until_its_answer_grows_old(clock: Clock) -> None:
    apiserver = Apiserver()
    credentials = PullCredentials(apiserver, clock=clock)  # type: ignore[arg-type]

    assert users(await credentials.for_workload(workload())) == ["first"]
    clock.now += FRESH_SECONDS - 1
    assert users(await credentials.for_workload(workload())) == ["first"]
    assert apiserver.reads == ["serviceaccount shop/default", "secret shop/pull"]


async def test_an_old_answer_is_given_at_once_and_read_again_behind_it(clock: Clock) -> None:
    apiserver = Apiserver()
    credentials = PullCredentials(apiserver, clock=clock)  # type: ignore[arg-type]
    await credentials.for_workload(workload())
    apiserver.reads.clear()
    apiserver.secret_user = "rotated"
    apiserver.gate.clear()  # the apiserver is slow: the decision must not wait for it

    clock.now += FRESH_SECONDS + 1
    answered = await asyncio.wait_for(credentials.for_workload(workload()), timeout=5)

    assert users(answered) == ["first"]
    assert sorted(apiserver.reads) == ["secret shop/pull", "serviceaccount shop/default"]
    apiserver.gate.set()
    await credentials.settled()
    assert users(await credentials.for_workload(workload())) == ["rotated"]
    assert len(apiserver.reads) == 2, "read again once, not once per decision"


async def test_an_answer_too_old_to_use_is_waited_for(clock: Clock) -> None:
    apiserver = Apiserver()
    credentials = PullCredentials(apiserver, clock=clock)  # type: ignore[arg-type]
    await credentials.for_workload(workload())
    apiserver.secret_user = "rotated"

    clock.now += FRESH_SECONDS + STALE_SECONDS + 1
    assert users(await credentials.for_workload(workload())) == ["rotated"]


async def test_a_failed_reread_keeps_the_old_answer_and_is_tried_again_later(clock: Clock) -> None:
    apiserver = Apiserver()
    credentials = PullCredentials(apiserver, clock=clock)  # type: ignore[arg-type]
    await credentials.for_workload(workload())
    apiserver.failing = True

    clock.now += FRESH_SECONDS + 1
    assert users(await credentials.for_workload(workload())) == ["first"]
    await credentials.settled()
    apiserver.reads.clear()
    assert users(await credentials.for_workload(workload())) == ["first"]
    assert apiserver.reads == [], "not asked again at once after a failure"

    apiserver.failing = False
    apiserver.secret_user = "rotated"
    clock.now += 10
    await credentials.for_workload(workload())
    await credentials.settled()
    assert users(await credentials.for_workload(workload())) == ["rotated"]
