"""Command line: warm the fixture cache before a test run (a cold cache takes ~2 minutes)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

from slimguard_testbed.images.common import DockerEngineLike
from slimguard_testbed.images.publish import FixtureArtifacts, build_fixture_cache
from slimguard_testbed.images.recipe_cache import images_cache

if TYPE_CHECKING:
    import docker


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
