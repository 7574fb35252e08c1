"""Local stand-ins for the bases of slimguard's own Dockerfile, and a package index for its build.

Nothing can be pulled here, so the Dockerfile is built with build args naming stand-ins:
- BUILDER (``debian:12-slim``): a debootstrapped Debian 12 with python3 and python3-venv already installed and
  no apt sources, so the Dockerfile's own ``apt-get update && apt-get install python3 python3-venv`` runs
  unchanged and finds everything installed (built once per machine, ~1.5 min, cached like the fat Debian).
- RUNTIME (``gcr.io/distroless/python3-debian12:nonroot``): the same Debian's python3.11, its standard
  library and shared libraries, and a nonroot user 65532: no shell, no apt, no dpkg, as distroless ships.
- PIP_INDEX_URL: a PEP 503 index on 127.0.0.1 over wheels downloaded once from PyPI (the machine's package
  registry, as debootstrap reads Debian's) for CPython 3.11 on manylinux x86_64; the build runs with host
  networking, so its only network is this loopback index.
"""

from __future__ import annotations

import datetime
import functools
import gzip
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from slimguard_testbed import oci
from slimguard_testbed.cache import cache_dir, file_lock, require_binary
from slimguard_testbed.images.common import DEBIAN_SUITE
from slimguard_testbed.images.debian import _run, _tidy_rootfs, debian_mirror
from slimguard_testbed.images.recipe_cache import cached
from slimguard_testbed.oci import History, Image
from slimguard_testbed.process import TestbedError

if TYPE_CHECKING:
    import docker

BUILDER_TAG = "slimguard-fixtures/python-builder:12"
RUNTIME_TAG = "slimguard-fixtures/distroless-python3:nonroot"
PYTHON_PACKAGES = ("python3", "python3-venv")
_RUNTIME_PATHS = (
    "usr/bin/python3",
    "usr/bin/python3.11",
    "usr/lib/python3.11",
    "usr/lib/x86_64-linux-gnu",
    "usr/lib64",
    "lib",
    "lib64",
    "bin",
    "sbin",
    "etc/ld.so.cache",
)
_WHEEL_PLATFORMS = ("manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 37)))


def _debootstrap_python(work: Path) -> Path:
    if os.geteuid() != 0:
        raise TestbedError("building the Python builder stand-in needs root (debootstrap chroots)")
    debootstrap = require_binary("debootstrap", hint="apt-get install debootstrap")
    rootfs = work / "rootfs"
    _run(
        [
            str(debootstrap),
            "--variant=minbase",
            f"--include={','.join(PYTHON_PACKAGES)}",
            "--arch=amd64",
            DEBIAN_SUITE,
            str(rootfs),
            debian_mirror(),
        ],
        log=work / "debootstrap.log",
        what="debootstrap",
    )
    _tidy_rootfs(rootfs)
    # No sources: `apt-get update` then succeeds offline, and install finds the packages already there.
    for sources in (rootfs / "etc/apt/sources.list", *(rootfs / "etc/apt/sources.list.d").glob("*")):
        sources.unlink(missing_ok=True)
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
    return rootfs


def _runtime_rootfs(rootfs: Path, out: Path) -> None:
    """The distroless-like runtime: python3.11 and what it links, a nonroot user, nothing else."""
    for relative in _RUNTIME_PATHS:
        source = rootfs / relative
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        elif source.exists():
            shutil.copy2(source, target, follow_symlinks=False)
    for shell in ("usr/bin/sh", "usr/bin/dash", "usr/bin/bash"):
        (out / shell).unlink(missing_ok=True)
    etc = out / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
    )
    (etc / "group").write_text("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")
    (etc / "os-release").write_text(
        'PRETTY_NAME="Distroless"\nNAME="Debian GNU/Linux"\nID="debian"\nVERSION_ID="12"\n'
        'HOME_URL="https://github.com/GoogleContainerTools/distroless"\n'
    )
    for directory, mode in (("tmp", 0o1777), ("home/nonroot", 0o700)):
        (out / directory).mkdir(parents=True, exist_ok=True)
        (out / directory).chmod(mode)
        if directory == "home/nonroot":
            os.chown(out / directory, 65532, 65532)


