"""Content rules against the real registry and real images: layers streamed, walked, judged.

The fat Debian fixture is a real debootstrap (build-essential and all); the other shapes are built by the real
Docker engine (slimguard_testbed/images/content_shapes.py; the multi-stage one is the suite's slim app).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from slimguard.core.evaluation.plan import plan
from slimguard.core.evaluation.verdict import Finding, FindingKind, Status, Verdict
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.workload import Container, ContainerType, Workload
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.facts import NO_CLUSTER
from slimguard.registry.client import RegistryClient
from slimguard.registry.guard import AddressPolicy, GuardedNetworkBackend
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import Registry
from slimguard_testbed.images.content_shapes import ContentShapes, publish_content_shapes
from slimguard_testbed.operator_runner import LoopbackOnlyBackend

pytestmark = pytest.mark.timeout(900)  # a cold run builds the engine images once (import, build, save)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def content_shapes(registry: Registry, fixture_images: Any, request: pytest.FixtureRequest) -> ContentShapes:
    return publish_content_shapes(
        registry.endpoint,
        fixture_images.debian_fat.artifact,
        fixture_images.busybox.artifact,
        lambda: request.getfixturevalue("docker_engine"),
    )


@pytest.fixture
async def inspector(registry: Registry) -> AsyncIterator[ImageInspector]:
    settings = RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), ca_files=(str(registry.ca_file),))
    backend = GuardedNetworkBackend(settings.address_policy, inner=LoopbackOnlyBackend())
    inspector = ImageInspector(RegistryClient(settings, backend=backend))
    yield inspector
    await inspector.client.aclose()


async def no_credentials(_workload: Workload) -> list[Any]:
    return []


async def judge(inspector: ImageInspector, image: str, **rules: Any) -> Verdict:
    policy = ImagePolicy.from_resource("inside", {"mode": "Enforce", "rules": rules})
    workload = Workload(
        kind="Deployment",
        namespace="shop",
        name="api",
        labels={},
        containers=(Container(type=ContainerType.REGULAR, index=0, name="api", image=image),),
    )
    evaluator = Evaluator(inspector=inspector, view=NO_CLUSTER, credentials=no_credentials)
    return await evaluator.verdict(plan([policy], workload, {}), now=NOW)


def finding(verdict: Verdict, rule: str) -> Finding:
    found = [item for item in verdict.findings if item.rule == rule]
    assert len(found) == 1, verdict.findings
    return found[0]


def installed_in_status(fixture: Any) -> int:
    """The oracle: dpkg's own status file, taken out of the fixture's layer by tar, stanzas installed."""
    blob = fixture.artifact.layers[0].blob.path
    status = subprocess.run(
        ["tar", "-xzOf", str(blob), "--wildcards", "*var/lib/dpkg/status"], capture_output=True, check=True
    ).stdout.decode()
    return sum(1 for stanza in status.split("\n\n") if "\nStatus: install ok installed" in f"\n{stanza}")


async def test_the_fat_debian_image_has_too_many_packages_and_compilers_named_with_their_layer(
    inspector: ImageInspector, fixture_images: Any
) -> None:
    verdict = await judge(inspector, fixture_images.debian_fat.ref, maxPackages=100, forbiddenTools=["compilers"])
    assert verdict.status is Status.NONCOMPLIANT
    packages = finding(verdict, "maxPackages")
    expected = installed_in_status(fixture_images.debian_fat)
    assert expected > 100
    assert f"has {expected} OS packages (dpkg, linux/amd64)" in packages.message
    assert packages.actual == str(expected)
    tools = finding(verdict, "forbiddenTools")
    # The one layer debootstrap made, with the instruction its history gives, adds gcc and make (by package
    # and by path).
    assert "has compilers (linux/amd64): layer 1/1 (# debian.sh --arch 'amd64' out/ 'bookworm'" in tools.message
    assert "packages build-essential, gcc, g++, make" in tools.message
    assert "/usr/bin/gcc" in tools.message
    assert "/usr/bin/make" in tools.message


async def test_a_single_stage_build_on_the_fat_base_fails_and_the_blame_names_its_layers(
    inspector: ImageInspector, content_shapes: ContentShapes
) -> None:
    verdict = await judge(
        inspector, content_shapes.single_stage.ref, maxCompressedSize="100Mi", forbiddenTools=["compilers"]
    )
    size = finding(verdict, "maxCompressedSize")
    layers = content_shapes.single_stage.platforms[0].layers
    assert f"Largest layers: layer 1/{layers} adds " in size.message
    # The layer the RUN made (the compiled app) is among the three largest, named by its instruction.
    assert "RUN gcc -O2 -o /usr/local/bin/hello hello.c && strip /usr/local/bin/hello" in size.message
    tools = finding(verdict, "forbiddenTools")
    assert f"layer 1/{layers} (" in tools.message
    assert "gcc" in tools.message


async def test_a_multi_stage_build_on_a_slim_base_passes_every_content_rule(
    inspector: ImageInspector, fixture_images: Any
) -> None:
    verdict = await judge(
        inspector,
        fixture_images.slim_app.ref,
        maxPackages=100,
        forbiddenTools=["compilers", "packageManagers", "vcs"],
        maxCompressedSize="100Mi",
        minEfficiency=0.9,
    )
    assert verdict.findings == ()
    assert verdict.status is Status.COMPLIANT


async def test_tools_in_the_final_stage_fail_naming_the_run_line_that_added_them(
    inspector: ImageInspector, content_shapes: ContentShapes
) -> None:
    verdict = await judge(inspector, content_shapes.tools_in_final.ref, forbiddenTools=["compilers"], maxPackages=10)
    tools = finding(verdict, "forbiddenTools")
    layers = content_shapes.tools_in_final.platforms[0].layers
    assert (
        f"has compilers (linux/amd64): layer {layers}/{layers} (RUN mkdir -p /usr/local/bin && cp "
        "/opt/toolchain/gcc /opt/toolchain/make /usr/l…) adds /usr/local/bin/gcc, /usr/local/bin/make;"
    ) in tools.message
    # busybox has no package database: zero packages, counted, not unknown.
    assert [item.rule for item in verdict.findings] == ["forbiddenTools"]


async def test_layers_shared_by_two_images_are_read_once(inspector: ImageInspector, fixture_images: Any) -> None:
    await judge(inspector, fixture_images.node_base.ref, maxPackages=1000)
    read = inspector.layer_reads
    assert read == fixture_images.node_base.platforms[0].layers
    await judge(inspector, fixture_images.fat_app.ref, maxPackages=1000)
    # shop/api:1.0-fat is node_base's layers plus the app's: only the app's layer is new.
    assert inspector.layer_reads - read == 1


async def test_the_webhook_reads_no_layer_and_says_the_content_is_pending(
    registry: Registry, fixture_images: Any
) -> None:
    async def cost(**rules: Any) -> tuple[Verdict, int, int]:
        settings = RegistrySettings(
            address_policy=AddressPolicy(allow_loopback=True), ca_files=(str(registry.ca_file),)
        )
        backend = GuardedNetworkBackend(settings.address_policy, inner=LoopbackOnlyBackend())
        webhook_inspector = ImageInspector(RegistryClient(settings, backend=backend), read_layers=False)
        try:
            verdict = await judge(webhook_inspector, fixture_images.debian_fat.ref, **rules)
            return verdict, webhook_inspector.client.requests_sent, webhook_inspector.layer_reads
        finally:
            await webhook_inspector.client.aclose()

    verdict, with_content, layers_read = await cost(maxPackages=100, maxLayers=10)
    pending = finding(verdict, "maxPackages")
    assert (pending.kind, pending.reason) == (FindingKind.ERROR, "ContentPending")
    assert "controller is reading its layers" in pending.message
    assert layers_read == 0
    _, without_content, _ = await cost(maxLayers=10)
    assert with_content == without_content, "a content rule costs the webhook no request"
