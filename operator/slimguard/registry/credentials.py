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

from docker import auth as docker_auth

from slimguard.core.reference import DOCKER_HUB, ImageReference

_HUB_KEYS = {"index.docker.io", "docker.io", "registry-1.docker.io"}


@dataclass(frozen=True)
class Credential:
    """A username and password for one registry location (host[:port][/path])."""

    location: str
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password, not even in a debug log
        return f"Credential(location={self.location!r}, username={self.username!r})"


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


def parse_docker_config(payload: bytes | str) -> list[Credential]:
    """Credentials from a ``.dockerconfigjson`` (or legacy ``.dockercfg``) document.

    Decoding of the ``auth`` field is the ``docker`` package's own; a malformed entry is skipped, not fatal.
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
    parsed: Mapping[str, Any] = docker_auth.parse_auth(entries, raise_on_error=False)
    credentials = []
    for location, entry in parsed.items():
        if not isinstance(entry, dict):
            continue
        username, password = entry.get("username"), entry.get("password")
        if username and password is not None:
            credentials.append(Credential(location=location, username=str(username), password=str(password)))
    return credentials


def decode_secret_data(data: Mapping[str, str]) -> list[Credential]:
    """Credentials from a Secret's ``data`` (base64 values) of type dockerconfigjson or dockercfg."""
    for key in (".dockerconfigjson", ".dockercfg"):
        if key in data:
            try:
                return parse_docker_config(base64.b64decode(data[key]))
            except (binascii.Error, ValueError):
                return []
    return []


def credentials_for(reference: ImageReference, credentials: Iterable[Credential]) -> list[Credential]:
    """The credentials that may be sent for this image, most specific location first."""
    matching = [c for c in credentials if _matches(c.location, reference)]
    return sorted(matching, key=lambda c: _specificity(c.location), reverse=True)
