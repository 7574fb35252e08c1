"""The fixture images every test and the demo measure, pushed to a test-bed registry.

The images that are slow to make are built once per machine and cached as OCI image layouts under
`~/.cache/slimguard/images/<name>-<recipe hash>/`: the real Debian root filesystem (debootstrap and
gzip of ~700 MB, ~1.5 min), node on top of it, and the slim app that the Docker engine builds. The
small ones are deterministic and built in memory on every run in well under a second. Publishing a
warm cache only pushes, and the registry client skips blobs the registry already holds.

Every reference is `127.0.0.1:PORT/<repo>:<tag>`; repositories, tags and, apart from the images that name
the registry itself (slim_app's base label, annotated's annotations), digests are the same on every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from slimguard_testbed import oci
from slimguard_testbed.cache import cache_dir, file_lock, require_binary
from slimguard_testbed.oci import Artifact, Directory, EndpointLike, FileSpec, History, Image, Index, Layer, Platform
from slimguard_testbed.process import TestbedError

if TYPE_CHECKING:
    import docker

# Bump to rebuild every cached fixture (e.g. after changing what a recipe means without changing its inputs).
RECIPE_VERSION = 1

DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("build-essential", "python3", "git", "curl", "ca-certificates")
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
NODE_BINARY = Path("/usr/bin/node")
BUSYBOX_BINARY = Path("/bin/busybox")
SLIM_APP_DIR = Path(__file__).parent / "fixtures" / "slim-app"
# Stands in for the registry host in what is cached; replaced by the real one when pushing.
PLACEHOLDER_HOST = "slimguard.invalid"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"
ENGINE_BASE_TAG = "slimguard-fixtures/busybox:1.36"
ENGINE_SLIM_TAG = "slimguard-fixtures/shop-api:1.0-slim"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# fmt: off
BUSYBOX_APPLETS = (
    "[", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname", "du", "echo",
    "env", "false", "find", "grep", "gunzip", "gzip", "head", "hostname", "id", "ln", "ls", "mkdir", "mv",
    "nslookup", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "sh", "sleep", "sort", "stat", "tail", "tar",
    "tee", "test", "touch", "tr", "true", "uname", "uniq", "vi", "wc", "wget", "which", "whoami", "xargs",
)
# fmt: on


class DockerEngineLike(Protocol):
    """What is needed of `slimguard_testbed.docker_engine.DockerEngine`."""

    @property
    def base_url(self) -> str: ...

    def client(self) -> docker.DockerClient: ...


# A Docker engine, or a function that starts one: only a cold slim_app needs it, so a warm run never waits
# for dockerd.
EngineSource = DockerEngineLike | Callable[[], DockerEngineLike] | None


def _engine(source: EngineSource) -> DockerEngineLike | None:
    if source is None or hasattr(source, "client"):
        return source  # type: ignore[return-value]
    assert callable(source)
    return source()


# -- what publishing returns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformImage:
    """One platform's manifest within a fixture."""

    platform: str  # "linux/amd64", "linux/arm64/v8"
    digest: str
    compressed_size: int
    uncompressed_size: int
    layers: int


