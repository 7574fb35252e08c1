"""The slim app, built in two stages by the real Docker engine, and read back from `docker save`."""

from __future__ import annotations

import gzip
import json
import tarfile
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
from slimguard_testbed.oci import Image, Layer
from slimguard_testbed.process import TestbedError

if TYPE_CHECKING:
    pass


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


def image_from_docker_archive(archive: Path, work: Path) -> Image:
    """An `Image` from a `docker save` tarball: the engine's config bytes as they are, each layer gzipped."""
    with tarfile.open(archive) as tar:
        manifest_member = tar.extractfile("manifest.json")
        assert manifest_member is not None
        entry = json.loads(manifest_member.read())[0]
        config_member = tar.extractfile(entry["Config"])
        assert config_member is not None
        config = oci.Blob.of(config_member.read())
        history = [h for h in json.loads(config.read()).get("history", []) if not h.get("empty_layer")]
        layers: list[Layer] = []
        for number, name in enumerate(entry["Layers"]):
            member = tar.extractfile(name)
            assert member is not None
            created_by = history[number].get("created_by", "") if number < len(history) else ""
            layers.append(oci.layer_from_tar(member, work / f"layer-{number}.tar.gz", created_by=created_by))
    platform = oci.Platform.from_dict(json.loads(config.read()))
    return oci.image_from_parts(config, layers, platform=platform, docker=True)


def relocate_base_label(image: Image, host: str) -> Image:
    """The cached slim image names its base under PLACEHOLDER_HOST: name the registry it is pushed to."""

    def change(config: dict[str, Any]) -> None:
        labels = config.get("config", {}).get("Labels") or {}
        if labels.get(BASE_NAME_LABEL, "").startswith(PLACEHOLDER_HOST + "/"):
            labels[BASE_NAME_LABEL] = host + labels[BASE_NAME_LABEL][len(PLACEHOLDER_HOST) :]

    return oci.with_config(image, change)
