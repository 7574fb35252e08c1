"""Image references that point inside the network are refused before any socket opens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from cluster import apply, deployment, image_policy, namespace, violations, wait_for_status

from slimguard.core.errors import InspectionError
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.platform import Platform
from slimguard.registry.client import RegistryClient
from slimguard.registry.guard import AddressPolicy, GuardedNetworkBackend
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import ControlPlane, Registry
from slimguard_testbed.operator_runner import InProcessOperator, LoopbackOnlyBackend

AMD64 = {Platform("linux", "amd64")}
ON_AMD64 = FactsNeeds(frozenset(AMD64))


def test_a_workload_on_the_metadata_address_gets_a_clear_error_and_no_connection_is_made(
    control_plane: ControlPlane, operator: InProcessOperator
) -> None:
    ns = "guard-metadata"
    apply(control_plane, namespace(ns), deployment("imds", ns, "169.254.169.254/latest/meta-data:1"))
    apply(control_plane, image_policy("guarded", {"maxCompressedSize": "200Mi"}, namespaces=[ns]))
    found = wait_for_status(control_plane, "deployment", "imds", ns, "error")
    (finding,) = violations(found)
    assert "registry host 169.254.169.254 is a link-local address" in finding["message"]
    assert all(host == "127.0.0.1" for host, _ in operator.backend.attempts)
    control_plane.kubectl("delete", "imagepolicy", "guarded")


async def test_a_host_name_resolving_to_loopback_is_refused_when_loopback_is_not_allowed(
    registry: Registry, fixture_images: Any
) -> None:
    """``localhost`` is the real registry here; with loopback not allowed the guard must say no first."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return ["127.0.0.1"]

    connector = LoopbackOnlyBackend()
    settings = RegistrySettings(address_policy=AddressPolicy(allow_loopback=False), ca_files=(str(registry.ca_file),))
    client = RegistryClient(
        settings, backend=GuardedNetworkBackend(settings.address_policy, resolver=resolver, inner=connector)
    )
    inspector = ImageInspector(client)
    port = registry.host.rsplit(":", 1)[1]
    try:
        with pytest.raises(InspectionError, match=r"registry host localhost \(127.0.0.1\) is a loopback address"):
            await inspector.inspect(f"localhost:{port}/shop/api:1.0-slim", ON_AMD64)
    finally:
        await client.aclose()
    assert asked == ["localhost"]
    assert connector.attempts == []


async def test_the_same_image_is_read_once_loopback_is_allowed(registry: Registry, fixture_images: Any) -> None:
    """The control case: the guard's refusal above is the only thing standing between them."""
    connector = LoopbackOnlyBackend()
    settings = RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), ca_files=(str(registry.ca_file),))
    client = RegistryClient(settings, backend=GuardedNetworkBackend(settings.address_policy, inner=connector))
    try:
        facts = await ImageInspector(client).inspect(fixture_images.slim_app.ref, ON_AMD64)
    finally:
        await client.aclose()
    assert facts.digest == fixture_images.slim_app.digest
    assert connector.attempts
    assert all(host == "127.0.0.1" for host, _ in connector.attempts)
