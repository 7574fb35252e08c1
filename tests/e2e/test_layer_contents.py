"""slimguard's layer-content numbers are the anchors' numbers, on the same images, from the real registry:
package counts equal syft's, efficiency and wasted bytes equal dive's, and hostile layers are refused with
the reason they deserve.

The layers are streamed from the test-bed registry and read by slimguard's walker (slimguard.layers) and
analysis (slimguard.core.content_analysis); dive and syft read the same images (dive a `docker save` archive
of the same layer blobs, syft the registry itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slimguard.core.content import ContentFacts, LayerContent
from slimguard.core.content_analysis import analyse_content
from slimguard.core.errors import InspectionError
from slimguard.core.facts import Layer
from slimguard.layers.walker import walk_layer
from slimguard_testbed import Registry
from slimguard_testbed.anchors import dive_analyse, syft_catalogue
from slimguard_testbed.images import FixtureImage, FixtureImages
from slimguard_testbed.images.content import HostileImages, archive_of
from slimguard_testbed.oci import Image, IndependentRegistryClient

pytestmark = pytest.mark.timeout(900)


def _layers(image: FixtureImage) -> list[Layer]:
    artifact = image.artifact
    assert isinstance(artifact, Image)
    return [
        Layer(digest=layer.blob.digest, size=layer.blob.size, media_type=artifact.media_type)
        for layer in artifact.layers
    ]


def _walk(registry: Registry, image: FixtureImage, digest: str) -> LayerContent:
    with IndependentRegistryClient(registry.endpoint) as client:
        chunks: Iterator[bytes] = client.iter_blob(image.repository, digest)
        return walk_layer(chunks, digest=digest)


def content_of(registry: Registry, image: FixtureImage) -> ContentFacts:
    layers = _layers(image)
    return analyse_content(layers, [_walk(registry, image, layer.digest) for layer in layers])


# -- syft: package counts ----------------------------------------------------------------------------------


def test_the_fat_debian_images_package_count_is_syfts(
    syft: Path, registry: Registry, open_registry: Registry, fixture_images: FixtureImages
) -> None:
    fat = fixture_images.debian_fat
    ours = content_of(registry, fat).packages
    theirs = syft_catalogue(f"registry:{open_registry.host}/{fat.repository}:{fat.tag}", ca_file=open_registry.ca_file)

    assert ours.count == theirs.os_package_count
    assert set(ours.names) == theirs.names("deb")
    print(f"fat Debian image: slimguard {ours.count} packages, syft {theirs.os_package_count} (deb)")


def test_the_distroless_base_package_count_is_syfts(
    syft: Path, registry: Registry, open_registry: Registry, fixture_images: FixtureImages
) -> None:
    """dpkg facts in var/lib/dpkg/status.d/, one file per package, as gcr.io/distroless ships them."""
    distroless = fixture_images.distroless
    ours = content_of(registry, distroless).packages
    theirs = syft_catalogue(
        f"registry:{open_registry.host}/{distroless.repository}:{distroless.tag}", ca_file=open_registry.ca_file
    )

    assert ours.count == theirs.os_package_count == 4
    assert set(ours.names) == theirs.names("deb")


# -- dive: efficiency and wasted bytes -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wasted", "slim_app", "debian_fat"])
def test_efficiency_and_wasted_bytes_are_dives(
    name: str, dive: Path, registry: Registry, fixture_images: FixtureImages, wasted_image: FixtureImage
) -> None:
    """The wasted-bytes image (a 50 MiB file added then deleted, a file changed twice, a directory deleted),
    the slim app as the real Docker engine built it (multi-stage), and the one-layer fat image."""
    image = wasted_image if name == "wasted" else getattr(fixture_images, name)
    ours = content_of(registry, image)
    theirs = dive_analyse(archive_of(image))

    assert ours.wasted_bytes == theirs.wasted_bytes
    # Both divide the same two integer sums in IEEE double precision: equal to the last bit, no rounding.
    assert ours.efficiency == theirs.efficiency
    print(f"{image.ref}: efficiency {ours.efficiency!r} (dive {theirs.efficiency!r}), wasted {ours.wasted_bytes}")


# -- hostile layers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("gzip_bomb", "LayerTooLarge"),
        ("escaping", "UnsafeLayerPath"),
        ("absolute", "UnsafeLayerPath"),
        ("truncated", "GarbledLayer"),
        ("swapped", "LayerDigestMismatch"),
    ],
)
def test_a_hostile_layer_is_refused_with_its_reason(
    name: str, reason: str, registry: Registry, hostile_images: HostileImages
) -> None:
    image = hostile_images.all()[name]
    digest = HostileImages.hostile_layer(image)
    with pytest.raises(InspectionError) as refused:
        _walk(registry, image, digest)
    assert refused.value.reason == reason
    assert digest in str(refused.value)
