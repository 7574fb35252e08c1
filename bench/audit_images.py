"""The images audit_scale.py audits: two bases and N distinct small apps on them, pushed to the test bed's registry."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from slimguard_testbed import Registry, oci
from slimguard_testbed.images import FixtureImage, busybox_files, push_image

KIB, MIB = 1024, 1024 * 1024
# The fat base: two incompressible layers (their sizes survive gzip), 23 MiB in all; the policy allows 24 MiB,
# so an image on it is over the limit once its own layers pass ~1 MiB, and always on a denied base.
FAT_LAYERS = (("rootfs", 20 * MIB), ("runtime", 3 * MIB))
# One image in ten from scratch, four on the fat base, five on busybox.
FAMILIES = ("fat", "fat", "fat", "fat", "busybox", "busybox", "busybox", "busybox", "busybox", "scratch")
APP_LAYER_RANGE = (4 * KIB, 4 * MIB)  # log-uniform: many small apps, a few large ones


def incompressible(seed: str, size: int) -> bytes:
    """Reproducible bytes that gzip cannot shrink, so an image's size is what the recipe says."""
    return hashlib.shake_256(seed.encode()).digest(size)


@dataclass(frozen=True)
class BenchImage:
    image: FixtureImage
    family: str  # fat, busybox or scratch


def push_images(registry: Registry, count: int) -> tuple[FixtureImage, FixtureImage, list[BenchImage]]:
    """The two bases, then `count` distinct app images on them (or on nothing)."""
    endpoint = registry.endpoint
    fat = push_image(
        endpoint,
        "base/fat-runtime",
        "1.0",
        [
            oci.layer_from_files(
                {
                    "/etc/os-release": b'PRETTY_NAME="Fat runtime (slimguard bench)"\nID=debian\n',
                    f"/usr/lib/fat/{name}.bin": incompressible(f"fat-{name}", size),
                },
                created_by=f"ADD {name}.tar / # bench fat base",
            )
            for name, size in FAT_LAYERS
        ],
        cmd=["bash"],
    )
    busybox = push_image(
        endpoint,
        "base/busybox",
        "1.36",
        [oci.layer_from_files(busybox_files(), created_by="ADD busybox-rootfs.tar / # busybox-static")],
        cmd=["sh"],
    )
    low, high = (math.log(bound) for bound in APP_LAYER_RANGE)
    pushed: list[BenchImage] = []
    for n in range(count):
        family = FAMILIES[n % len(FAMILIES)]
        size = int(math.exp(random.Random(f"bench-app-{n}").uniform(low, high)))
        files: dict[str, oci.FileSpec] = {f"/app/app-{n:03d}": (incompressible(f"app-{n}", size), 0o755)}
        image = push_image(
            endpoint,
            f"shop/bench-{n:03d}",
            "1.0",
            [files],
            base={"fat": fat, "busybox": busybox, "scratch": None}[family],
            user=None if family == "fat" else "10001",
            cmd=[f"/app/app-{n:03d}"],
        )
        pushed.append(BenchImage(image, family))
    return fat, busybox, pushed
