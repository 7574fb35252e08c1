"""The anchors and fixtures of the layer-content checks are what they claim, before slimguard is compared
with them: dive measures the wasted-bytes image as its recipe says, syft reads the fat Debian image the same
from the registry and from a `docker save` archive, and the hostile images are served as hostile as promised.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import zlib
from pathlib import Path

import pytest

from slimguard_testbed import Registry
from slimguard_testbed.anchors import dive_analyse, dive_ci, syft_catalogue
from slimguard_testbed.images import FixtureImage, FixtureImages
from slimguard_testbed.images.content import HostileImages, archive_of
from slimguard_testbed.images.hostile import BOMB_ENTRIES, BOMB_ENTRY_BYTES
from slimguard_testbed.images.wasted import EXPECTED_INEFFICIENT_PATHS, EXPECTED_WASTED_BYTES
from slimguard_testbed.oci import Image, IndependentRegistryClient

pytestmark = pytest.mark.timeout(900)


def _installed_dpkg_packages(image: FixtureImage) -> set[str]:
    """Names in var/lib/dpkg/status with `Status: install ok installed`, read from the layer blobs by
    Python's own tarfile: a third reader, beside syft and slimguard."""
    artifact = image.artifact
    assert isinstance(artifact, Image)
    status = b""
    for layer in artifact.layers:
        with layer.blob.open() as blob, tarfile.open(fileobj=blob, mode="r|gz") as tar:
            for member in tar:
                if member.name.lstrip("./") == "var/lib/dpkg/status" and member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    status = extracted.read()
    names = set()
    for stanza in status.decode().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, flags=re.MULTILINE))
        if fields.get("Status") == "install ok installed":
            names.add(fields["Package"])
    return names


# -- dive -------------------------------------------------------------------------------------------------


def test_dive_finds_the_wasted_bytes_the_recipe_puts_in(dive: Path, wasted_image: FixtureImage) -> None:
    analysis = dive_analyse(archive_of(wasted_image))

    assert analysis.wasted_bytes == EXPECTED_WASTED_BYTES == 50 * 2**20 + 2 * 256 * 2**10
    assert {f.path: (f.count, f.size_bytes) for f in analysis.inefficient_files} == EXPECTED_INEFFICIENT_PATHS
    # One dive layer per image layer, in order, with the instruction that made it.
    assert len(analysis.layers) == wasted_image.platforms[0].layers == 7
    assert analysis.layers[2].command.startswith("RUN /bin/sh -c rm /data/blob.bin")
    # The deleted 3.5 MiB directory is not "wasted" (dive sees its path once) but lowers the efficiency.
    assert 0.15 < analysis.efficiency < 0.16


def test_dive_ci_mode_gives_the_verdicts_its_json_export_implies(dive: Path, wasted_image: FixtureImage) -> None:
    archive = archive_of(wasted_image)
    exact = dive_analyse(archive)

    at_limit = dive_ci(archive, highest_wasted_bytes=exact.wasted_bytes, lowest_efficiency=0.15)
    over_limit = dive_ci(archive, highest_wasted_bytes=exact.wasted_bytes - 1)

    assert at_limit.passed, at_limit.output
    assert not over_limit.passed, over_limit.output
    assert at_limit.wasted_bytes == exact.wasted_bytes
    # CI mode prints the efficiency as a percentage with 4 decimals: the JSON export has the exact float.
    assert at_limit.efficiency_percent == round(exact.efficiency * 100, 4)


def test_dive_finds_no_waste_in_the_single_layer_fat_image(dive: Path, fixture_images: FixtureImages) -> None:
    analysis = dive_analyse(archive_of(fixture_images.debian_fat))

    assert analysis.wasted_bytes == 0
    assert analysis.efficiency == 1.0
    assert analysis.size_bytes > 600 * 2**20  # the ~700 MB debootstrap rootfs, uncompressed


# -- syft -------------------------------------------------------------------------------------------------


def test_syft_counts_the_fat_images_packages_alike_from_the_registry_and_an_archive(
    syft: Path, open_registry: Registry, fixture_images: FixtureImages
) -> None:
    fat = fixture_images.debian_fat
    from_registry = syft_catalogue(
        f"registry:{open_registry.host}/{fat.repository}:{fat.tag}", ca_file=open_registry.ca_file
    )
    from_archive = syft_catalogue(f"docker-archive:{archive_of(fat)}")

    installed = _installed_dpkg_packages(fat)
    assert from_registry.names("deb") == from_archive.names("deb") == installed
    assert 160 <= from_registry.os_package_count == len(installed) <= 190  # debootstrap minbase + build-essential...
    assert {"gcc-12", "make", "build-essential", "git", "curl"} <= from_registry.names("deb")
    assert from_registry.distro == "Debian GNU/Linux 12 (bookworm)"