@dataclass(frozen=True)
class FixtureImage:
    """A fixture image as pushed: `ref` is `host/repository:tag`, `digest` its manifest (or index) digest."""

    host: str
    repository: str
    tag: str
    digest: str
    media_type: str
    platforms: tuple[PlatformImage, ...]
    artifact: Artifact = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        """The reference by digest: `host/repository@sha256:...`."""
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def is_index(self) -> bool:
        return isinstance(self.artifact, Index)

    @property
    def compressed_size(self) -> int:
        """Sum of the layer sizes of the first platform (what a size policy on the manifest adds up)."""
        return self.platforms[0].compressed_size

    @property
    def uncompressed_size(self) -> int:
        return self.platforms[0].uncompressed_size

    def platform(self, name: str) -> PlatformImage:
        for item in self.platforms:
            if item.platform == name or item.platform.startswith(name + "/"):
                return item
        raise KeyError(f"{self.ref} has no {name} image (it has {[p.platform for p in self.platforms]})")

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True)
class FixtureImages:
    """Every fixture image in one registry."""

    host: str
    debian_fat: FixtureImage  # base/debian:bookworm, debootstrap, ~700 MB, 170+ dpkg packages
    node_base: FixtureImage  # base/node:20-bookworm = debian + /usr/local/bin/node
    fat_app: FixtureImage  # shop/api:1.0-fat = node_base's layers + an app layer, runs as root
    busybox: FixtureImage  # base/busybox:1.36, ~1 MB
    distroless: FixtureImage  # base/distroless:12, no shell, user 65532
    slim_app: FixtureImage  # shop/api:1.0-slim, multi-stage `docker build` on busybox, user 10001
    private_slim: FixtureImage  # private/api:1.0-slim, the same image where pulls need credentials
    multiarch: FixtureImage  # shop/multi:1.0, index linux/amd64 + linux/arm64 (different sizes)
    arm64_only: FixtureImage  # shop/arm-only:1.0, index with linux/arm64 only
    annotated: FixtureImage  # shop/annotated:1.0, manifest annotations naming the distroless base
    annotated_index: FixtureImage  # shop/annotated-index:1.0, the same annotations on an index
    garbled: FixtureImage  # shop/garbled:1.0, a config blob that is not JSON
    huge_layers: FixtureImage  # shop/many-layers:1.0, 40 small layers

    def all(self) -> dict[str, FixtureImage]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "host"}


def fixture_image(host: str, repository: str, tag: str, artifact: Artifact) -> FixtureImage:
    images = artifact.images if isinstance(artifact, Index) else (artifact,)
    platforms = tuple(
        PlatformImage(str(i.platform), i.digest, i.size, i.uncompressed_size, len(i.layers)) for i in images
    )
    return FixtureImage(host, repository, tag, artifact.digest, artifact.media_type, platforms, artifact)


# -- the cache -----------------------------------------------------------------------------------------


def images_cache() -> Path:
    return cache_dir("images")


