"""The Dockerfile shapes content rules are about, built by the real Docker engine on the fat Debian fixture.

- ``single_stage``: the app compiled on the fat base and shipped on it (compilers, apt cache and all);
- ``tools_in_final``: a slim busybox final stage that a later ``RUN`` fills with gcc and make again.

(The multi-stage shape that passes is the existing ``slim_app``.) The fat base is `docker import`ed into the
engine from the fixture's own layer, nothing is pulled, and the builds run with ``--network=none``. Both are
cached like the other slow fixtures (a recipe hash of their inputs), so a warm run needs no engine at all.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from slimguard_testbed import oci
from slimguard_testbed.images.common import ENGINE_BASE_TAG, PATH_ENV, EngineSource, _engine
from slimguard_testbed.images.engine_built import image_from_docker_archive
from slimguard_testbed.images.published import FixtureImage, fixture_image
from slimguard_testbed.images.recipe_cache import _tree_hash, cached
from slimguard_testbed.oci import EndpointLike, Image
from slimguard_testbed.process import TestbedError

if TYPE_CHECKING:
    import docker

CONTEXT_DIR = Path(__file__).parent.parent / "fixtures" / "content-shapes"
FAT_ENGINE_TAG = "slimguard-fixtures/debian:bookworm"
SHAPES = {
    "single_stage": ("single-stage.Dockerfile", "shop/api", "1.0-single-stage"),
    "tools_in_final": ("tools-in-final.Dockerfile", "shop/api", "1.0-tools-in-final"),
}


@dataclass(frozen=True)
class ContentShapes:
    single_stage: FixtureImage
    tools_in_final: FixtureImage


def _ensure_bases(client: docker.DockerClient, debian: Image, busybox: Image) -> None:
    """The fat Debian and busybox fixtures as engine images, imported from their own layers."""
    for tag, image, cmd in ((FAT_ENGINE_TAG, debian, "bash"), (ENGINE_BASE_TAG, busybox, "sh")):
        import_base_image(client, tag, image, cmd=cmd)


def import_base_image(client: docker.DockerClient, tag: str, image: Image, *, cmd: str) -> None:
    """A one-layer fixture's root filesystem `docker import`ed as the engine image ``tag``, unless ``tag`` is there
    (an import makes a new image ID each time, and every build on it would miss dockerd's build cache)."""
    import docker.errors

    try:
        client.images.get(tag)
        return
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.partition(":")
    changes = [f"ENV {PATH_ENV}", f'CMD ["{cmd}"]']
    blob = image.layers[0].blob
    if blob.path is not None:  # the fat layer stays on disk: the engine reads the gzip file itself
        client.api.import_image_from_file(str(blob.path), repository=repository, tag=version, changes=changes)
    else:
        with blob.open() as compressed, gzip.open(compressed) as tar_stream:
            client.api.import_image_from_data(tar_stream.read(), repository=repository, tag=version, changes=changes)


def build_shape(work: Path, dockerfile: str, debian: Image, busybox: Image, engine_source: EngineSource) -> Image:
    engine = _engine(engine_source)
    if engine is None:
        raise TestbedError(f"the {dockerfile} fixture is not cached yet and building it needs a Docker engine")
    client = engine.client()
    try:
        _ensure_bases(client, debian, busybox)
        tag = f"slimguard-fixtures/content-shapes:{dockerfile.split('.')[0]}"
        image, _logs = client.images.build(
            path=str(CONTEXT_DIR),
            dockerfile=dockerfile,
            tag=tag,
            network_mode="none",
            pull=False,
            rm=True,
            forcerm=True,
            buildargs={"FAT": FAT_ENGINE_TAG, "SLIM": ENGINE_BASE_TAG},
        )
        archive = work / "shape.tar"
        with archive.open("wb") as out:
            for chunk in image.save(named=True):
                out.write(chunk)
    finally:
        client.close()
    return image_from_docker_archive(archive, work)


def content_shape_artifacts(debian: Image, busybox: Image, engine_source: EngineSource) -> dict[str, Image]:
    """Each shape from the cache, built by the engine first if it is not cached yet (the warm-up calls this)."""
    artifacts: dict[str, Image] = {}
    for name, (dockerfile, _repository, _tag) in SHAPES.items():
        recipe = {
            "debian": debian.digest,
            "busybox": busybox.digest,
            "context": _tree_hash(CONTEXT_DIR),
            "dockerfile": dockerfile,
        }
        artifact = cached(
            f"content-{name.replace('_', '-')}",
            recipe,
            lambda work, dockerfile=dockerfile: build_shape(work, dockerfile, debian, busybox, engine_source),  # type: ignore[misc]
        )
        assert isinstance(artifact, Image)
        artifacts[name] = artifact
    return artifacts


def publish_content_shapes(
    endpoint: EndpointLike, debian: Image, busybox: Image, engine_source: EngineSource
) -> ContentShapes:
    """Build (or load from the cache) each shape and push it to ``endpoint``."""
    built: dict[str, FixtureImage] = {}
    artifacts = content_shape_artifacts(debian, busybox, engine_source)
    with oci.IndependentRegistryClient(endpoint) as registry:
        for name, (_dockerfile, repository, tag) in SHAPES.items():
            registry.push(repository, tag, artifacts[name])
            built[name] = fixture_image(endpoint.host, repository, tag, artifacts[name])
    return ContentShapes(**built)
