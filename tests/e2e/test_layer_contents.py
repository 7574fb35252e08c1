"""slimguard's layer-content numbers are the anchors' numbers, on the same images, from the real registry:
package counts equal syft's, efficiency and wasted bytes equal dive's, and hostile layers are refused with
the reason they deserve.

Contents are what slimguard's inspector learns, as the controller runs it: the guarded registry client
streams every layer from the test-bed registry into the walker (slimguard.layers), and the analysis
(slimguard.core.facts.content_analysis) sums them up. dive and syft read the same images: dive a `docker save`
archive of the same layer blobs, syft the registry itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from slimguard.core.errors import InspectionError
from slimguard.core.facts.content import ContentFacts, LayerContent
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.platform import Platform
from slimguard.layers.walker import LayerLimits, walk_layer
from slimguard.registry.client import RegistryClient
from slimguard.registry.guard import AddressPolicy, GuardedNetworkBackend
from slimguard.registry.inspector import ImageInspector
from slimguard.registry.settings import RegistrySettings
from slimguard_testbed import Registry
from slimguard_testbed.anchors import dive_analyse, syft_catalogue
from slimguard_testbed.images import FixtureImage, FixtureImages
from slimguard_testbed.images.content import HostileImages, archive_of
from slimguard_testbed.oci import IndependentRegistryClient
from slimguard_testbed.operator_runner import LoopbackOnlyBackend

pytestmark = pytest.mark.timeout(900)
AMD64 = Platform.parse("linux/amd64")


@pytest.fixture
async def inspector(registry: Registry) -> AsyncIterator[ImageInspector]:
    """slimguard's inspector as the controller builds it: the guarded client, layers read (read_layers)."""
    settings = RegistrySettings(address_policy=AddressPolicy(allow_loopback=True), ca_files=(str(registry.ca_file),))
    backend = GuardedNetworkBackend(settings.address_policy, inner=LoopbackOnlyBackend())
    inspector = ImageInspector(RegistryClient(settings, backend=backend))
    yield inspector
    await inspector.client.aclose()


async def content_of(inspector: ImageInspector, image: FixtureImage) -> ContentFacts:
    """What the controller learns of an image's contents: every layer streamed from the registry and walked."""
    facts = await inspector.inspect(image.ref, FactsNeeds(frozenset([AMD64]), content=True))
    (platform,) = facts.platforms
    assert platform.content is not None
    return platform.content


def _walk(registry: Registry, image: FixtureImage, digest: str, limits: LayerLimits | None = None) -> LayerContent:
    """One layer through the walker alone, as the registry serves it."""
    with IndependentRegistryClient(registry.endpoint) as client:
        chunks: Iterator[bytes] = client.iter_blob(image.repository, digest)
        return walk_layer(chunks, digest=digest, limits=limits)


# -- syft: package counts ----------------------------------------------------------------------------------


async def test_the_fat_debian_images_package_count_is_syfts(
    syft: Path, inspector: ImageInspector, open_registry: Registry, fixture_images: FixtureImages
) -> None:
    fat = fixture_images.debian_fat
    ours = (await content_of(inspector, fat)).packages
    theirs = syft_catalogue(f"registry:{open_registry.host}/{fat.repository}:{fat.tag}", ca_file=open_registry.ca_file)

    assert ours.count == theirs.os_package_count
    assert set(ours.names) == theirs.names("deb")
    print(f"fat Debian image: slimguard {ours.count} packages, syft {theirs.os_package_count} (deb)")


async def test_the_distroless_base_package_count_is_syfts(
    syft: Path, inspector: ImageInspector, open_registry: Registry, fixture_images: FixtureImages
) -> None:
    """dpkg facts in var/lib/dpkg/status.d/, one file per package, as gcr.io/distroless ships them."""
    distroless = fixture_images.distroless
    ours = (await content_of(inspector, distroless)).packages
    theirs = syft_catalogue(
        f"registry:{open_registry.host}/{distroless.repository}:{distroless.tag}", ca_file=open_registry.ca_file
    )

    assert ours.count == theirs.os_package_count == 4
    assert set(ours.names) == theirs.names("deb")


# -- dive: efficiency and wasted bytes -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wasted", "slim_app", "debian_fat"])
async def test_efficiency_and_wasted_bytes_are_dives(
    name: str, dive: Path, inspector: ImageInspector, fixture_images: FixtureImages, wasted_image: FixtureImage
) -> None:
    """The wasted-bytes image (a 50 MiB file added then deleted, a file changed twice, a directory deleted),
    the slim app as the real Docker engine built it (multi-stage), and the one-layer fat image."""
    image = wasted_image if name == "wasted" else getattr(fixture_images, name)
    ours = await content_of(inspector, image)
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
    # A cap of 1 GiB instead of the default 8 GiB: the same check, an eighth of the inflating. The controller
    # meets the bomb with its defaults in test_content_controller.
    with pytest.raises(InspectionError) as refused:
        _walk(registry, image, digest, LayerLimits(max_uncompressed_bytes=2**30))
    assert refused.value.reason == reason
    assert digest in str(refused.value)
