"""Publishing: the cached fixtures pushed to a test-bed registry under their references."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimguard_testbed import oci
from slimguard_testbed.images.common import (
    BASE_DIGEST_LABEL,
    BASE_NAME_LABEL,
    DEBIAN_PACKAGES,
    DEBIAN_SUITE,
    NODE_BINARY,
    SLIM_APP_DIR,
    EngineSource,
)
from slimguard_testbed.images.debian import build_debian, build_fat_app, build_node
from slimguard_testbed.images.engine_built import build_slim_app, relocate_base_label
from slimguard_testbed.images.published import FixtureImage, FixtureImages, fixture_image
from slimguard_testbed.images.recipe_cache import _file_key, _tree_hash, cached
from slimguard_testbed.images.shop import (
    build_annotated,
    build_arm64_only,
    build_garbled,
    build_many_layers,
    build_multiarch,
)
from slimguard_testbed.images.small_bases import build_busybox, build_distroless
from slimguard_testbed.oci import Artifact, EndpointLike, Image, Index

if TYPE_CHECKING:
    pass


# -- publishing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixtureArtifacts:
    """The cached artifacts, before the registry host is known."""

    debian: Image
    node: Image
    fat_app: Image
    busybox: Image
    distroless: Image
    slim_app: Image
    multiarch: Index
    arm64_only: Index
    annotated: Image
    garbled: Image
    many_layers: Image


def _as_image(artifact: Artifact) -> Image:
    assert isinstance(artifact, Image)
    return artifact


def _as_index(artifact: Artifact) -> Index:
    assert isinstance(artifact, Index)
    return artifact


def build_fixture_cache(docker_engine: EngineSource, *, log: Callable[[str], None] | None = None) -> FixtureArtifacts:
    """Every fixture: the slow ones from the cache (built if missing; Docker is needed only for a cold
    slim_app), the quick ones built in memory. Change what a cached recipe makes without changing its
    inputs? Bump RECIPE_VERSION."""
    say = log or (lambda _message: None)

    def step(name: str, recipe: Mapping[str, Any], build: Callable[[Path], Artifact]) -> Artifact:
        started = time.monotonic()
        artifact = cached(name, recipe, build)
        say(f"{name}: {artifact.digest} ({time.monotonic() - started:.1f}s)")
        return artifact

    debian = _as_image(
        step(
            "debian",
            {
                "suite": DEBIAN_SUITE,
                "variant": "minbase",
                "arch": "amd64",
                "packages": list(DEBIAN_PACKAGES),
                "apt_cache": "kept",
            },
            build_debian,
        )
    )
    node = _as_image(
        step("node", {"base": debian.digest, "node": _file_key(NODE_BINARY)}, lambda work: build_node(work, debian))
    )
    # Deterministic and quick: built every time, so a change to their code can never meet a stale cache.
    busybox = build_busybox()
    slim_app = _as_image(
        step(
            "slim-app",
            {"base": busybox.digest, "context": _tree_hash(SLIM_APP_DIR)},
            lambda work: build_slim_app(work, busybox, docker_engine),
        )
    )
    distroless = build_distroless()
    multiarch = build_multiarch(busybox)
    return FixtureArtifacts(
        debian=debian,
        node=node,
        fat_app=build_fat_app(node),
        busybox=busybox,
        distroless=distroless,
        slim_app=slim_app,
        multiarch=multiarch,
        arm64_only=build_arm64_only(multiarch),
        annotated=build_annotated(distroless),
        garbled=build_garbled(),
        many_layers=build_many_layers(),
    )


def publish_fixture_images(
    endpoint: EndpointLike,
    docker_engine: EngineSource,
    *,
    log: Callable[[str], None] | None = None,
) -> FixtureImages:
    """Build (or load from the cache) every fixture image and push it to `endpoint`; idempotent.

    `endpoint` needs push rights on base/, shop/ and private/ (its credentials go to the token issuer).
    `docker_engine` (or a function returning one) is only used when slim_app is not cached yet.
    """
    artifacts = build_fixture_cache(docker_engine, log=log)
    host = endpoint.host
    base_annotations = {BASE_NAME_LABEL: f"{host}/base/distroless:12", BASE_DIGEST_LABEL: artifacts.distroless.digest}
    annotated = oci.with_annotations(artifacts.annotated, base_annotations)
    # The index's own manifest carries no annotations, so a test can tell where they were read from.
    annotated_index = oci.build_index([artifacts.annotated], annotations=base_annotations)
    slim_app = relocate_base_label(artifacts.slim_app, host)

    plan: list[tuple[str, str, str, Artifact, tuple[str, ...]]] = [
        ("debian_fat", "base/debian", "bookworm", artifacts.debian, ()),
        ("node_base", "base/node", "20-bookworm", artifacts.node, ("base/debian",)),
        ("fat_app", "shop/api", "1.0-fat", artifacts.fat_app, ("base/node",)),
        ("busybox", "base/busybox", "1.36", artifacts.busybox, ()),
        ("distroless", "base/distroless", "12", artifacts.distroless, ()),
        ("slim_app", "shop/api", "1.0-slim", slim_app, ("base/busybox",)),
        ("private_slim", "private/api", "1.0-slim", slim_app, ("shop/api",)),
        ("multiarch", "shop/multi", "1.0", artifacts.multiarch, ("base/busybox",)),
        ("arm64_only", "shop/arm-only", "1.0", artifacts.arm64_only, ("shop/multi",)),
        ("annotated", "shop/annotated", "1.0", annotated, ("base/distroless",)),
        ("annotated_index", "shop/annotated-index", "1.0", annotated_index, ("shop/annotated",)),
        ("garbled", "shop/garbled", "1.0", artifacts.garbled, ()),
        ("huge_layers", "shop/many-layers", "1.0", artifacts.many_layers, ()),
    ]
    published: dict[str, FixtureImage] = {}
    with oci.IndependentRegistryClient(endpoint) as client:
        for name, repository, tag, artifact, mount_from in plan:
            started = time.monotonic()
            client.push(repository, tag, artifact, mount_from=mount_from)
            published[name] = fixture_image(host, repository, tag, artifact)
            if log:
                log(f"pushed {published[name].ref} {artifact.digest} ({time.monotonic() - started:.1f}s)")
    return FixtureImages(host=host, **published)
