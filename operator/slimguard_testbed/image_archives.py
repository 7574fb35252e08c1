"""Image archives made by the real tools, of images pushed to a test-bed registry: what `slimguard check --input`
reads in a pipeline.

- `docker_save`: the Docker engine pulls the image from the registry and `docker save`s it (the docker SDK's
  `Image.save`, streamed to a file). dockerd 20.10 writes the classic layout (`manifest.json`, `<id>/layer.tar`).
- `skopeo_copy`: skopeo copies the image from the registry into an OCI layout (`oci:DIR:TAG`) or its tar
  (`oci-archive:FILE:TAG`), every platform of an index with `all_platforms`; the blobs are the registry's own.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docker

from slimguard_testbed.cache import require_binary
from slimguard_testbed.process import TestbedError

_CHUNK = 1 << 20


def docker_save(client: docker.DockerClient, reference: str, out: Path) -> Path:
    """`docker pull` then `docker save` of `reference` into `out`, named by `reference` (its `RepoTags`)."""
    image = client.images.pull(reference)
    with out.open("wb") as file:
        for chunk in image.save(chunk_size=_CHUNK, named=reference):
            file.write(chunk)
    return out


def skopeo_copy(reference: str, destination: str, *, ca_file: Path, all_platforms: bool = False) -> None:
    """`skopeo copy docker://REFERENCE DESTINATION` (e.g. `oci:/tmp/layout:1.0`), trusting the registry's CA."""
    skopeo = require_binary("skopeo", hint="apt-get install skopeo")
    destination_path = Path(destination.split(":", 1)[1].rsplit(":", 1)[0])
    certs = destination_path.parent / f".{destination_path.name}-certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_file, certs / "ca.crt")  # skopeo reads a directory of CAs (as /etc/containers/certs.d)
    command = [str(skopeo), "--insecure-policy", "copy", "--quiet", "--src-cert-dir", str(certs)]
    if all_platforms:
        command.append("--all")
    result = subprocess.run(
        [*command, f"docker://{reference}", destination], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise TestbedError(f"skopeo copy {reference} {destination} failed:\n{result.stderr[-2000:]}")


__all__ = ["docker_save", "skopeo_copy"]
