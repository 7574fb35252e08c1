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

from slimguard_testbed.images.one_off import close_clients, push_image
from slimguard_testbed.images.publish import FixtureArtifacts, build_fixture_cache, publish_fixture_images
from slimguard_testbed.images.published import FixtureImage, FixtureImages, PlatformImage, fixture_image
from slimguard_testbed.images.small_bases import busybox_files
from slimguard_testbed.images.warm import warm_fixture_cache

__all__ = [
    "FixtureArtifacts",
    "FixtureImage",
    "FixtureImages",
    "PlatformImage",
    "build_fixture_cache",
    "busybox_files",
    "close_clients",
    "fixture_image",
    "publish_fixture_images",
    "push_image",
    "warm_fixture_cache",
]
