"""The webhook's /readyz: ready while it should get reviews, and saying so when its reviews are all decided by
onUnknown: that stays 200 (unready, the apiserver's failurePolicy would decide instead), with the detail."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from admission.test_decision import create, policy, reviewer
from slimguard.admission.server import ServerSettings, WebhookServer


async def ready(server: WebhookServer, query: str = "") -> tuple[int, str]:
    response: Any = await server.readyz(make_mocked_request("GET", f"/readyz{query}"))
    return response.status, response.text


def serving(*policies: dict[str, Any]) -> tuple[WebhookServer, Any]:
    checking = reviewer(*policies)
    return WebhookServer(reviewer=checking, view=checking.view, settings=ServerSettings()), checking


async def test_a_replica_whose_reviews_were_all_decided_by_onunknown_is_ready_and_says_degraded() -> None:
    server, checking = serving(policy("Enforce"))
    assert await ready(server) == (200, "ok")
    await checking.review(create("127.0.0.1:1/shop/api:1.0"))
    await checking.review(create("127.0.0.1:1/shop/web:1.0"))
    status, text = await ready(server)
    assert status == 200
    assert text == (
        "degraded: 2 of 2 images reviewed in the last 5 min decided by onUnknown, not by their facts: registry "
        "127.0.0.1:1, 2 of 2 (Unreachable: registry 127.0.0.1:1 is unreachable (connection refused))"
    )
    status, verbose = await ready(server, "?verbose")
    assert status == 200
    assert verbose.splitlines() == [
        "[+]shutdown ok",
        "[+]certificate ok",
        "[+]policies ok",
        "[+]vulnerabilityreports ok",
        f"[!]enforcing {text}",
        "readyz check passed",
    ]


async def test_verbose_names_the_failing_check_and_answers_503() -> None:
    server, checking = serving(policy("Enforce"))
    checking.view.policies_synced = False
    assert await ready(server) == (503, "policies not loaded yet")
    status, verbose = await ready(server, "?verbose")
    assert status == 503
    assert verbose.splitlines() == [
        "[+]shutdown ok",
        "[+]certificate ok",
        "[-]policies failed: policies not loaded yet",
        "[+]vulnerabilityreports ok",
        "[+]enforcing ok: no images reviewed in the last 5 min",
        "readyz check failed",
    ]
    server.draining = True
    assert await ready(server) == (503, "shutting down")


async def test_while_its_vulnerabilityreports_are_listed_a_replica_stays_ready_and_says_they_decide_nothing() -> None:
    """A policy with a vulnerabilities rule added while the replica serves starts the reports' watch: until its
    LIST is in, the rule is left to onUnknown (ReportsPending), and /readyz says so without leaving the Service."""
    server, checking = serving(policy("Enforce"))
    checking.view.reports_pending = True
    status, text = await ready(server)
    assert status == 200
    assert text.startswith(
        "degraded: VulnerabilityReports are being listed: vulnerability rules are decided by onUnknown"
    )
    status, verbose = await ready(server, "?verbose")
    assert status == 200
    assert verbose.splitlines()[3].startswith("[!]vulnerabilityreports degraded: VulnerabilityReports are being listed")
    assert verbose.splitlines()[-1] == "readyz check passed"
    checking.view.reports_pending = False
    assert await ready(server) == (200, "ok")


async def test_while_draining_every_answer_tells_the_apiserver_to_close_its_connection() -> None:
    """The apiserver keeps connections to a replica alive after the endpoints drop it (conntrack keeps them on the
    old Pod); closing them idle when the drain ends races a POST on them, which the apiserver cannot retry (seen:
    1 create in 5,723 failed with EOF when a webhook Pod was deleted). Closed after an answer, nothing races."""
    server, _ = serving(policy("Enforce"))
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {**create(), "uid": "u"}}
    async with TestClient(TestServer(server.app())) as client:
        serving_answer = await client.post("/validate", json=review)
        assert serving_answer.status == 200
        assert serving_answer.headers.get("Connection", "keep-alive").lower() == "keep-alive"
        server.draining = True
        draining_answer = await client.post("/validate", json=review)
        assert draining_answer.status == 200
        assert draining_answer.headers["Connection"].lower() == "close"