# -- the hostile images are served as promised --------------------------------------------------------------


def _served(registry: Registry, image: FixtureImage) -> bytes:
    with IndependentRegistryClient(registry.endpoint) as client:
        return client.blob(image.repository, HostileImages.hostile_layer(image))


def _names(gzipped_tar: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(gzipped_tar))) as tar:
        return tar.getnames()


def test_the_gzip_bomb_is_small_and_inflates_to_sixteen_gib(registry: Registry, hostile_images: HostileImages) -> None:
    served = _served(registry, hostile_images.gzip_bomb)
    assert len(served) < 20 * 2**20
    assert hashlib.sha256(served).hexdigest() == HostileImages.hostile_layer(hostile_images.gzip_bomb).split(":")[1]

    inflater = zlib.decompressobj(wbits=31)
    start = inflater.decompress(served, 1 << 20)  # the first MiB only: a tar header declaring 1 GiB of zeros
    first = tarfile.TarInfo.frombuf(start[:512], "utf-8", "surrogateescape")
    assert (first.name, first.size) == ("bomb/zeros-00.bin", BOMB_ENTRY_BYTES)
    assert BOMB_ENTRIES * BOMB_ENTRY_BYTES == 16 * 2**30


def test_the_escaping_layer_names_entries_outside_the_root(registry: Registry, hostile_images: HostileImages) -> None:
    assert any(name.startswith("../") for name in _names(_served(registry, hostile_images.escaping)))
    assert all(name.startswith("/") for name in _names(_served(registry, hostile_images.absolute)))


def test_the_truncated_layer_is_a_gzip_stream_cut_short(registry: Registry, hostile_images: HostileImages) -> None:
    served = _served(registry, hostile_images.truncated)
    assert hashlib.sha256(served).hexdigest() == HostileImages.hostile_layer(hostile_images.truncated).split(":")[1]
    with pytest.raises(EOFError):
        gzip.decompress(served)


def test_the_swapped_layer_is_served_under_a_digest_it_does_not_have(
    registry: Registry, hostile_images: HostileImages
) -> None:
    served = _served(registry, hostile_images.swapped)
    digest = HostileImages.hostile_layer(hostile_images.swapped)
    assert hashlib.sha256(served).hexdigest() != digest.split(":")[1]
    # ...and nothing else tells: it is the advertised length and a sound gzip'd tar.
    assert len(served) == hostile_images.swapped.artifact.layers[-1].blob.size  # type: ignore[union-attr]
    assert "app/seed.txt" in _names(served)


# -- the fleet ------------------------------------------------------------------------------------------------


def test_the_fleet_base_is_the_fat_image_under_another_digest(
    fixture_images: FixtureImages, fleet_base: FixtureImage
) -> None:
    fat, fleet = (image.artifact for image in (fixture_images.debian_fat, fleet_base))
    assert isinstance(fat, Image)
    assert isinstance(fleet, Image)
    assert fleet.config.digest == fat.config.digest  # the same image config: the same diff_ids and history
    assert [layer.blob.digest for layer in fleet.layers] != [layer.blob.digest for layer in fat.layers]
    tar_digest = hashlib.sha256()
    with fleet.layers[0].blob.open() as blob, gzip.open(blob) as tar:  # both gzip members, in turn
        while chunk := tar.read(1 << 20):
            tar_digest.update(chunk)
    assert f"sha256:{tar_digest.hexdigest()}" == fat.layers[0].diff_id


def test_the_fleet_shares_its_base_blobs_without_uploading_them(registry: Registry, fleet_base: FixtureImage) -> None:
    from slimguard_testbed.images.content import base_layer_digests, push_fleet

    mark = registry.mark()
    fleet = push_fleet(registry.endpoint, fleet_base, count=10, repository_prefix="shop/fleet-check")
    requests = registry.requests(since=mark)

    base = set(base_layer_digests(fleet_base))
    base_hex = {digest.split(":")[1] for digest in base}  # the log has the query as sent (%3A-encoded)
    assert all(set(base_layer_digests(image)[: len(base)]) == base for image in fleet)
    mounts = [r for r in requests if r.method == "POST" and any(h in r.query for h in base_hex)]
    assert len(mounts) == 10  # one cross-repository mount each
    assert {r.status for r in mounts} == {201}
    uploads = [r for r in requests if r.method in ("PATCH", "PUT") and r.kind == "blobs"]
    assert all(not any(h in r.query for h in base_hex) for r in uploads)
