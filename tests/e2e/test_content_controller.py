"""The controller reading layers, as deployed: hostile layers are error findings naming their reason while the
controller stays up in bounded memory, and 100 images on one fat base cost one read of each base layer.

The hostile-layer test runs `slimguard controller` in its own process (slimguard_testbed.controller_process)
so its memory is the kernel's figure for that process alone (VmHWM, the peak resident set: no sampling can
miss a spike). The bound is generous, 400 MB: a controller that buffered a layer, or kept a million tar
entries, would pass it by gigabytes; the figure is printed for the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cluster import apply, deployment, image_policy, namespace, status_of, violations, wait_for, wait_for_status

from slimguard_testbed import ControlPlane, Registry
from slimguard_testbed.controller_process import ControllerProcess
from slimguard_testbed.images import FixtureImage, FixtureImages
from slimguard_testbed.images.content import HostileImages, base_layer_digests
from slimguard_testbed.operator_runner import InProcessOperator

pytestmark = pytest.mark.timeout(1200)

MEMORY_BOUND = 400 * 10**6
HOSTILE_REASONS = {
    "gzip_bomb": "LayerTooLarge",
    "escaping": "UnsafeLayerPath",
    "absolute": "UnsafeLayerPath",
    "truncated": "GarbledLayer",
    "swapped": "LayerDigestMismatch",
}


@pytest.fixture
def controller_process(
    control_plane: ControlPlane, operator_kubeconfig: str, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    """A controller of its own for one test, stopped after it: a second controller left running would also
    read every layer the next test counts reads of."""
    with ControllerProcess(
        kubeconfig=operator_kubeconfig,
        registry_ca_file=registry.ca_file,
        workdir=tmp_path_factory.mktemp("controller-process"),
    ) as running:
        yield running


def test_hostile_layers_are_error_findings_and_the_controller_stays_up_in_bounded_memory(
    control_plane: ControlPlane,
    controller_process: ControllerProcess,
    hostile_images: HostileImages,
    fixture_images: FixtureImages,
) -> None:
    ns = "hostile-layers"
    images = hostile_images.all()
    apply(
        control_plane,
        namespace(ns),
        *(deployment(name.replace("_", "-"), ns, image.ref) for name, image in images.items()),
    )
    apply(control_plane, image_policy("hostile-layers", {"maxPackages": 100}, namespaces=[ns]))

    for name, reason in HOSTILE_REASONS.items():
        (finding,) = violations(
            wait_for_status(control_plane, "deployment", name.replace("_", "-"), ns, "error", timeout=600)
        )
        # The image could not be inspected: an error of the inspection, which the policy's onUnknown decides.
        assert (finding["rule"], finding["kind"], finding.get("reason")) == ("inspection", "error", reason)
        assert HostileImages.hostile_layer(images[name]) in finding["message"]

    # Still up, and still judging: a sound image after the hostile ones gets its verdict.
    assert controller_process.alive(), controller_process.log()[-3000:]
    apply(control_plane, deployment("sound", ns, fixture_images.distroless.ref))
    wait_for_status(control_plane, "deployment", "sound", ns, "compliant", timeout=120)

    memory = controller_process.memory()
    print(f"controller after the hostile layers: peak RSS {memory.peak_rss_bytes / 1e6:.0f} MB")
    assert memory.peak_rss_bytes < MEMORY_BOUND
    control_plane.kubectl("delete", "imagepolicy", "hostile-layers")


def test_a_hundred_images_on_one_fat_base_read_each_base_layer_once(
    control_plane: ControlPlane,
    operator: InProcessOperator,
    registry: Registry,
    fleet_base: FixtureImage,
    fleet_images: tuple[FixtureImage, ...],
) -> None:
    ns = "fleet"
    base_layers = base_layer_digests(fleet_base)
    apply(
        control_plane,
        namespace(ns),
        *(deployment(f"app-{n:03d}", ns, image.ref) for n, image in enumerate(fleet_images)),
    )
    mark = registry.mark()
    apply(control_plane, image_policy("fleet-packages", {"maxPackages": 100}, namespaces=[ns]))

    def all_judged() -> list[dict[str, str]] | None:
        listed = json.loads(control_plane.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)["items"]
        done = len(listed) == len(fleet_images) and all(status_of(item) == "noncompliant" for item in listed)
        return [dict(item["metadata"].get("annotations") or {}) for item in listed] if done else None

    judged = wait_for("every fleet Deployment to be judged", all_judged, timeout=900, every=2)
    (finding,) = violations(judged[0])
    assert finding["rule"] == "maxPackages"

    requests = registry.requests(since=mark)
    for digest in base_layers:
        reads = [r for r in requests if r.kind == "blobs" and r.path.endswith(f"/blobs/{digest}") and r.method == "GET"]
        assert len(reads) == 1, f"{digest} read {len(reads)} times: {[r.path for r in reads]}"
        assert reads[0].status == 200
    # Each image's own top layer is read once too: 100 in all.
    tops = {base_layer_digests(image)[-1] for image in fleet_images}
    top_reads = [r for r in requests if r.method == "GET" and r.kind == "blobs" and r.path.rsplit("/", 1)[-1] in tops]
    assert len(top_reads) == len(fleet_images)
    control_plane.kubectl("delete", "imagepolicy", "fleet-packages")
