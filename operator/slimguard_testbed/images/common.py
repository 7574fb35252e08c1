"""What every fixture recipe shares: names, the busybox applets, and the Docker engine it may need."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import docker


# Bump to rebuild every cached fixture (e.g. after changing what a recipe means without changing its inputs).
RECIPE_VERSION = 1

DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("build-essential", "python3", "git", "curl", "ca-certificates")
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
NODE_BINARY = Path("/usr/bin/node")
BUSYBOX_BINARY = Path("/bin/busybox")
SLIM_APP_DIR = Path(__file__).parent.parent / "fixtures" / "slim-app"
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
