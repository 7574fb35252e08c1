"""The fat Debian family: a real debootstrap root filesystem, node on top, and the fat shop app."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from slimguard_testbed import oci
from slimguard_testbed.cache import require_binary
from slimguard_testbed.images.common import (
    DEBIAN_PACKAGES,
    DEBIAN_SUITE,
    DEFAULT_DEBIAN_MIRROR,
    NODE_BINARY,
    PATH_ENV,
    SLIM_APP_DIR,
)
from slimguard_testbed.oci import FileSpec, History, Image
from slimguard_testbed.process import TestbedError

if TYPE_CHECKING:
    pass


# -- the fat Debian family -----------------------------------------------------------------------------


def debian_mirror() -> str:
    """$SLIMGUARD_DEBIAN_MIRROR, else the first URI of the machine's own Debian sources."""
    if os.environ.get("SLIMGUARD_DEBIAN_MIRROR"):
        return os.environ["SLIMGUARD_DEBIAN_MIRROR"]
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                uris = line.split(":", 1)[1].split()
                if uris:
                    return uris[0]
    return DEFAULT_DEBIAN_MIRROR


def _run(command: Sequence[str], *, log: Path, what: str) -> None:
    with log.open("wb") as out:
        result = subprocess.run(list(command), stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise TestbedError(f"{what} failed ({result.returncode}); see {log}:\n{tail}")


def _tidy_rootfs(rootfs: Path) -> None:
    """Drop what names the build host. Everything else stays as debootstrap left it, apt's downloaded .debs
    and package lists included (~170 MB): the fat image of a Dockerfile that never ran `apt-get clean`."""
    for name in ("etc/hostname", "etc/resolv.conf"):
        path = rootfs / name
        if path.exists() or path.is_symlink():
            path.unlink()
            path.write_text("")  # the runtime bind-mounts its own


def build_debian(work: Path) -> Image:
    """`debootstrap` a fat bookworm, tar and gzip it as one layer (~1.5 min, done once per machine)."""
    if os.geteuid() != 0:
        raise TestbedError("building the Debian fixture needs root (debootstrap chroots and sets owners)")
    debootstrap = require_binary("debootstrap", hint="apt-get install debootstrap")
    rootfs = work / "rootfs"
    _run(
        [
            str(debootstrap),
            "--variant=minbase",
            f"--include={','.join(DEBIAN_PACKAGES)}",
            "--arch=amd64",
            DEBIAN_SUITE,
            str(rootfs),
            debian_mirror(),
        ],
        log=work / "debootstrap.log",
        what="debootstrap",
    )
    _tidy_rootfs(rootfs)
    layer = oci.layer_from_directory(rootfs, work / "rootfs.tar.gz")
    shutil.rmtree(rootfs, ignore_errors=True)
    return oci.build_image(
        [layer],
        history=[
            History(
                f"# debian.sh --arch 'amd64' out/ '{DEBIAN_SUITE}' '@{oci.SOURCE_DATE_EPOCH}'",
                comment="debuerreotype 0.15",
            ),
            History('CMD ["bash"]', empty_layer=True),
        ],
        env=[PATH_ENV],
        cmd=["bash"],
        docker=True,
    )


def _node_version() -> str:
    result = subprocess.run([str(NODE_BINARY), "--version"], capture_output=True, text=True, check=True)
    return result.stdout.strip().lstrip("v")


def build_node(work: Path, debian: Image) -> Image:
    """node:20-bookworm played by the Debian image plus the machine's own node binary."""
    version = _node_version()
    stage = work / "node-root"
    (stage / "usr" / "local" / "bin").mkdir(parents=True)
    for directory in (stage / "usr", stage / "usr" / "local", stage / "usr" / "local" / "bin"):
        directory.chmod(0o755)
    shutil.copyfile(NODE_BINARY, stage / "usr" / "local" / "bin" / "node")
    (stage / "usr" / "local" / "bin" / "node").chmod(0o755)
    layer = oci.layer_from_directory(stage, work / "node.tar.gz", empty_dirs=())
    return oci.build_image(
        [layer],
        base=debian,
        history=[
            History(f"ENV NODE_VERSION={version}", empty_layer=True, comment="buildkit.dockerfile.v0"),
            History("COPY /usr/bin/node /usr/local/bin/node # buildkit", comment="buildkit.dockerfile.v0"),
            History('CMD ["node"]', empty_layer=True, comment="buildkit.dockerfile.v0"),
        ],
        env=[f"NODE_VERSION={version}"],
        cmd=["node"],
        docker=True,
    )


def _shop_api_files(flavour: str) -> dict[str, FileSpec]:
    server = (SLIM_APP_DIR / "server.js").read_bytes().replace(b"__BUILD__", flavour.encode())
    return {"/app/server.js": server, "/app/package.json": (SLIM_APP_DIR / "package.json").read_bytes()}


def build_fat_app(node: Image) -> Image:
    """shop/api:1.0-fat: exactly node_base's layers (same blobs) plus the app; no USER, so root."""
    app = oci.layer_from_files(_shop_api_files("fat"), created_by="COPY . /app # buildkit")
    return oci.build_image(
        [app],
        base=node,
        history=[
            History("WORKDIR /app", empty_layer=True, comment="buildkit.dockerfile.v0"),
            History("COPY . /app # buildkit", comment="buildkit.dockerfile.v0"),
            History('CMD ["node", "/app/server.js"]', empty_layer=True, comment="buildkit.dockerfile.v0"),
        ],
        working_dir="/app",
        cmd=["node", "/app/server.js"],
        labels={"org.opencontainers.image.title": "shop-api", "org.opencontainers.image.version": "1.0-fat"},
        docker=True,
    )
