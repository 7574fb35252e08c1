"""The other shop images: multi-arch, arm64-only, annotated, garbled and many-layered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slimguard_testbed import oci
from slimguard_testbed.images.recipe_cache import _pseudo_random
from slimguard_testbed.oci import Image, Index, Platform

if TYPE_CHECKING:
    pass


# -- the other shop images -------------------------------------------------------------------------------


def build_multiarch(busybox: Image) -> Index:
    """linux/amd64 (~3 MB: the busybox base + 2 MiB app) and linux/arm64 (~1.3 MB: 1 MiB + 256 KiB)."""
    amd64_app = oci.layer_from_files(
        {"/app/server": (_pseudo_random("multi-amd64", 2 << 20), 0o755)},
        created_by="COPY server /app/server # buildkit",
    )
    amd64 = oci.build_image([amd64_app], base=busybox, cmd=["/app/server"])
    arm64_base = oci.layer_from_files(
        {
            "/bin/busybox": (_pseudo_random("busybox-arm64", 1 << 20), 0o755),
            "/bin/sh": oci.Symlink("busybox"),
            "/etc/os-release": b"ID=busybox\nVERSION_ID=1.36.1\n",
        },
        created_by="ADD busybox-rootfs-arm64.tar / # busybox-static",
    )
    arm64_app = oci.layer_from_files(
        {"/app/server": (_pseudo_random("multi-arm64", 256 << 10), 0o755)},
        created_by="COPY server /app/server # buildkit",
    )
    arm64 = oci.build_image(
        [arm64_base, arm64_app],
        platform=Platform("linux", "arm64", "v8"),
        env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        cmd=["/app/server"],
    )
    return oci.build_index([amd64, arm64])


def build_arm64_only(multiarch: Index) -> Index:
    return oci.build_index([multiarch.image_for("linux/arm64")])


def build_annotated(distroless: Image) -> Image:
    """The distroless layers plus an app; the base annotations are added when pushing (they name the host)."""
    app = oci.layer_from_files(
        {
            "/app/server": (_pseudo_random("annotated-server", 512 << 10), 0o755),
            "/app/config.json": b'{"listen": ":8080"}\n',
        },
        created_by="COPY server config.json /app/ # buildkit",
    )
    return oci.build_image(
        [app], base=distroless, entrypoint=["/app/server"], labels={"org.opencontainers.image.title": "annotated"}
    )


def build_garbled() -> Image:
    """A manifest whose config blob exists and matches its digest but is not JSON (the registry allows it)."""
    layer = oci.layer_from_files({"/garbage.txt": b"a layer under a config that is not JSON\n"})
    config = oci.Blob.of(b'{"architecture": "amd64", "os": "linux", "config": {"User": "10001"')  # cut short
    return oci.image_from_parts(config, [layer])


def build_many_layers(count: int = 40) -> Image:
    layers = [
        oci.layer_from_files(
            {f"/data/layer-{n:02d}.txt": f"layer {n}\n".encode() * 64},
            created_by=f"COPY layer-{n:02d}.txt /data/ # buildkit",
        )
        for n in range(count)
    ]
    return oci.build_image(layers, cmd=["/bin/true"])
