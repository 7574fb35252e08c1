"""The slim app, built in two stages by the real Docker engine, and read back from `docker save`."""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimguard_testbed import oci
from slimguard_testbed.images.common import (
    BASE_NAME_LABEL,
    ENGINE_BASE_TAG,
    ENGINE_SLIM_TAG,
    PATH_ENV,
    PLACEHOLDER_HOST,
    SLIM_APP_DIR,
    EngineSource,
    _engine,
)
from slimguard_testbed.images.recipe_cache import cached
from slimguard_testbed.oci import Image, Layer
from slimguard_testbed.process import TestbedError

if TYPE_CHECKING:
    import docker


# -- built by the real Docker engine ---------------------------------------------------------------------


def build_slim_app(work: Path, busybox: Image, engine_source: EngineSource) -> Image:
    """`docker import` the busybox rootfs, `docker build --network=none` the multi-stage Dockerfile,
    `docker save` the result and keep it as it is (config and layer tars untouched, layers gzipped)."""
    engine = _engine(engine_source)
    if engine is None:
        raise TestbedError("the slim_app fixture is not cached yet and building it needs a Docker engine")
    client = engine.client()
    try:
        with busybox.layers[0].blob.open() as compressed, gzip.open(compressed) as tar_stream:
            rootfs_tar = tar_stream.read()
        client.api.import_image_from_data(
            rootfs_tar,
            repository=ENGINE_BASE_TAG.split(":")[0],
            tag=ENGINE_BASE_TAG.split(":")[1],
            changes=[f"ENV {PATH_ENV}", 'CMD ["sh"]'],
        )
        image, _logs = client.images.build(
            path=str(SLIM_APP_DIR),
            tag=ENGINE_SLIM_TAG,
            network_mode="none",
            pull=False,
            rm=True,
            forcerm=True,
            buildargs={
                "BASE": ENGINE_BASE_TAG,
                "BASE_NAME": f"{PLACEHOLDER_HOST}/base/busybox:1.36",
                "BASE_DIGEST": busybox.digest,
            },
        )
        archive = work / "slim-app.tar"
        with archive.open("wb") as out:
            for chunk in image.save(named=True):
                out.write(chunk)
    finally:
        client.close()
    return image_from_docker_archive(archive, work)


def image_from_docker_archive(archive: Path, work: Path, *, known_layers: Sequence[Layer] = ()) -> Image:
    """An `Image` from a `docker save` tarball: the engine's config bytes as they are, each layer gzipped.

    A layer whose diff_id is among ``known_layers`` (a base pushed already) is that layer, compressed blob and all:
    it is neither gzipped again here nor uploaded again by a push that mounts it from the base's repository.
    """
    known = {layer.diff_id: layer for layer in known_layers}
    with tarfile.open(archive) as tar:
        manifest_member = tar.extractfile("manifest.json")
        assert manifest_member is not None
        entry = json.loads(manifest_member.read())[0]
        config_member = tar.extractfile(entry["Config"])
        assert config_member is not None
        config = oci.Blob.of(config_member.read())
        config_json = json.loads(config.read())
        history = [h for h in config_json.get("history", []) if not h.get("empty_layer")]
        diff_ids = config_json.get("rootfs", {}).get("diff_ids", [])
        layers: list[Layer] = []
        for number, name in enumerate(entry["Layers"]):
            created_by = history[number].get("created_by", "") if number < len(history) else ""
            reused = known.get(diff_ids[number]) if number < len(diff_ids) else None
            if reused is not None:
                layers.append(reused.with_created_by(created_by))
                continue
            member = tar.extractfile(name)
            assert member is not None
            layers.append(oci.layer_from_tar(member, work / f"layer-{number}.tar.gz", created_by=created_by))
    platform = oci.Platform.from_dict(config_json)
    return oci.image_from_parts(config, layers, platform=platform, docker=True)


def engine_image_artifact(
    client: docker.DockerClient, image_id: str, *, name: str, known_layers: Sequence[Layer] = ()
) -> Image:
    """An image the engine built, as an `Image` the test bed can push: `docker save`d and converted once per image
    ID (the cache), so a session pushes it in about a second instead of letting `docker push` compress ~800 MB
    into each session's new registry again (~25 s on a quiet machine, a minute and more under load)."""
    recipe = {"engine_image": image_id, "known_layers": sorted(layer.diff_id for layer in known_layers)}

    def save(work: Path) -> Image:
        archive = work / "image.tar"
        with archive.open("wb") as out:
            for chunk in client.images.get(image_id).save(named=False):
                out.write(chunk)
        image = image_from_docker_archive(archive, work, known_layers=known_layers)
        archive.unlink()
        return image

    artifact = cached(name, recipe, save)
    assert isinstance(artifact, Image)
    return artifact


def relocate_base_label(image: Image, host: str) -> Image:
    """The cached slim image names its base under PLACEHOLDER_HOST: name the registry it is pushed to."""

    def change(config: dict[str, Any]) -> None:
        labels = config.get("config", {}).get("Labels") or {}
        if labels.get(BASE_NAME_LABEL, "").startswith(PLACEHOLDER_HOST + "/"):
            labels[BASE_NAME_LABEL] = host + labels[BASE_NAME_LABEL][len(PLACEHOLDER_HOST) :]

    return oci.with_config(image, change)


# -- the seed's single-stage Dockerfile, as test_cli builds it -----------------------------------------------

FAT_APP_DIR = SLIM_APP_DIR.parent / "fat-app"
CLI_FAT_ARTIFACT = "cli-api-fat"


def build_fat_cli_app(client: docker.DockerClient, *, base: str, work: Path, tag: str | None = None) -> str:
    """`docker build` fixtures/fat-app on ``base`` (the node fixture, under any name); returns the image ID.

    The Dockerfile has no ARG after its FROM, so its steps are cached by the base's image ID alone: the warm-up's
    build on the pulled base and a session's build on the same base from its own registry make the same image.
    """
    context = work / "fat-context"
    context.mkdir(parents=True, exist_ok=True)
    shutil.copy(FAT_APP_DIR / "Dockerfile", context / "Dockerfile")
    for name in ("server.js", "package.json"):
        shutil.copy(SLIM_APP_DIR / name, context / name)
    image, _logs = client.images.build(
        path=str(context),
        tag=tag,
        buildargs={"BASE": base},
        network_mode="none",
        pull=False,
        rm=True,
        forcerm=True,
    )
    return str(image.id)