def build_python_bases(work: Path) -> Image:
    """Both stand-ins in one cached artifact: an image whose two layers are the builder and the runtime
    (each imported into the engine as an image of its own)."""
    rootfs = _debootstrap_python(work)
    runtime = work / "runtime"
    runtime.mkdir()
    _runtime_rootfs(rootfs, runtime)
    builder_layer = oci.layer_from_directory(rootfs, work / "builder.tar.gz", created_by="debootstrap python3")
    runtime_layer = oci.layer_from_directory(runtime, work / "runtime.tar.gz", created_by="python3.11 only")
    shutil.rmtree(rootfs, ignore_errors=True)
    shutil.rmtree(runtime, ignore_errors=True)
    return oci.build_image(
        [builder_layer, runtime_layer],
        history=[History("debootstrap python3 python3-venv"), History("python3.11 runtime files")],
        docker=True,
    )


def python_bases() -> Image:
    image = cached(
        "python-bases", {"suite": DEBIAN_SUITE, "packages": list(PYTHON_PACKAGES), "v": 1}, build_python_bases
    )
    assert isinstance(image, Image)
    return image


def import_python_bases(client: docker.DockerClient) -> tuple[str, str]:
    """The builder and runtime stand-ins in the engine (imported once); returns their tags."""
    import docker.errors

    bases = python_bases()
    path_env = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for tag, layer, changes in (
        (BUILDER_TAG, bases.layers[0], [f"ENV {path_env}", 'CMD ["bash"]']),
        (RUNTIME_TAG, bases.layers[1], [f"ENV {path_env}", "USER 65532", "WORKDIR /home/nonroot"]),
    ):
        try:
            client.images.get(tag)
            continue
        except docker.errors.ImageNotFound:
            pass
        with layer.blob.open() as compressed, gzip.open(compressed) as tar_stream:
            repository, name = tag.split(":")
            client.api.import_image(src=tar_stream, repository=repository, tag=name, changes=changes)
    return BUILDER_TAG, RUNTIME_TAG


# -- the package index -------------------------------------------------------------------------------------


