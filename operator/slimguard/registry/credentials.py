"""Registry credentials from dockerconfigjson pull secrets, matched to images by Kubernetes' rules."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from slimguard.core.model.reference import DOCKER_HUB, ImageReference

_HUB_KEYS = {"index.docker.io", "docker.io", "registry-1.docker.io"}


@dataclass(frozen=True)
class Credential:
    """A username and password for one registry location (host[:port][/path])."""

    location: str
    username: str
    password: str
    source: str = ""
    """Where it came from, for messages: "" for a pull secret or the Docker config, else e.g.
    ``credential provider ecr-credential-provider`` (``registry/credential_providers.py``)."""

    def __repr__(self) -> str:  # never print a password, not even in a debug log
        return f"Credential(location={self.location!r}, username={self.username!r}, source={self.source!r})"

    def describe(self) -> str:
        """How a message names it: ``the credentials for LOCATION`` (``from credential provider NAME``)."""
        named = f"the credentials for {self.location}"
        return f"{named} from {self.source}" if self.source else named


def _location_parts(key: str) -> tuple[str, str]:
    """``https://index.docker.io/v1/`` → (docker.io, ''); ``reg.io:5000/team`` → (reg.io:5000, 'team')."""
    text = key if "://" in key else f"//{key}"
    parts = urlsplit(text)
    host = (parts.netloc or "").lower()
    path = parts.path.strip("/")
    if host in _HUB_KEYS:
        host, path = DOCKER_HUB, "" if path in ("v1", "v2") else path
    return host, path


def _matches(location: str, reference: ImageReference) -> bool:
    """Kubernetes' credential-provider matching: host glob per label, same port, path prefix."""
    host, path = _location_parts(location)
    key_host, _, key_port = host.partition(":")
    image_host, _, image_port = reference.registry.lower().partition(":")
    if key_port != image_port:
        return False
    key_labels, image_labels = key_host.split("."), image_host.split(".")
    if len(key_labels) != len(image_labels):
        return False
    if not all(fnmatchcase(label, pattern) for label, pattern in zip(image_labels, key_labels, strict=True)):
        return False
    return not path or reference.repository == path or reference.repository.startswith(f"{path}/")


def _specificity(location: str) -> tuple[int, int]:
    host, path = _location_parts(location)
    return (len(path), -host.count("*"))


def _entry_credential(location: str, entry: Any) -> Credential | None:
    """One ``auths`` entry the way the kubelet reads it (credentialprovider.DockerConfigEntry): ``username`` and
    ``password`` fields, overridden by ``auth`` (base64 of ``user:password``) when that is set."""
    if not isinstance(entry, dict):
        return None
    username, password = entry.get("username"), entry.get("password")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            username, _, password = base64.b64decode(auth, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text ("\x80") in the field
            return None
        if _ == "":  # no colon: the kubelet rejects the entry
            return None
    if not isinstance(username, str) or not username or not isinstance(password, str):
        return None
    return Credential(location=location, username=username, password=password)


def parse_docker_config(payload: bytes | str) -> list[Credential]:
    """Credentials from a ``.dockerconfigjson`` (or legacy ``.dockercfg``) document.

    A malformed entry is skipped, not fatal, and never an exception: a Secret anyone in the namespace can write
    must not stop evaluation. (The ``docker`` package's parser, used before, raised TypeError for ``"auth": 5``,
    dropped every entry for one that was not an object, and ignored ``username``/``password`` fields; found by
    tests/unit/fuzz/test_fuzz_credentials.py.)
    """
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(document, dict):
        return []
    entries = document.get("auths", document)
    if not isinstance(entries, dict):
        return []
    return [
        credential
        for location, entry in entries.items()
        if (credential := _entry_credential(str(location), entry)) is not None
    ]


def decode_secret_data(data: Mapping[str, str]) -> list[Credential]:
    """Credentials from a Secret's ``data`` (base64 values) of type dockerconfigjson or dockercfg."""
    for key in (".dockerconfigjson", ".dockercfg"):
        if key in data:
            try:
                return parse_docker_config(base64.b64decode(data[key]))
            except (binascii.Error, ValueError, TypeError):
                return []
    return []


def credentials_for(reference: ImageReference, credentials: Iterable[Credential]) -> list[Credential]:
    """The credentials that may be sent for this image, most specific location first."""
    matching = [c for c in credentials if _matches(c.location, reference)]
    return sorted(matching, key=lambda c: _specificity(c.location), reverse=True)