def _recipe_hash(recipe: Mapping[str, Any]) -> str:
    text = json.dumps({"recipe_version": RECIPE_VERSION, **recipe}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(name: str, recipe: Mapping[str, Any], build: Callable[[Path], Artifact]) -> Artifact:
    """The artifact for `recipe` from the cache, or `build(workdir)` it and cache it.

    A lock per name lets concurrent sessions wait for one build instead of racing; the layout is written
    to a temporary directory and renamed, so a half-written entry is never seen.
    """
    root = images_cache()
    entry = root / f"{name}-{_recipe_hash(recipe)}"
    if (entry / "index.json").exists():
        return oci.load_layout(entry)
    with file_lock(root / f".{name}.lock"):
        if (entry / "index.json").exists():
            return oci.load_layout(entry)
        work = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=root))
        try:
            artifact = build(work)
            staging = work / "layout"
            oci.save_layout(staging, artifact, ref_name=name)
            (staging / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True))
            staging.rename(entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # Older recipes of this image only take space (hard links keep shared blobs alive elsewhere).
        for stale in root.glob(f"{name}-*"):
            if stale != entry and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return oci.load_layout(entry)


def _file_key(path: Path) -> dict[str, Any]:
    """Identifies a big input file cheaply (hashing the 99 MB node binary on every run costs time)."""
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _pseudo_random(seed: str, size: int) -> bytes:
    """Incompressible but reproducible bytes: layer sizes survive gzip, digests stay stable."""
    return hashlib.shake_256(seed.encode()).digest(size)


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


# -- built by the real Docker engine ---------------------------------------------------------------------


def build_slim_app(work: Path, busybox: Image, engine_source: EngineSource) -> Image:
    """`docker import` the busybox rootfs, `docker build --network=none` the multi-stage Dockerfile,
    `docker save` the result and keep it as it is (config and layer tars untouched, layers gzipped)."""
    engine = _engine(engine_source)
    if engine is None:
        raise TestbedError("the slim_app fixture is not cached yet and building it needs a Docker engine")
    client = engine.client()
    try:
        with busybox.layers[0].blob.open() as compressed, gzip.open(compressed) as tar_stream:
            rootfs_tar = tar_stream.read()
        client.api.import_image_from_data(
            rootfs_tar,
            repository=ENGINE_BASE_TAG.split(":")[0],
            tag=ENGINE_BASE_TAG.split(":")[1],
            changes=[f"ENV {PATH_ENV}", 'CMD ["sh"]'],
        )
        image, _logs = client.images.build(
            path=str(SLIM_APP_DIR),
            tag=ENGINE_SLIM_TAG,
            network_mode="none",
            pull=False,
            rm=True,
            forcerm=True,
            buildargs={
                "BASE": ENGINE_BASE_TAG,
                "BASE_NAME": f"{PLACEHOLDER_HOST}/base/busybox:1.36",
                "BASE_DIGEST": busybox.digest,
            },
        )
        archive = work / "slim-app.tar"
        with archive.open("wb") as out:
            for chunk in image.save(named=True):
                out.write(chunk)
    finally:
        client.close()
    return image_from_docker_archive(archive, work)


def image_from_docker_archive(archive: Path, work: Path) -> Image:
    """An `Image` from a `docker save` tarball: the engine's config bytes as they are, each layer gzipped."""
    with tarfile.open(archive) as tar:
        manifest_member = tar.extractfile("manifest.json")
        assert manifest_member is not None
        entry = json.loads(manifest_member.read())[0]
        config_member = tar.extractfile(entry["Config"])
        assert config_member is not None
        config = oci.Blob.of(config_member.read())
        history = [h for h in json.loads(config.read()).get("history", []) if not h.get("empty_layer")]
        layers: list[Layer] = []
        for number, name in enumerate(entry["Layers"]):
            member = tar.extractfile(name)
            assert member is not None
            created_by = history[number].get("created_by", "") if number < len(history) else ""
            layers.append(oci.layer_from_tar(member, work / f"layer-{number}.tar.gz", created_by=created_by))
    platform = oci.Platform.from_dict(json.loads(config.read()))
    return oci.image_from_parts(config, layers, platform=platform, docker=True)


def relocate_base_label(image: Image, host: str) -> Image:
    """The cached slim image names its base under PLACEHOLDER_HOST: name the registry it is pushed to."""

    def change(config: dict[str, Any]) -> None:
        labels = config.get("config", {}).get("Labels") or {}
        if labels.get(BASE_NAME_LABEL, "").startswith(PLACEHOLDER_HOST + "/"):
            labels[BASE_NAME_LABEL] = host + labels[BASE_NAME_LABEL][len(PLACEHOLDER_HOST) :]

    return oci.with_config(image, change)


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


# -- publishing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixtureArtifacts:
    """The cached artifacts, before the registry host is known."""

    debian: Image
    node: Image
    fat_app: Image
    busybox: Image
    distroless: Image
    slim_app: Image
    multiarch: Index
    arm64_only: Index
    annotated: Image
    garbled: Image
    many_layers: Image


def _as_image(artifact: Artifact) -> Image:
    assert isinstance(artifact, Image)
    return artifact


def _as_index(artifact: Artifact) -> Index:
    assert isinstance(artifact, Index)
    return artifact


def build_fixture_cache(docker_engine: EngineSource, *, log: Callable[[str], None] | None = None) -> FixtureArtifacts:
    """Every fixture: the slow ones from the cache (built if missing; Docker is needed only for a cold
    slim_app), the quick ones built in memory. Change what a cached recipe makes without changing its
    inputs? Bump RECIPE_VERSION."""
    say = log or (lambda _message: None)

    def step(name: str, recipe: Mapping[str, Any], build: Callable[[Path], Artifact]) -> Artifact:
        started = time.monotonic()
        artifact = cached(name, recipe, build)
        say(f"{name}: {artifact.digest} ({time.monotonic() - started:.1f}s)")
        return artifact

    debian = _as_image(
        step(
            "debian",
            {
                "suite": DEBIAN_SUITE,
                "variant": "minbase",
                "arch": "amd64",
                "packages": list(DEBIAN_PACKAGES),
                "apt_cache": "kept",
            },
            build_debian,
        )
    )
    node = _as_image(
        step("node", {"base": debian.digest, "node": _file_key(NODE_BINARY)}, lambda work: build_node(work, debian))
    )
    # Deterministic and quick: built every time, so a change to their code can never meet a stale cache.
    busybox = build_busybox()
    slim_app = _as_image(
        step(
            "slim-app",
            {"base": busybox.digest, "context": _tree_hash(SLIM_APP_DIR)},
            lambda work: build_slim_app(work, busybox, docker_engine),
        )
    )
    distroless = build_distroless()
    multiarch = build_multiarch(busybox)
    return FixtureArtifacts(
        debian=debian,
        node=node,
        fat_app=build_fat_app(node),
        busybox=busybox,
        distroless=distroless,
        slim_app=slim_app,
        multiarch=multiarch,
        arm64_only=build_arm64_only(multiarch),
        annotated=build_annotated(distroless),
        garbled=build_garbled(),
        many_layers=build_many_layers(),
    )


def publish_fixture_images(
    endpoint: EndpointLike,
    docker_engine: EngineSource,
    *,
    log: Callable[[str], None] | None = None,
) -> FixtureImages:
    """Build (or load from the cache) every fixture image and push it to `endpoint`; idempotent.

    `endpoint` needs push rights on base/, shop/ and private/ (its credentials go to the token issuer).
    `docker_engine` (or a function returning one) is only used when slim_app is not cached yet.
    """
    artifacts = build_fixture_cache(docker_engine, log=log)
    host = endpoint.host
    base_annotations = {BASE_NAME_LABEL: f"{host}/base/distroless:12", BASE_DIGEST_LABEL: artifacts.distroless.digest}
    annotated = oci.with_annotations(artifacts.annotated, base_annotations)
    # The index's own manifest carries no annotations, so a test can tell where they were read from.
    annotated_index = oci.build_index([artifacts.annotated], annotations=base_annotations)
    slim_app = relocate_base_label(artifacts.slim_app, host)

    plan: list[tuple[str, str, str, Artifact, tuple[str, ...]]] = [
        ("debian_fat", "base/debian", "bookworm", artifacts.debian, ()),
        ("node_base", "base/node", "20-bookworm", artifacts.node, ("base/debian",)),
        ("fat_app", "shop/api", "1.0-fat", artifacts.fat_app, ("base/node",)),
        ("busybox", "base/busybox", "1.36", artifacts.busybox, ()),
        ("distroless", "base/distroless", "12", artifacts.distroless, ()),
        ("slim_app", "shop/api", "1.0-slim", slim_app, ("base/busybox",)),
        ("private_slim", "private/api", "1.0-slim", slim_app, ("shop/api",)),
        ("multiarch", "shop/multi", "1.0", artifacts.multiarch, ("base/busybox",)),
        ("arm64_only", "shop/arm-only", "1.0", artifacts.arm64_only, ("shop/multi",)),
        ("annotated", "shop/annotated", "1.0", annotated, ("base/distroless",)),
        ("annotated_index", "shop/annotated-index", "1.0", annotated_index, ("shop/annotated",)),
        ("garbled", "shop/garbled", "1.0", artifacts.garbled, ()),
        ("huge_layers", "shop/many-layers", "1.0", artifacts.many_layers, ()),
    ]
    published: dict[str, FixtureImage] = {}
    with oci.RegistryClient(endpoint) as client:
        for name, repository, tag, artifact, mount_from in plan:
            started = time.monotonic()
            client.push(repository, tag, artifact, mount_from=mount_from)
            published[name] = fixture_image(host, repository, tag, artifact)
            if log:
                log(f"pushed {published[name].ref} {artifact.digest} ({time.monotonic() - started:.1f}s)")
    return FixtureImages(host=host, **published)


# -- one-off images for tests --------------------------------------------------------------------------

_clients: dict[tuple[str, str, str | None], oci.RegistryClient] = {}
_clients_lock = threading.Lock()


def _client_for(endpoint: EndpointLike) -> oci.RegistryClient:
    """One keep-alive client (and token cache) per registry, so a one-off push costs a few requests."""
    key = (endpoint.host, str(endpoint.ca_file), endpoint.username)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = oci.RegistryClient(endpoint)
        return client


def close_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def push_image(
    endpoint: EndpointLike,
    repository: str,
    tag: str,
    layers: Sequence[Layer | Mapping[str, FileSpec]] = (),
    *,
    base: FixtureImage | Image | None = None,
    user: str | None = None,
    labels: Mapping[str, str] | None = None,
    base_annotation: FixtureImage | tuple[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    platform: Platform | None = None,
    cmd: Sequence[str] | None = None,
    docker: bool = False,
) -> FixtureImage:
    """Build and push a one-off image (a few ms on a warm registry); returns what was pushed.

    `layers` are `oci.Layer`s or {path: bytes | (bytes, mode) | Symlink | Directory} dicts; `base` puts
    another image's layers (and config) underneath, mounted from its repository rather than uploaded.
    `base_annotation` (a fixture, or (reference, digest)) sets the OCI base-image manifest annotations.
    """
    built = [
        layer if isinstance(layer, Layer) else oci.layer_from_files(layer, created_by="COPY . / # buildkit")
        for layer in layers
    ]
    base_image: Image | None
    mount_from: tuple[str, ...] = ()
    if isinstance(base, FixtureImage):
        base_image = _as_image(base.artifact) if isinstance(base.artifact, Image) else base.artifact.images[0]
        mount_from = (base.repository,)
    else:
        base_image = base
    all_annotations = dict(annotations or {})
    if isinstance(base_annotation, FixtureImage):
        all_annotations |= {BASE_NAME_LABEL: base_annotation.ref, BASE_DIGEST_LABEL: base_annotation.digest}
    elif base_annotation is not None:
        all_annotations |= {BASE_NAME_LABEL: base_annotation[0], BASE_DIGEST_LABEL: base_annotation[1]}
    image = oci.build_image(
        built,
        base=base_image,
        platform=platform,
        user=user,
        labels=labels,
        cmd=cmd,
        annotations=all_annotations or None,
        docker=docker,
    )
    # One-offs are new images: skip the tag HEAD (a re-push still only HEADs its blobs).
    _client_for(endpoint).push(repository, tag, image, mount_from=mount_from, check_tag=False)
    return fixture_image(endpoint.host, repository, tag, image)


# -- command line: warm the cache before a test run ------------------------------------------------------


class _ExternalEngine:
    """A Docker engine someone else runs (`--docker-host`)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def client(self) -> docker.DockerClient:
        import docker as docker_sdk

        return docker_sdk.DockerClient(base_url=self.base_url, timeout=300)


def warm_fixture_cache(*, docker_host: str | None = None, log: Callable[[str], None] | None = None) -> FixtureArtifacts:
    """Build whatever fixture is not cached yet, before tests run: a cold cache takes ~2 minutes, more than
    a test's timeout. dockerd (the test bed's, or `docker_host`) is started only if slim_app is cold."""
    with ExitStack() as stack:

        def start_engine() -> DockerEngineLike:
            if docker_host:
                return _ExternalEngine(docker_host)
            from slimguard_testbed.docker_engine import DockerEngine

            return stack.enter_context(DockerEngine())

        return build_fixture_cache(start_engine, log=log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (once) the cached fixture images of the slimguard test bed.")
    parser.add_argument("--docker-host", help="an engine to build slim_app with (default: start the test bed's)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    warm_fixture_cache(docker_host=args.docker_host, log=lambda message: print(message, file=sys.stderr))
    print(f"fixture images cached in {images_cache()} ({time.monotonic() - started:.1f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "FixtureArtifacts",
    "FixtureImage",
    "FixtureImages",
    "PlatformImage",
    "build_fixture_cache",
    "close_clients",
    "fixture_image",
    "publish_fixture_images",
    "push_image",
    "warm_fixture_cache",
]
