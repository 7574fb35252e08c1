"""Registry credentials from the user's Docker config (``~/.docker/config.json``, ``$DOCKER_CONFIG``), its
``auths`` and its credential helpers (``credsStore``, ``credHelpers``), read through the ``docker`` package."""

from __future__ import annotations

from collections.abc import Iterable

import docker.auth
import docker.errors

from slimguard.core.model.reference import DOCKER_HUB
from slimguard.registry.credentials import Credential


def docker_config_credentials(registries: Iterable[str], *, config_path: str | None = None) -> list[Credential]:
    """One credential per registry the Docker config has one for (none for the others: anonymous pulls).

    A credential helper that fails (not installed, locked keychain) gives no credential for that registry,
    not an error: the registry then answers 401 and the check says so.
    """
    try:
        config = docker.auth.load_config(config_path=config_path)
    except (docker.errors.DockerException, OSError, ValueError):
        return []
    found: list[Credential] = []
    for registry in dict.fromkeys(registries):
        try:
            entry = config.resolve_authconfig(docker.auth.INDEX_NAME if registry == DOCKER_HUB else registry)
        except (docker.errors.DockerException, OSError, ValueError):
            continue
        if not entry:
            continue
        username = entry.get("username") or entry.get("Username")
        password = entry.get("password") or entry.get("Password") or entry.get("Secret")
        if isinstance(username, str) and username and isinstance(password, str):
            found.append(Credential(location=registry, username=username, password=password))
    return found
