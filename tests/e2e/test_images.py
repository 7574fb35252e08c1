"""The fixture images are what they claim to be: read back from the real registry over HTTP(S).

Every other end-to-end test leans on these claims (a fat Debian base, an engine-built slim app, a real
multi-arch index, base-image annotations), so they are checked here against the bytes the registry serves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from slimguard_testbed import oci
from slimguard_testbed.images import FixtureImages, publish_fixture_images, push_image
from slimguard_testbed.registry import Registry

# A cold image cache builds a Debian root filesystem first (~2 min); warm, the whole module takes ~15 s.
pytestmark = pytest.mark.timeout(900)

MB = 1000 * 1000


@pytest.fixture(scope="module")
def reader(registry: Registry) -> Iterator[oci.IndependentRegistryClient]:
    """Reads with the push credentials (private/ needs them)."""
    with oci.IndependentRegistryClient(registry.endpoint) as client:
        yield client


def manifest_json(
    reader: oci.IndependentRegistryClient, repository: str, reference: str
) -> tuple[dict[str, Any], str, str]:
    body, media_type, digest = reader.manifest(repository, reference)
    return json.loads(body), media_type, digest


def config_json(reader: oci.IndependentRegistryClient, repository: str, manifest: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(reader.blob(repository, manifest["config"]["digest"]))
    return config


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (tarfile's stream mode reads from it)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@dataclasses.dataclass
class LayerScan:
    diff_id: str
    size: int  # uncompressed (tar) bytes
    files: dict[str, bytes]  # the contents of the files asked for


def scan_layer(reader: oci.IndependentRegistryClient, repository: str, digest: str, wanted: set[str]) -> LayerScan:
    """Stream a layer from the registry: gunzip it, hash the tar, and pick out `wanted` files on the way."""
    inflate = zlib.decompressobj(wbits=31)
    tar_hash = hashlib.sha256()
    size = 0

    def tar_bytes() -> Iterator[bytes]:
        nonlocal size
        for chunk in reader.iter_blob(repository, digest):
            data = inflate.decompress(chunk)
            tar_hash.update(data)
            size += len(data)
            yield data
        tail = inflate.flush()
        tar_hash.update(tail)
        size += len(tail)
        yield tail

    chunks = tar_bytes()
    files: dict[str, bytes] = {}
    stream = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[name] = extracted.read()
    for _rest in chunks:  # the tar's end-of-archive padding still counts towards the diff_id
        pass
    return LayerScan("sha256:" + tar_hash.hexdigest(), size, files)


def test_the_fat_image_is_a_real_debian_with_node(
    reader: oci.IndependentRegistryClient, fixture_images: FixtureImages
) -> None:
    fat, node, debian = fixture_images.fat_app, fixture_images.node_base, fixture_images.debian_fat
    manifest, media_type, digest = manifest_json(reader, "shop/api", "1.0-fat")
    assert digest == fat.digest
    assert media_type == oci.MEDIA_DOCKER_MANIFEST
    config = config_json(reader, "shop/api", manifest)
    node_manifest, _, _ = manifest_json(reader, "base/node", "20-bookworm")
    debian_manifest, _, _ = manifest_json(reader, "base/debian", "bookworm")

    # Base detection by layer prefix: the app's layers start with node's, which start with Debian's.
    layer_digests = [layer["digest"] for layer in manifest["layers"]]
    assert layer_digests[:2] == [layer["digest"] for layer in node_manifest["layers"]]
    assert layer_digests[:1] == [layer["digest"] for layer in debian_manifest["layers"]]
    assert len(layer_digests) == 3
    assert not config["config"].get("User")  # root
    assert config["history"][-2]["created_by"] == "COPY . /app # buildkit"

    # Read every layer back: the diff_ids match, the rootfs is Debian's with 150+ packages and node is there.
    scans = [
        scan_layer(reader, "shop/api", layer_digests[0], {"var/lib/dpkg/status", "usr/lib/os-release"}),
        scan_layer(reader, "shop/api", layer_digests[1], {"usr/local/bin/node"}),
        scan_layer(reader, "shop/api", layer_digests[2], {"app/server.js"}),
    ]
    assert [scan.diff_id for scan in scans] == config["rootfs"]["diff_ids"]
    status = scans[0].files["var/lib/dpkg/status"].decode()
    packages = {line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Package:")}
    assert len(packages) > 150
    assert {"gcc", "python3", "git", "curl", "ca-certificates", "libc6"} <= packages
    assert b"VERSION_CODENAME=bookworm" in scans[0].files["usr/lib/os-release"]  # /etc/os-release links to it
    assert scans[1].files["usr/local/bin/node"][:4] == b"\x7fELF"
    assert b"shop-api" in scans[2].files["app/server.js"]
    uncompressed = sum(scan.size for scan in scans)
    assert uncompressed > 600 * MB
    assert uncompressed == fat.uncompressed_size
    assert sum(layer["size"] for layer in manifest["layers"]) == fat.compressed_size
    assert debian.uncompressed_size == scans[0].size
    assert node.platforms[0].layers == 2


def test_the_slim_app_was_built_by_docker_in_two_stages(
    reader: oci.IndependentRegistryClient, fixture_images: FixtureImages
) -> None:
    slim, busybox = fixture_images.slim_app, fixture_images.busybox
    manifest, media_type, digest = manifest_json(reader, "shop/api", "1.0-slim")
    assert digest == slim.digest
    assert media_type == oci.MEDIA_DOCKER_MANIFEST
    config = config_json(reader, "shop/api", manifest)

    # Built by dockerd: its classic builder writes "#(nop)" history lines and its own version.
    assert config.get("docker_version")
    history = [entry.get("created_by", "") for entry in config["history"]]
    assert any("#(nop) COPY dir:" in line and line.rstrip().endswith("in /app") for line in history)
    assert any("#(nop)  USER 10001" in line for line in history)
    assert config["config"]["User"] == "10001"
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.base.name"] == f"{fixture_images.host}/base/busybox:1.36"
    assert labels["org.opencontainers.image.base.digest"] == busybox.digest

    # Multi-stage: the app layer holds what RUN steps made, yet the final stage ran no RUN, and the build
    # stage's 4 MB scratch file stayed behind.
    assert not any("/bin/sh -c " in line and "#(nop)" not in line for line in history)
    busybox_manifest, _, _ = manifest_json(reader, "base/busybox", "1.36")
    assert manifest["layers"][0]["digest"] == busybox_manifest["layers"][0]["digest"]  # the base, byte for byte
    app = scan_layer(reader, "shop/api", manifest["layers"][1]["digest"], {"app/BUILD-INFO", "app/server.js"})
    assert b"built by stage build" in app.files["app/BUILD-INFO"]
    assert b"multi-stage" in app.files["app/server.js"]
    assert app.size < 100_000

    assert slim.compressed_size < 10 * MB
    assert slim.uncompressed_size < 10 * MB
    assert sum(layer["size"] for layer in manifest["layers"]) == slim.compressed_size


def test_the_private_copy_needs_credentials(registry: Registry, fixture_images: FixtureImages) -> None:
    private = fixture_images.private_slim
    assert private.ref == f"{registry.host}/private/api:1.0-slim"
    assert private.digest == fixture_images.slim_app.digest
    anonymous = dataclasses.replace(registry.endpoint, username=None, password=None)
    with oci.IndependentRegistryClient(anonymous) as client:
        with pytest.raises(oci.RegistryError, match="401"):
            client.manifest("private/api", "1.0-slim")
        assert client.manifest("shop/api", "1.0-slim")[2] == private.digest  # shop/ is public


def test_the_multi_arch_index_has_both_platforms(
    reader: oci.IndependentRegistryClient, fixture_images: FixtureImages
) -> None:
    index, media_type, digest = manifest_json(reader, "shop/multi", "1.0")
    assert digest == fixture_images.multiarch.digest
    assert media_type == oci.MEDIA_OCI_INDEX
    platforms = {
        "/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")))): m
        for m in index["manifests"]
    }
    assert set(platforms) == {"linux/amd64", "linux/arm64/v8"}
    sizes = {}
    for name, descriptor in platforms.items():
        manifest, _, child_digest = manifest_json(reader, "shop/multi", descriptor["digest"])
        assert child_digest == descriptor["digest"]
        config = config_json(reader, "shop/multi", manifest)
        assert config["architecture"] == descriptor["platform"]["architecture"]
        sizes[name] = sum(layer["size"] for layer in manifest["layers"])
        assert sizes[name] == fixture_images.multiarch.platform(name).compressed_size
    assert sizes["linux/amd64"] > 2 * sizes["linux/arm64/v8"]  # a test can tell which platform it measured

    arm_only, _, _ = manifest_json(reader, "shop/arm-only", "1.0")
    assert [m["platform"]["architecture"] for m in arm_only["manifests"]] == ["arm64"]
    assert arm_only["manifests"][0]["digest"] == platforms["linux/arm64/v8"]["digest"]


def test_the_annotated_images_name_their_base(
    reader: oci.IndependentRegistryClient, fixture_images: FixtureImages
) -> None:
    distroless = fixture_images.distroless
    expected = {
        "org.opencontainers.image.base.name": f"{fixture_images.host}/base/distroless:12",
        "org.opencontainers.image.base.digest": distroless.digest,
    }
    manifest, media_type, _ = manifest_json(reader, "shop/annotated", "1.0")
    assert media_type == oci.MEDIA_OCI_MANIFEST
    assert manifest["annotations"] == expected
    distroless_manifest, _, distroless_digest = manifest_json(reader, "base/distroless", "12")
    assert distroless_digest == distroless.digest
    assert manifest["layers"][0] == distroless_manifest["layers"][0]
    assert config_json(reader, "shop/annotated", manifest)["config"]["User"] == "65532"

    index, media_type, _ = manifest_json(reader, "shop/annotated-index", "1.0")
    assert media_type == oci.MEDIA_OCI_INDEX
    assert index["annotations"] == expected
    child, _, _ = manifest_json(reader, "shop/annotated-index", index["manifests"][0]["digest"])
    assert "annotations" not in child  # only the index says it


def test_the_distroless_and_busybox_bases(reader: oci.IndependentRegistryClient, fixture_images: FixtureImages) -> None:
    manifest, _, _ = manifest_json(reader, "base/distroless", "12")
    wanted = {"etc/os-release", "etc/passwd", "var/lib/dpkg/status.d/base-files", "bin/sh"}
    scan = scan_layer(reader, "base/distroless", manifest["layers"][0]["digest"], wanted)
    assert b'PRETTY_NAME="Distroless"' in scan.files["etc/os-release"]
    assert b"nonroot:x:65532:65532" in scan.files["etc/passwd"]
    assert b"Package: base-files" in scan.files["var/lib/dpkg/status.d/base-files"]
    assert "bin/sh" not in scan.files

    manifest, _, _ = manifest_json(reader, "base/busybox", "1.36")
    scan = scan_layer(reader, "base/busybox", manifest["layers"][0]["digest"], {"etc/os-release", "etc/passwd"})
    assert b"ID=busybox" in scan.files["etc/os-release"]
    assert b"app:x:10001:10001" in scan.files["etc/passwd"]
    assert fixture_images.busybox.compressed_size < 3 * MB


def test_the_garbled_and_many_layer_images(
    reader: oci.IndependentRegistryClient, fixture_images: FixtureImages
) -> None:
    manifest, _, _ = manifest_json(reader, "shop/garbled", "1.0")
    with pytest.raises(json.JSONDecodeError):
        config_json(reader, "shop/garbled", manifest)
    manifest, _, _ = manifest_json(reader, "shop/many-layers", "1.0")
    assert len(manifest["layers"]) == 40
    assert len({layer["digest"] for layer in manifest["layers"]}) == 40


def test_publishing_again_uploads_nothing_and_gives_the_same_images(
    registry: Registry, fixture_images: FixtureImages
) -> None:
    mark = registry.mark()
    again = publish_fixture_images(registry.endpoint, None)  # warm: no Docker needed
    assert again == fixture_images
    # Everything is there: one HEAD per tag answered 200, and not one GET, POST, PUT or PATCH (nothing uploaded).
    # The request count says it; a wall-clock limit would only measure how busy the machine is.
    requests = [r for r in registry.requests(since=mark) if r.path.startswith("/v2/") and r.path != "/v2/"]
    assert {r.method for r in requests} == {"HEAD"}
    assert len([r for r in requests if r.status == 200]) == len(fixture_images.all())


def test_one_off_images_are_cheap(registry: Registry, fixture_images: FixtureImages) -> None:
    endpoint = registry.endpoint
    started = time.monotonic()
    pushed = [push_image(endpoint, "scale/one-off", f"v{n}", [{"/app/id": str(n).encode()}]) for n in range(20)]
    per_image = (time.monotonic() - started) / 20
    assert len({image.digest for image in pushed}) == 20
    assert per_image < 0.25  # ~40 ms each here with token auth; the registry's own work dominates

    on_busybox = push_image(
        endpoint,
        "scale/on-busybox",
        "1",
        [{"/app/x": b"x"}],
        base=fixture_images.busybox,
        user="10001",
        base_annotation=fixture_images.busybox,
    )
    with oci.IndependentRegistryClient(endpoint) as client:
        manifest = json.loads(client.manifest("scale/on-busybox", "1")[0])
    assert (
        manifest["layers"][0]["digest"]
        == json.loads(fixture_images.busybox.artifact.manifest.read())["layers"][0]["digest"]
    )
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == fixture_images.busybox.digest
    assert on_busybox.platforms[0].layers == 2
