"""The Docker engine's images, prepared before any test's clock starts (tests/e2e/conftest.py's warm-up).

A first run on a machine finds dockerd's data root empty: pulling the fat node base alone (~355 MiB compressed,
~700 MB unpacked on vfs) took longer than a test's 60 s timeout (issue 21). So the warm-up pulls the fat bases
once through a registry of its own, imports the busybox base, builds the content shapes and slimguard's own
image, each checked first so that a warm machine does it all in seconds.

dockerd keys a pulled layer by its compressed digest (its v2 metadata), not by the registry it came from: once a
layer is in the engine, a pull of the same image from the session's registry, on another port, only reads the
manifest and says "Already exists" for every layer.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slimguard_testbed import oci
from slimguard_testbed.cache import REPO_ROOT, cache_dir
from slimguard_testbed.docker_engine import DockerEngine
from slimguard_testbed.images.common import ENGINE_BASE_TAG
from slimguard_testbed.images.content_shapes import content_shape_artifacts, import_base_image
from slimguard_testbed.images.engine_built import CLI_FAT_ARTIFACT, build_fat_cli_app, engine_image_artifact
from slimguard_testbed.images.publish import FixtureArtifacts
from slimguard_testbed.images.self_image import build_self_image
from slimguard_testbed.oci import Image

if TYPE_CHECKING:
    import docker

# Where the pulled fat bases are kept in the engine: removing the warm-up registry's tag must not delete them.
PULLED_NODE_TAG = "slimguard-fixtures/pulled-node:20-bookworm"
PULLED_DEBIAN_TAG = "slimguard-fixtures/pulled-debian:bookworm"


@dataclass(frozen=True)
class EngineNeeds:
    """What the collected tests will ask of the engine."""

    fat_bases: bool = False  # pulled from a registry: test_cli's fat build, the self image's base detection
    busybox: bool = False  # imported: the slim Dockerfile's base
    content_shapes: bool = False
    self_image: bool = False
    cli_fat_build: bool = False  # test_cli's single-stage build, saved once so a session pushes it in seconds

    def any(self) -> bool:
        return self.fat_bases or self.busybox or self.content_shapes or self.self_image or self.cli_fat_build


def pull_fat_bases(client: docker.DockerClient, artifacts: FixtureArtifacts, *, say: Callable[[str], None]) -> None:
    """The node and Debian fixtures pulled into the engine (not imported: only a pull records the compressed
    digests that make later pulls from the session's registry skip every layer)."""
    wanted = {PULLED_NODE_TAG: ("base/node", "20-bookworm", artifacts.node)}
    wanted[PULLED_DEBIAN_TAG] = ("base/debian", "bookworm", artifacts.debian)
    missing = {tag: spec for tag, spec in wanted.items() if not _pulled(client, tag, spec[2])}
    if not missing:
        return
    from slimguard_testbed.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="warm-registry-", dir=cache_dir("docker")))
    try:
        with Registry(storage_dir=work / "storage", workdir=work / "registry") as registry:
            with oci.IndependentRegistryClient(registry.endpoint) as pusher:
                for repository, tag, image in missing.values():
                    pusher.push(repository, tag, image)
            for local_tag, (repository, tag, _image) in missing.items():
                started = time.monotonic()
                remote = f"{registry.host}/{repository}"
                pulled = client.images.pull(remote, tag=tag)
                pulled.tag(*local_tag.split(":"))
                client.images.remove(f"{remote}:{tag}")
                say(f"pulled {repository}:{tag} into the engine ({time.monotonic() - started:.0f}s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pulled(client: docker.DockerClient, tag: str, image: Image) -> bool:
    # The engine's image ID is the config digest: a stale pull of an older recipe does not count.
    import docker.errors

    try:
        return str(client.images.get(tag).id) == image.config.digest
    except docker.errors.ImageNotFound:
        return False


def import_busybox_base(client: docker.DockerClient, busybox: Image) -> None:
    """The busybox fixture's root filesystem as the engine image ENGINE_BASE_TAG (the slim Dockerfile's base)."""
    import_base_image(client, ENGINE_BASE_TAG, busybox, cmd="sh")


def warm_docker_engine(artifacts: FixtureArtifacts, needs: EngineNeeds, *, say: Callable[[str], None]) -> None:
    """Do, once per machine, whatever the collected tests would otherwise do for the first time inside dockerd.

    The test bed's dockerd is started (or reused) and released again; the session's `docker_engine` fixture
    uses the same data root, so everything done here is there for the tests.
    """
    with DockerEngine() as engine:
        client = engine.client(timeout=1800)
        try:
            if needs.fat_bases or needs.self_image or needs.cli_fat_build:
                pull_fat_bases(client, artifacts, say=say)
            if needs.busybox:
                import_busybox_base(client, artifacts.busybox)
            if needs.content_shapes:
                content_shape_artifacts(artifacts.debian, artifacts.busybox, engine)
            if needs.cli_fat_build:
                started = time.monotonic()
                with tempfile.TemporaryDirectory(prefix="warm-cli-fat-") as work:
                    image_id = build_fat_cli_app(client, base=PULLED_NODE_TAG, work=Path(work))
                    engine_image_artifact(client, image_id, name=CLI_FAT_ARTIFACT, known_layers=artifacts.node.layers)
                say(f"test_cli's fat build saved for pushing ({time.monotonic() - started:.0f}s)")
            if needs.self_image:
                started = time.monotonic()
                with tempfile.TemporaryDirectory(prefix="warm-self-image-") as work:
                    build_self_image(
                        client,
                        repo_root=REPO_ROOT,
                        node_base=PULLED_NODE_TAG,
                        debian_fat=PULLED_DEBIAN_TAG,
                        workdir=Path(work),
                    )
                say(f"slimguard's own image built ({time.monotonic() - started:.0f}s)")
        finally:
            client.close()
