"""A real exec credential provider for the test bed, speaking the kubelet's ``credentialprovider.kubelet.k8s.io/v1``
protocol: a ``CredentialProviderRequest`` on stdin, a ``CredentialProviderResponse`` on stdout, the exit status.

It hands out the test registry's token-service credentials, as ``ecr-credential-provider`` hands out ECR's: read
from a file named by an argument (``--credentials``; AKS's provider takes its config file so), for the image's
registry (``host:port``, the key ECR's provider answers with) unless ``--auth-key`` names another. Each run
appends one line (the image asked for) to the file the ``SLIMGUARD_TESTBED_PROVIDER_CALLS`` environment variable
names, which the configuration's ``env`` sets: the count of its runs is what a cache saves. ``--behave`` makes it
fail as real providers fail: a non-zero exit with a message, a hang, garbage, the wrong ``apiVersion`` or
``cacheKeyType``.

Python, not Go: the kubelet's contract is a process (argv, environment, stdin, stdout, exit status), which this
script meets as a Go binary would, with nothing to build or cache. ``install`` copies this file (standard library
only) into a bin directory with a shebang naming the interpreter running the tests, executable, under the
provider's name: the kubelet's lookup, ``BIN_DIR/NAME``. The module is also the test bed's helper to configure it
(``ProviderEntry``, ``write_config``).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_VERSION = "credentialprovider.kubelet.k8s.io/v1"
CALLS_VARIABLE = "SLIMGUARD_TESTBED_PROVIDER_CALLS"
BEHAVIOURS = ("answer", "exit", "hang", "garbage", "wrong-api-version", "bad-cache-key-type", "no-auth")


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A kubelet exec credential provider for slimguard's test bed.")
    parser.add_argument("--credentials", help="A JSON file with the username and password to hand out.")
    parser.add_argument("--auth-key", help="The auth key to answer with (default: the image's registry).")
    parser.add_argument("--cache-key-type", default="Registry")
    parser.add_argument("--cache-duration", help="A Go duration; without it the answer has none (the default).")
    parser.add_argument("--behave", choices=BEHAVIOURS, default="answer")
    return parser.parse_args(argv)


def answer(request: dict[str, Any], options: argparse.Namespace) -> dict[str, Any]:
    """The CredentialProviderResponse for ``request``."""
    image = request["image"]
    response: dict[str, Any] = {
        "kind": "CredentialProviderResponse",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1beta1"
        if options.behave == "wrong-api-version"
        else API_VERSION,
        "cacheKeyType": "Forever" if options.behave == "bad-cache-key-type" else options.cache_key_type,
    }
    if options.cache_duration is not None:
        response["cacheDuration"] = options.cache_duration
    if options.behave != "no-auth":
        credentials = json.loads(Path(options.credentials).read_text())
        key = options.auth_key or image.split("/", 1)[0]
        response["auth"] = {key: {"username": credentials["username"], "password": credentials["password"]}}
    return response


def main(argv: Sequence[str] | None = None) -> int:
    options = _arguments(sys.argv[1:] if argv is None else argv)
    request = json.loads(sys.stdin.read())
    if request.get("kind") != "CredentialProviderRequest" or request.get("apiVersion") != API_VERSION:
        print(f"not a {API_VERSION} CredentialProviderRequest: {request.get('apiVersion')!r}", file=sys.stderr)
        return 1
    calls = os.environ.get(CALLS_VARIABLE)
    if calls:
        with open(calls, "a") as log:
            log.write(f"{request['image']}\n")
    if options.behave == "exit":
        print("the registry's token service refused the provider: AccessDenied", file=sys.stderr)
        return 3
    if options.behave == "hang":
        time.sleep(3600)
    if options.behave == "garbage":
        print("<html>502 Bad Gateway</html>")
        return 0
    print(json.dumps(answer(request, options)))
    return 0


# --- the test bed's side: install it, configure it ------------------------------------------------------------------


def install(bin_dir: Path, name: str, *, python: str = sys.executable) -> Path:
    """This script as ``bin_dir/name``, executable, run by ``python`` (which needs only its standard library)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    binary = bin_dir / name
    binary.write_text(f"#!{python}\n" + Path(__file__).read_text())
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def write_credentials(path: Path, username: str, password: str) -> Path:
    """The credentials the provider hands out, readable by its owner alone."""
    path.write_text(json.dumps({"username": username, "password": password}))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class ProviderEntry:
    """One entry of a ``CredentialProviderConfig`` running this provider."""

    name: str
    match_images: tuple[str, ...]
    credentials: Path
    calls: Path
    default_cache_duration: str = "1m"
    cache_key_type: str = "Registry"
    cache_duration: str | None = None
    behave: str = "answer"
    auth_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        args = ["--credentials", str(self.credentials), "--cache-key-type", self.cache_key_type]
        if self.cache_duration is not None:
            args += ["--cache-duration", self.cache_duration]
        if self.behave != "answer":
            args += ["--behave", self.behave]
        if self.auth_key is not None:
            args += ["--auth-key", self.auth_key]
        return {
            "name": self.name,
            "matchImages": list(self.match_images),
            "defaultCacheDuration": self.default_cache_duration,
            "apiVersion": API_VERSION,
            "args": args,
            "env": [{"name": CALLS_VARIABLE, "value": str(self.calls)}],
            **self.extra,
        }

    def runs(self) -> list[str]:
        """The image of each run so far, in order."""
        return self.calls.read_text().splitlines() if self.calls.exists() else []


def write_config(path: Path, providers: Sequence[ProviderEntry]) -> Path:
    """A ``kubelet.config.k8s.io/v1`` ``CredentialProviderConfig`` (JSON) with these providers."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1",
                "kind": "CredentialProviderConfig",
                "providers": [provider.config() for provider in providers],
            },
            indent=2,
        )
    )
    return path


if __name__ == "__main__":
    sys.exit(main())
