"""Two builds of one app, as a pipeline makes them: the second adds a ``RUN apt-get install`` layer and a package.
Saved together in one ``docker save`` archive, for ``diff --input`` and ``check --input --baseline``."""

from __future__ import annotations

from pathlib import Path

from archive.archives import KIB, docker_save_all, dpkg_status, noise
from typer.testing import CliRunner

from slimguard.cli.main import app
from slimguard_testbed.oci import Image, build_image
from slimguard_testbed.oci.artifacts import History
from slimguard_testbed.oci.blobs import layer_from_files

OLD = "registry.example.com/shop/app:1.0"
NEW = "registry.example.com/shop/app:1.1"
INSTALL = "RUN /bin/sh -c apt-get install -y gcc-12 # buildkit"


def growth_policy(rules: str) -> str:
    """The pipeline's policy file: an Enforce policy on the app's repository with these rules (YAML lines)."""
    indented = "".join(f"    {line}\n" for line in rules.splitlines())
    return (
        "apiVersion: slimguard.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: no-bloat}\nspec:\n"
        '  mode: Enforce\n  match: {images: ["registry.example.com/shop/*"]}\n  rules:\n' + indented
    )


def build(*, with_compiler: bool) -> Image:
    """The app as its Dockerfile builds it; the second build adds a RUN apt-get install layer (and a package)."""
    base = layer_from_files(
        {"/bin/sh": (noise("sh", 20 * KIB), 0o755), "/var/lib/dpkg/status": dpkg_status("base-files", "libc6")},
        created_by="ADD rootfs.tar.xz / # buildkit",
    )
    app_layer = layer_from_files({"/app/server": (noise("app", 64 * KIB), 0o755)}, created_by="COPY . /app # buildkit")
    layers = [base]
    if with_compiler:
        layers.append(
            layer_from_files(
                {
                    "/usr/bin/gcc-12": (noise("gcc", 128 * KIB), 0o755),
                    "/var/lib/dpkg/status": dpkg_status("base-files", "libc6", "gcc-12"),
                },
                created_by=INSTALL,
            )
        )
    layers.append(app_layer)
    return build_image(layers, history=[History(layer.created_by) for layer in layers], user="10001")


def two_builds(tmp_path: Path) -> str:
    return str(
        docker_save_all(tmp_path / "builds.tar", {OLD: build(with_compiler=False), NEW: build(with_compiler=True)})
    )


def run(*argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(argv))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr.strip()
