"""Image references, parsed per the distribution reference grammar (as Docker and Kubernetes read them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from slimguard.core.errors import InvalidReference

DOCKER_HUB = "docker.io"
_OFFICIAL_NAMESPACE = "library"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Matched with fullmatch, never ``^...$``: ``$`` also matches before a final newline, which let
# ``node\n:20`` through as repository ``library/node\n`` (found by tests/unit/fuzz/test_fuzz_reference.py).
_DOMAIN_RE = re.compile(_DOMAIN)
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(_TAG, re.ASCII)  # \w as in Go: ASCII letters, digits and _ only
_DIGEST_RE = re.compile(_DIGEST)
_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_NAME_LENGTH = 255
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A fully qualified reference: registry host, repository path, and a tag, a digest or both."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse ``text`` the way the container runtime would, filling Docker Hub's defaults.

        ``node:20`` is ``docker.io/library/node:20``; a first path segment is a registry host only when it
        holds a dot or a colon or is ``localhost``, as in the distribution library.
        """
        original = text
        if not text or text != text.strip():
            raise InvalidReference(f"image reference {original!r} is empty or has surrounding spaces")
        digest: str | None = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not _DIGEST_RE.fullmatch(digest):
                raise InvalidReference(f"image reference {original!r} has an invalid digest {digest!r}")
            if digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest):
                raise InvalidReference(f"image reference {original!r}: a sha256 digest has 64 lowercase hex characters")
        tag: str | None = None
        last_slash = text.rfind("/")
        last_colon = text.rfind(":")
        if last_colon > last_slash:
            text, tag = text[:last_colon], text[last_colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise InvalidReference(f"image reference {original!r} has an invalid tag {tag!r}")
        first, _, rest = text.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
            if not _DOMAIN_RE.fullmatch(registry):
                raise InvalidReference(f"image reference {original!r} has an invalid registry {registry!r}")
            # The grammar takes any run of digits as a port; refuse here what no socket can have, so a
            # reference such as host:99999/app is the user's error, not a resolver or connection failure.
            _, colon, port = registry.rsplit("]", 1)[-1].rpartition(":")  # after an IPv6 literal's "]"
            if colon and not 1 <= int(port) <= _MAX_PORT:
                raise InvalidReference(
                    f"image reference {original!r}: registry port {port} is not between 1 and {_MAX_PORT}"
                )
        else:
            registry, repository = DOCKER_HUB, text
        registry = registry.lower() if registry != DOCKER_HUB else registry
        if registry in {"index.docker.io", "registry-1.docker.io"}:
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"{_OFFICIAL_NAMESPACE}/{repository}"
        if not _PATH_RE.fullmatch(repository):
            raise InvalidReference(
                f"image reference {original!r} has an invalid repository {repository!r} "
                "(lowercase letters, digits and separators . _ __ - only)"
            )
        if len(f"{registry}/{repository}") > _MAX_NAME_LENGTH:
            raise InvalidReference(f"image reference {original!r} is longer than {_MAX_NAME_LENGTH} characters")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def host(self) -> str:
        """The registry host without its port (IPv6 brackets removed)."""
        if self.registry.startswith("["):
            return self.registry[1 : self.registry.index("]")]
        return self.registry.rsplit(":", 1)[0] if ":" in self.registry else self.registry

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def spellings(self) -> tuple[str, ...]:
        """Every way a person may write this reference, for glob matching.

        A glob such as ``node:*-alpine`` or ``docker.io/library/node:*`` should both match ``node:20-alpine``.
        """
        names = [self.name]
        if self.registry == DOCKER_HUB:
            names.append(self.repository)
            if self.repository.startswith(f"{_OFFICIAL_NAMESPACE}/"):
                short = self.repository.removeprefix(f"{_OFFICIAL_NAMESPACE}/")
                # ``docker.io/debian:*`` is how many people write an official image; it must match too.
                names.extend((f"{DOCKER_HUB}/{short}", short))
        forms: list[str] = []
        for name in names:
            forms.append(name)
            if self.tag:
                forms.append(f"{name}:{self.tag}")
            if self.digest:
                forms.append(f"{name}@{self.digest}")
                if self.tag:
                    forms.append(f"{name}:{self.tag}@{self.digest}")
        return tuple(forms)
