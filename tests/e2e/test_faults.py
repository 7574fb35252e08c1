"""The fault matrix: each fault caused for real on 127.0.0.1, each outcome asserted (docs/reliability.md).

Registry faults run the real path from a workload to its verdict (Evaluator → ImageInspector →
RegistryClient) against a real nginx rate limiter in front of the real registry, or against a registry that
serves wrong content on purpose. Cluster faults run the controller and webhook against the real control plane.
Measured numbers (requests made, seconds to the verdict) are printed as ``FAULT-MATRIX`` lines, from which
docs/reliability.md is written.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from cluster import apply, deployment, image_policy, namespace, violations, wait_for, wait_for_status

from slimguard.core.errors import InspectionError
from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import FindingKind, Status, Verdict
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Container, ContainerType, Workload
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential
from slimguard.registry.guard import AddressPolicy, GuardedNetworkBackend
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import ControlPlane, Registry
from slimguard_testbed.faults import HUGE, DelayProxy, HostileRegistry, RateLimitingProxy
from slimguard_testbed.operator_runner import InProcessOperator, LoopbackOnlyBackend
from slimguard_testbed.webhook import WebhookReplicas

AMD64 = {Platform("linux", "amd64")}
ON_AMD64 = FactsNeeds(frozenset(AMD64))
POLICY = ImagePolicy.from_resource("slim", {"mode": "Enforce", "rules": {"maxCompressedSize": "200Mi"}})


def measured(fault: str, **numbers: Any) -> None:
    """One line per fault for docs/reliability.md (run with -s, or read the captured output)."""
    print(f"FAULT-MATRIX {json.dumps({'fault': fault, **numbers}, sort_keys=True)}")


def workload_running(image: str) -> Workload:
    container = Container(type=ContainerType.REGULAR, index=0, name="api", image=image)
    return Workload(kind="Deployment", namespace="shop", name="api", labels={}, containers=(container,))


async def _no_credentials(workload: Workload) -> list[Credential]:
    return []


def evaluator_for(settings: RegistrySettings) -> Evaluator:
    backend = GuardedNetworkBackend(settings.address_policy, inner=LoopbackOnlyBackend())
    inspector = ImageInspector(RegistryClient(settings, backend=backend))
    return Evaluator(inspector=inspector, view=ClusterView(), credentials=_no_credentials)


async def verdict_for(evaluator: Evaluator, image: str, *, deadline: float = 60) -> tuple[Verdict, float]:
    """The verdict on one Deployment running ``image``, and how long it took (reported, never asserted)."""
    started = time.monotonic()
    verdict = await asyncio.wait_for(
        evaluator.verdict(plan([POLICY], workload_running(image), {}), now=datetime.now(UTC)), timeout=deadline
    )
    return verdict, time.monotonic() - started


# --- registry answering 429 with Retry-After -----------------------------------------------------------------


@pytest.fixture
def rate_limited(registry: Registry) -> Iterator[RateLimitingProxy]:
    """nginx allowing one request every 2 s, answering the others 429 with Retry-After: 2."""
    with RateLimitingProxy(upstream=registry.url, rate_per_minute=30, retry_after=2) as proxy:
        yield proxy


def settings_through(proxy_host: str, registry: Registry, **overrides: Any) -> RegistrySettings:
    return RegistrySettings(
        address_policy=AddressPolicy(allow_loopback=True),
        ca_files=(str(registry.ca_file),),
        plain_http_registries=(proxy_host,),
        **overrides,
    )


async def test_a_rate_limited_registry_is_waited_for_as_retry_after_says_and_the_verdict_arrives(
    registry: Registry, fixture_images: Any, rate_limited: RateLimitingProxy
) -> None:
    # Its own backoff is 10 ms: only by waiting as Retry-After says can three retries outlast a 2 s limit.
    evaluator = evaluator_for(settings_through(rate_limited.host, registry, backoff_seconds=0.01, retries=3))
    image = f"{rate_limited.host}/{fixture_images.fat_app.ref.split('/', 1)[1]}"
    try:
        verdict, seconds = await verdict_for(evaluator, image)
    finally:
        await evaluator.inspector.client.aclose()  # type: ignore[attr-defined]
    assert verdict.status is Status.NONCOMPLIANT, verdict.findings
    assert [f.rule for f in verdict.findings] == ["maxCompressedSize"]
    seen = [r for r in rate_limited.requests() if r.path.startswith("/v2/")]
    limited = [r for r in seen if r.status == 429]
    served = [r for r in seen if r.status != 429]
    assert limited, "nginx never rate limited: the fault was not caused"
    # HEAD (401, then with a token), GET manifest, GET config: 4 requests served; each may be limited
    # at most `retries` times before it is served.
    assert len(served) == 4, served
    assert len(limited) <= 3 * len(served)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(seen) if earlier.status == 429]
    measured(
        "registry 429 + Retry-After: 2 (nginx limit_req 30r/m)",
        requests=len(seen),
        rate_limited=len(limited),
        served=len(served),
        seconds_to_verdict=round(seconds, 2),
        shortest_wait_after_429=round(min(gaps), 2) if gaps else None,
    )


async def test_a_registry_that_always_rate_limits_costs_a_bounded_number_of_requests_and_an_error_finding(
    registry: Registry, fixture_images: Any
) -> None:
    # One request a minute: after the first, everything is 429, with a Retry-After of an hour.
    with RateLimitingProxy(upstream=registry.url, rate_per_minute=1, retry_after=3600) as proxy:
        evaluator = evaluator_for(settings_through(proxy.host, registry, retries=3, max_retry_after_seconds=0.5))
        image = f"{proxy.host}/{fixture_images.slim_app.ref.split('/', 1)[1]}"
        try:
            verdict, seconds = await verdict_for(evaluator, image)
        finally:
            await evaluator.inspector.client.aclose()  # type: ignore[attr-defined]
        seen = [r for r in proxy.requests() if r.path.startswith("/v2/")]
    assert verdict.status is Status.ERROR
    (finding,) = verdict.findings
    assert finding.kind is FindingKind.ERROR
    assert "is rate limiting slimguard (HTTP 429)" in finding.message
    # The first HEAD is let through (401: no token yet); with the token it is limited, then retried 3 times.
    assert [r.status for r in seen] == [401, 429, 429, 429, 429]
    measured(
        "registry always 429, Retry-After: 3600 (capped at 0.5 s)",
        requests=len(seen),
        seconds_to_error_finding=round(seconds, 2),
    )


# --- registry serving wrong content -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as server:
        yield server


@pytest.fixture
async def hostile_evaluator(hostile: HostileRegistry) -> AsyncIterator[Evaluator]:
    evaluator = evaluator_for(
        RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), plain_http_registries=(hostile.host,))
    )
    yield evaluator
    await evaluator.inspector.client.aclose()  # type: ignore[attr-defined]


async def test_the_hostile_registry_serves_a_sound_image_to_the_same_client(
    hostile: HostileRegistry, hostile_evaluator: Evaluator
) -> None:
    verdict, _ = await verdict_for(hostile_evaluator, f"{hostile.host}/sound/app:1")
    assert verdict.status is Status.COMPLIANT, verdict.findings


WRONG_CONTENT = {
    "mismatch": ("DigestMismatch", "does not match its digest", "a manifest whose digest does not match"),
    "truncated": ("TruncatedResponse", "broke off", "a config blob cut off halfway"),
    "loop": ("TooManyRedirects", "redirected too many times", "a redirect loop"),
    "huge": ("ResponseTooLarge", f"sent {HUGE} bytes where at most", "a 2 GiB Content-Length manifest"),
    "endless": ("ResponseTooLarge", "sent more than the 4194304 bytes expected", "an endless chunked manifest"),
    "badtoken": ("RegistryUnauthorized", "refused access", 'a token answer with "expires_in": [1]'),
}


@pytest.mark.parametrize("fault", list(WRONG_CONTENT))
async def test_wrong_content_is_an_error_finding_in_bounded_requests_and_bytes(
    hostile: HostileRegistry, hostile_evaluator: Evaluator, fault: str
) -> None:
    reason, words, what = WRONG_CONTENT[fault]
    image = f"{hostile.host}/{fault}/app:1"
    inspector = hostile_evaluator.inspector
    started = time.monotonic()
    with pytest.raises(InspectionError) as raised:
        await asyncio.wait_for(inspector.inspect(image, ON_AMD64), timeout=60)
    seconds = time.monotonic() - started
    assert raised.value.reason == reason, str(raised.value)
    assert words in str(raised.value)
    # The same fault through evaluation: an error finding (decided by onUnknown at admission), never a pass.
    verdict, _ = await verdict_for(hostile_evaluator, image)
    assert verdict.status is Status.ERROR
    (finding,) = verdict.findings
    assert finding.kind is FindingKind.ERROR
    assert words in finding.message
    served = hostile.requests_for(f"{fault}/app")
    # The second look was answered from the 15 s failure cache: no request of its own.
    assert len(served) <= 7, [(r.method, r.status) for r in served]
    body_bytes = sum(r.body_bytes for r in served)
    assert body_bytes < 64 * 1024**2, "the client read on far past its cap"
    measured(
        f"registry serves {what}",
        reason=reason,
        requests=len(served),
        body_bytes_sent_by_server=body_bytes,
        seconds_to_error_finding=round(seconds, 3),
    )


# --- registry slower than the admission deadline ---------------------------------------------------------


def test_a_registry_slower_than_the_admission_deadline_is_decided_by_on_unknown_then_audited_for_real(
    control_plane: ControlPlane,
    webhook: WebhookReplicas,
    operator: InProcessOperator,
    registry: Registry,
    fixture_images: Any,
) -> None:
    ns = "fault-slow-registry"
    apply(
        control_plane,
        namespace(ns),
        image_policy("fault-slow", {"maxCompressedSize": "200Mi"}, namespaces=[ns], mode="Enforce"),
    )
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": ns},
        "spec": {"containers": [{"name": "api", "image": "127.0.0.1:1/never/pushed:1"}]},
    }

    def policy_applies() -> bool:
        result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(probe), check=False)
        return result.returncode == 0 and "slimguard" in result.stderr

    wait_for("the webhook to see the policy", policy_applies, timeout=30)
    # Every new connection to the registry waits 6 s: over the webhook's 2.25 s deadline, under the 10 s
    # registry timeout of the controller.
    host, port = registry.host.split(":")
    with DelayProxy(upstream=(host, int(port)), delay=6) as slow:
        image = f"{slow.host}/{fixture_images.fat_app.ref.split('/', 1)[1]}"
        started = time.monotonic()
        admitted = control_plane.kubectl(
            "apply", "-f", "-", input=yaml.safe_dump(deployment("api", ns, image)), check=False
        )
        admission_seconds = time.monotonic() - started
        assert admitted.returncode == 0, admitted.stderr
        assert "admission deadline; admitted unchecked (onUnknown: Allow)" in admitted.stderr
        found = wait_for_status(control_plane, "deployment", "api", ns, "noncompliant", timeout=60)
        verdict_seconds = time.monotonic() - started
    assert [v["rule"] for v in violations(found)] == ["maxCompressedSize"]
    measured(
        "registry slower (6 s per connection) than the 2.25 s admission deadline",
        admission_seconds=round(admission_seconds, 2),
        seconds_to_real_verdict=round(verdict_seconds, 2),
        connections_to_registry=slow.connections,
    )
    control_plane.kubectl("delete", "namespace", ns, "--wait=false")
    control_plane.kubectl("delete", "imagepolicy", "fault-slow")