def _requirements(pyproject: Path) -> list[str]:
    """What the Dockerfile installs: the CLI's dependencies, the operator extra, and its build tools."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [
        *project["dependencies"],
        *project["optional-dependencies"]["operator"],
        "pip>=24",
        "setuptools>=77",
        "wheel",
    ]


def wheelhouse(pyproject: Path) -> Path:
    """Every wheel the Dockerfile installs, for CPython 3.11 on manylinux x86_64, downloaded once (PyPI)."""
    requirements = _requirements(pyproject)
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    root = cache_dir("images") / f"self-wheels-{key}"
    with file_lock(cache_dir("images") / ".self-wheels.lock"):
        if (root / "simple").is_dir():
            return root
        staging = root.with_name(root.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        command = [
            sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(staging),
            "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
            *(arg for platform in _WHEEL_PLATFORMS for arg in ("--platform", platform)), *requirements,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise TestbedError(f"pip download of the self image's wheels failed:\n{result.stderr[-3000:]}")
        _write_simple_index(staging)
        staging.rename(root)
    return root


def _write_simple_index(directory: Path) -> None:
    """PEP 503: /simple/<normalised project>/ listing that project's files."""
    projects: dict[str, list[str]] = {}
    for wheel in sorted(directory.glob("*.whl")):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()
        projects.setdefault(project, []).append(wheel.name)
    simple = directory / "simple"
    for project, files in projects.items():
        page = simple / project
        page.mkdir(parents=True)
        links = "".join(f'<a href="../../{name}">{name}</a><br>\n' for name in files)
        (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    (simple / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n"
        + "".join(f'<a href="{project}/">{project}</a><br>\n' for project in sorted(projects))
        + "</body></html>\n"
    )


def _index_port() -> int:
    """The port the index prefers, the same on every run of one cache: PIP_INDEX_URL is a build argument of the
    Dockerfile's pip RUN steps, so a new port would miss the engine's build cache and reinstall every wheel.
    Below Linux's ephemeral range (32768-60999), where `free_port()` picks the test bed's other servers."""
    return 20000 + int(hashlib.sha256(str(cache_dir("images")).encode()).hexdigest(), 16) % 10000


@contextmanager
def package_index(directory: Path) -> Iterator[str]:
    """The wheelhouse served on 127.0.0.1; yields its PIP_INDEX_URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", _index_port()), handler)
    except OSError:  # taken: any port works, the build is only slower (its pip steps miss the cache)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


# -- slimguard's own image, built by the engine ------------------------------------------------------------

SELF_TAG = "ghcr.io/slimguard/slimguard:e2e"
_SELF_CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "LICENSE")


def release_label_args(repo_root: Path) -> dict[str, str]:
    """The Dockerfile's label arguments as `make release` sets them (VERSION, REVISION, CREATED), from
    ``scripts/release.py image-args``: the one definition of what the labels say."""
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "release.py"), "image-args"],
        capture_output=True,
        text=True,
        check=False,
        cwd=repo_root,
    )
    if result.returncode != 0:
        raise TestbedError(f"scripts/release.py image-args failed:\n{result.stderr[-2000:]}")
    args = json.loads(result.stdout)
    assert isinstance(args, dict)
    return {str(key): str(value) for key, value in args.items()}


def build_self_image(
    client: docker.DockerClient, *, repo_root: Path, node_base: str, debian_fat: str, workdir: Path
) -> str:
    """The repository's Dockerfile built by the engine on the stand-in bases, pip installing from the loopback
    index; returns its tag. ``node_base`` and ``debian_fat`` name the fat fixtures, already in the engine.

    The first build on a machine takes ~3 minutes; after that the engine's build cache answers every step whose
    inputs are unchanged, so the test bed's warm-up makes this build and the tests' own is quick.
    """
    started = int(time.time())
    builder, runtime = import_python_bases(client)
    # The fat bases the self policy names, as stand-ins: what base detection compares the image with.
    client.images.get(builder).tag("debian", tag="12-slim")
    client.images.get(builder).tag("python", tag="3.11-bookworm")
    client.images.get(node_base).tag("node", tag="20-bookworm")
    client.images.get(debian_fat).tag("debian", tag="bookworm")
    context = workdir / "self-context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    for name in _SELF_CONTEXT:
        shutil.copy(repo_root / name, context / name)
    shutil.copytree(repo_root / "operator", context / "operator", ignore=shutil.ignore_patterns("__pycache__"))
    with package_index(wheelhouse(repo_root / "pyproject.toml")) as index:
        try:
            image, _ = client.images.build(
                path=str(context),
                tag=SELF_TAG,
                network_mode="host",  # for the loopback index only: dockerd here has no bridge to the outside
                pull=False,
                rm=True,
                forcerm=True,
                buildargs={
                    "BUILDER": builder,
                    "RUNTIME": runtime,
                    "PIP_INDEX_URL": index,
                    "PIP_TRUSTED_HOST": "127.0.0.1",
                    # Only the final stage's last step (LABEL) reads these: a new commit rebuilds no layer.
                    **release_label_args(repo_root),
                },
            )
        except Exception as error:  # the build log is the only useful thing to show
            log = getattr(error, "build_log", None) or []
            tail = "".join(str(entry.get("stream") or entry.get("error") or "") for entry in log)[-4000:]
            raise TestbedError(f"docker build of the Dockerfile failed: {error}\n{tail}") from None
    # The engine (and so SELF_TAG) is shared by every session on the machine: another checkout's build may move the
    # tag at any moment. A tag named by this build's image ID always means this build.
    repository = SELF_TAG.rsplit(":", 1)[0]
    own = f"e2e-{str(image.id).removeprefix('sha256:')[:12]}"
    image.tag(repository, tag=own)
    remove_earlier_builds(client, repository, made_before=started)
    return f"{repository}:{own}"


# A session's own build is in use for the length of its run: older ones are no one's any more.
_OWN_BUILD_LIFETIME = 6 * 3600


def remove_earlier_builds(client: docker.DockerClient, repository: str, *, made_before: int) -> None:
    """Untag the per-build tags of ``repository`` older than a run can last, then remove every untagged image made
    before ``made_before`` (a Unix time). Each build of the Dockerfile that changes a step leaves the previous
    image and its stages behind; with the vfs storage driver every one is a full copy (hundreds of MB): a day
    of edits filled 40 GB of this machine's disk. The build that just ran keeps its own stages (the next build's
    cache)."""
    for image in client.images.list(name=repository):
        created = datetime.datetime.fromisoformat(str(image.attrs["Created"])[:19]).replace(tzinfo=datetime.UTC)
        if created.timestamp() < made_before - _OWN_BUILD_LIFETIME:
            for tag in image.tags:
                if tag.startswith(f"{repository}:e2e-"):
                    client.images.remove(tag, noprune=True)
    client.images.prune(filters={"dangling": True, "until": str(made_before)})
