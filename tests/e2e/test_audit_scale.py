"""Facts are cached by digest: many workloads on few images cost one inspection per image."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cluster import apply, deployment, image_policy, namespace, wait_for

from slimguard_testbed import ControlPlane, Registry
from slimguard_testbed.operator_runner import InProcessOperator

NS = "audit-scale"


def test_200_deployments_sharing_5_images_cost_one_inspection_per_image(
    control_plane: ControlPlane, operator: InProcessOperator, registry: Registry, scale_images: list[Any]
) -> None:
    mark = registry.mark()
    apply(control_plane, namespace(NS))
    deployments = [deployment(f"app-{n:03d}", NS, scale_images[n % 5].ref) for n in range(200)]
    apply(control_plane, *deployments)
    apply(control_plane, image_policy("scale", {"maxCompressedSize": "200Mi"}, namespaces=[NS]))

    def all_labelled() -> bool:
        output = control_plane.kubectl(
            "get",
            "deployments",
            "-n",
            NS,
            "-o",
            'jsonpath={range .items[*]}{.metadata.labels.slimguard\\.dev/status}{"\\n"}{end}',
        ).stdout.split()
        return len(output) == 200 and set(output) == {"compliant"}

    wait_for("all 200 deployments to carry a verdict", all_labelled, timeout=120)
    requests = [r for r in registry.requests(since=mark) if r.repository and r.repository.startswith("shop/scale-")]
    per_image = Counter((r.repository, r.method, r.kind) for r in requests if r.status < 400)
    for image in scale_images:
        repository = image.repository
        mine = {key: count for key, count in per_image.items() if key[0] == repository}
        # One HEAD to resolve the tag, one GET of the manifest, one GET of the config blob: nothing more.
        assert sum(mine.values()) <= 3, mine
    control_plane.kubectl("delete", "imagepolicy", "scale")
