"""The webhook serves reviews at the path its ValidatingWebhookConfiguration names (Helm ``webhook.path``)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from slimguard.admission.server import ServerSettings, WebhookServer


def routes(settings: ServerSettings) -> set[tuple[str, str]]:
    server = WebhookServer(reviewer=cast(Any, None), view=cast(Any, None), settings=settings)
    return {(route.method, route.resource.canonical) for route in server.app().router.routes() if route.resource}


def test_reviews_are_served_at_the_configured_path_and_only_there() -> None:
    served = routes(ServerSettings(path="/admit/images"))
    assert ("POST", "/admit/images") in served
    assert ("POST", "/validate") not in served
    assert {("GET", "/healthz"), ("GET", "/readyz")} <= served


def test_the_default_path_is_the_charts_default() -> None:
    assert ("POST", "/validate") in routes(ServerSettings())


@pytest.mark.parametrize("path", ["validate", "", "/healthz", "/readyz"])
def test_a_path_that_cannot_be_served_is_refused_naming_it(path: str) -> None:
    with pytest.raises(ValueError, match=f"--path {path!r} must start with /"):
        ServerSettings(path=path)
