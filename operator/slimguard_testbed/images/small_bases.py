"""Small bases made from files in memory: a busybox (alpine-like) base and a distroless-like one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slimguard_testbed import oci
from slimguard_testbed.images.common import BUSYBOX_APPLETS, BUSYBOX_BINARY
from slimguard_testbed.oci import Directory, FileSpec, History, Image

if TYPE_CHECKING:
    pass


# -- small bases ---------------------------------------------------------------------------------------


def busybox_files() -> dict[str, FileSpec]:
    """An alpine-like rootfs: static busybox and its applet links, os-release, passwd with `app` (10001)."""
    files: dict[str, FileSpec] = {
        "/bin/busybox": (BUSYBOX_BINARY.read_bytes(), 0o755),
        "/etc/os-release": b'NAME="BusyBox"\nID=busybox\nVERSION_ID=1.36.1\nPRETTY_NAME="BusyBox 1.36 (slimguard)"\n',
        "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        b"app:x:10001:10001:app:/home/app:/bin/sh\n",
        "/etc/group": b"root:x:0:\nnogroup:x:65534:\napp:x:10001:\n",
        "/tmp": Directory(0o1777),
        "/root": Directory(0o700),
        "/home/app": Directory(0o755),
        "/usr/bin": Directory(),
        "/var": Directory(),
    }
    for applet in BUSYBOX_APPLETS:
        files[f"/bin/{applet}"] = oci.Symlink("busybox")
    return files


def build_busybox() -> Image:
    layer = oci.layer_from_files(busybox_files(), created_by="ADD busybox-rootfs.tar / # busybox-static")
    return oci.build_image(
        [layer],
        history=[History(layer.created_by), History('CMD ["sh"]', empty_layer=True)],
        env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        cmd=["sh"],
    )


def _dpkg_status(package: str, version: str, architecture: str, description: str) -> bytes:
    return (
        f"Package: {package}\nStatus: install ok installed\nPriority: required\nSection: misc\n"
        f"Maintainer: Debian Maintainers <debian@example.invalid>\nArchitecture: {architecture}\n"
        f"Version: {version}\nDescription: {description}\n"
    ).encode()


def distroless_files() -> dict[str, FileSpec]:
    """No shell, no package manager: dpkg facts in status.d, the way gcr.io/distroless ships them."""
    return {
        "/etc/os-release": b'PRETTY_NAME="Distroless"\nNAME="Debian GNU/Linux"\nID="debian"\n'
        b'VERSION_ID="12"\nVERSION="Debian GNU/Linux 12 (bookworm)"\n'
        b'HOME_URL="https://github.com/GoogleContainerTools/distroless"\n',
        "/etc/passwd": b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
        "/etc/group": b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
        "/etc/nsswitch.conf": b"hosts: files dns\n",
        "/var/lib/dpkg/status.d/base-files": _dpkg_status(
            "base-files", "12.4+deb12u11", "amd64", "Debian base system miscellaneous files"
        ),
        "/var/lib/dpkg/status.d/netbase": _dpkg_status("netbase", "6.4", "all", "Basic TCP/IP networking system"),
        "/var/lib/dpkg/status.d/tzdata": _dpkg_status(
            "tzdata", "2025b-0+deb12u1", "all", "time zone and daylight-saving time data"
        ),
        "/var/lib/dpkg/status.d/media-types": _dpkg_status(
            "media-types", "10.0.0", "all", "List of standard media types and their usual file extension"
        ),
        "/etc/services": b"http\t\t80/tcp\t\twww\nhttps\t\t443/tcp\n",
        "/usr/share/zoneinfo/UTC": b"TZif2\0" + bytes(38),
        "/tmp": Directory(0o1777),
        "/home/nonroot": Directory(0o700),
    }


def build_distroless() -> Image:
    layer = oci.layer_from_files(distroless_files(), created_by="bazel build //base:base_nonroot_amd64_debian12")
    return oci.build_image(
        [layer],
        user="65532",
        env=[
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        ],
        working_dir="/home/nonroot",
    )
