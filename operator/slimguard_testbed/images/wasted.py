"""The "wasted bytes" image: what a Dockerfile that cleans up in a later RUN leaves behind.

On the busybox base, six layers as `docker build` writes them:

1. `RUN dd ... of=/data/blob.bin bs=1M count=50` adds a 50 MiB file;
2. `RUN rm /data/blob.bin` deletes it (a whiteout, `data/.wh.blob.bin`): the 50 MiB are still shipped;
3. `COPY app.conf /etc/app.conf` adds a 256 KiB file and 4. `RUN sed -i ... /etc/app.conf` rewrites it;
5. `RUN pip download -d /var/cache/build ...` adds a directory of 3.5 MiB and
6. `RUN rm -rf /var/cache/build` deletes it (a directory whiteout, `var/cache/.wh.build`).

dive counts as wasted every path seen in two or more layers: `data/blob.bin` (50 MiB + its 0-byte whiteout)
and `etc/app.conf` (2 x 256 KiB), 50.5 MiB in all. The deleted directory is seen once as a directory whiteout
(sized by what it hides) and its files once each, so it weighs on the efficiency but is not "wasted": dive's
quirk, which slimguard has to reproduce to give the same numbers. Content is pseudo-random (incompressible),
so the layer sizes survive gzip and the digests are the same on every machine.
"""

from __future__ import annotations

from slimguard_testbed import oci
from slimguard_testbed.images.recipe_cache import _pseudo_random
from slimguard_testbed.oci import History, Image

MIB = 1 << 20
BLOB_BYTES = 50 * MIB
CONF_BYTES = 256 << 10
BUILD_CACHE_FILES = {"a.whl": 1 * MIB, "b.whl": 2 * MIB, "deep/c.whl": 512 << 10}
# What dive reports for this image, by its definitions (checked against dive itself in tests/e2e).
EXPECTED_WASTED_BYTES = BLOB_BYTES + 2 * CONF_BYTES
EXPECTED_INEFFICIENT_PATHS = {"/data/blob.bin": (2, BLOB_BYTES), "/etc/app.conf": (2, 2 * CONF_BYTES)}

RECIPE = {
    "blob": BLOB_BYTES,
    "conf": CONF_BYTES,
    "build_cache": BUILD_CACHE_FILES,
    "layers": 6,
}


def build_wasted_bytes(busybox: Image) -> Image:
    steps: list[tuple[str, dict[str, oci.FileSpec]]] = [
        (
            "RUN /bin/sh -c dd if=/dev/urandom of=/data/blob.bin bs=1M count=50 # buildkit",
            {"/data/blob.bin": _pseudo_random("wasted-blob", BLOB_BYTES)},
        ),
        ("RUN /bin/sh -c rm /data/blob.bin # buildkit", {"/data/.wh.blob.bin": b""}),
        ("COPY app.conf /etc/app.conf # buildkit", {"/etc/app.conf": _pseudo_random("wasted-conf-1", CONF_BYTES)}),
        (
            "RUN /bin/sh -c sed -i 's/debug/info/' /etc/app.conf # buildkit",
            {"/etc/app.conf": _pseudo_random("wasted-conf-2", CONF_BYTES)},
        ),
        (
            "RUN /bin/sh -c pip download -d /var/cache/build -r requirements.txt # buildkit",
            {
                f"/var/cache/build/{name}": _pseudo_random(f"wasted-cache-{name}", size)
                for name, size in BUILD_CACHE_FILES.items()
            },
        ),
        ("RUN /bin/sh -c rm -rf /var/cache/build # buildkit", {"/var/cache/.wh.build": b""}),
    ]
    layers = [oci.layer_from_files(files, created_by=created_by) for created_by, files in steps]
    return oci.build_image(
        layers,
        base=busybox,
        history=[History(layer.created_by, comment="buildkit.dockerfile.v0") for layer in layers],
        cmd=["sh"],
        docker=True,
    )
