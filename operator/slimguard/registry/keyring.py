"""The kubelet's keyring, as k8s.io/kubernetes v1.36 ``pkg/credentialprovider/keyring.go`` has it: which of the
credentials keyed by location patterns an image gets, and in which order.

A pattern is ``host[:port][/path]``; the host may hold globs (``*.dkr.ecr.*.amazonaws.com``), one per dot-separated
label, matched as Go's ``filepath.Match`` matches; a port must be the image's port; a path must be a prefix of the
image's path (a plain string prefix, as the kubelet compares them). The kubelet uses these rules for a credential
provider's ``matchImages`` and for the keys of the ``auth`` map its answer holds; the same code here does both.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from slimguard.registry.credentials import Credential

_HOST = frozenset(string.ascii_letters + string.digits + "-_.~!$&'()*+,;=:[]<>\"")
"""What Go's URL parser lets a host hold (``shouldEscape`` in host mode); it refuses the rest, ``%`` included here."""
DEFAULT_REGISTRY_KEY = "index.docker.io"
"""The key whose credentials serve Docker Hub images when no key matches (the kubelet's ``defaultRegistryHost``)."""


class InvalidPattern(ValueError):
    """A location the kubelet's URL parser refuses (``ParseSchemelessURL``)."""


@dataclass(frozen=True)
class Location:
    """A schemeless URL as Go's ``url.Parse("https://" + text)`` splits it: ``host[:port]`` and the path."""

    host: str
    path: str

    @classmethod
    def parse(cls, text: str) -> Location:
        """Go's ``url.Parse("https://" + text)``, for what the kubelet reads of it: the host (userinfo dropped)
        and the path, the query and fragment cut off (so ``?`` is no glob there: it starts a query). Refused as
        Go refuses: a control character, a port that is not digits, a character no host may hold (``^``, a
        space), an unclosed ``[``."""
        if any(ord(character) < 0x20 or character == "\x7f" for character in text):
            raise InvalidPattern(f"{text!r} holds a control character")
        rest = text.partition("#")[0].partition("?")[0]
        authority, slash, path = rest.partition("/")
        host = authority.rpartition("@")[2]
        if host.startswith("["):
            end = host.find("]")
            if end == -1:
                raise InvalidPattern(f"{text!r}: missing ']' in the host")
            port = host[end + 1 :]
        else:
            colon = host.rfind(":")
            port = host[colon:] if colon != -1 else ""
        if port and not ((port[0] == ":" and port[1:].isdigit()) or port == ":"):
            raise InvalidPattern(f"{text!r}: the port {port[1:]!r} is not a number (globs are for host labels only)")
        if bad := sorted({character for character in host if ord(character) < 0x80 and character not in _HOST}):
            raise InvalidPattern(f"{text!r}: a host cannot hold {''.join(bad)!r}")
        return cls(host=host, path=slash + path)

    def labels_and_port(self) -> tuple[list[str], str]:
        """Go's ``SplitURL``: the host's dot-separated labels, and the port ("" when none can be split off)."""
        host, port = self.host, ""
        if host.startswith("["):
            end = host.find("]")
            if end != -1 and host[end + 1 : end + 2] == ":":
                host, port = host[1:end], host[end + 2 :]
        elif host.count(":") == 1:
            host, port = host.split(":")
        return host.split("."), port


def urls_match(pattern: str, target: str) -> bool:
    """Whether ``target`` (an image name, ``registry/repository``) matches ``pattern``: the kubelet's
    ``URLsMatchStr``. An unparsable pattern or target matches nothing."""
    try:
        glob, image = Location.parse(pattern), Location.parse(target)
    except InvalidPattern:
        return False
    glob_labels, glob_port = glob.labels_and_port()
    image_labels, image_port = image.labels_and_port()
    if glob_port != image_port or len(glob_labels) != len(image_labels):
        return False
    if not image.path.startswith(glob.path):
        return False
    return all(_label_matches(g, label) for g, label in zip(glob_labels, image_labels, strict=True))


def _label_matches(glob: str, label: str) -> bool:
    compiled = _go_glob(glob)
    return compiled is not None and compiled.fullmatch(label) is not None


@functools.lru_cache(maxsize=1024)
def _go_glob(pattern: str) -> re.Pattern[str] | None:
    """Go's ``path/filepath.Match`` pattern as a regular expression; None for a pattern Go calls malformed
    (``ErrBadPattern``: an unclosed or empty class, a trailing backslash), which matches nothing.

    ``*`` is any run of characters but ``/``, ``?`` one such character, ``[...]`` a class (``[^...]`` negated,
    ``a-z`` ranges), ``\\`` escapes the next character. (``fnmatch`` differs: ``[!...]`` negates there.)
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        character = pattern[i]
        if character == "*":
            out.append("[^/]*")
        elif character == "?":
            out.append("[^/]")
        elif character == "\\":
            if i + 1 == len(pattern):
                return None
            i += 1
            out.append(re.escape(pattern[i]))
        elif character == "[":
            parsed = _go_class(pattern, i + 1)
            if parsed is None:
                return None
            text, i = parsed
            out.append(text)
            continue
        else:
            out.append(re.escape(character))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _go_class(pattern: str, start: int) -> tuple[str, int] | None:
    """The class starting after ``[`` at ``start``: its regular expression and the index after its ``]``."""
    i = start
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    while True:
        if i >= len(pattern):
            return None
        if pattern[i] == "]" and ranges:
            break
        low, i = _class_char(pattern, i)
        if low is None:
            return None
        high = low
        if i < len(pattern) and pattern[i] == "-":
            upper, i = _class_char(pattern, i + 1)
            if upper is None or upper < low:
                return None
            high = upper
        ranges.append(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}")
    body = "".join(ranges)
    return (f"[^/{body}]" if negated else f"[{body}]"), i + 1


def _class_char(pattern: str, i: int) -> tuple[str | None, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        return None, i
    if pattern[i] == "\\":
        if i + 1 >= len(pattern):
            return None, i
        return pattern[i + 1], i + 2
    return pattern[i], i + 1


def keyring_key(location: str) -> str | None:
    """The key the kubelet files a location's credentials under (``BasicDockerKeyring.Add``): without a scheme,
    a ``/v1/`` or ``/v2/`` path prefix dropped; None for a location it ignores as invalid."""
    text = location
    for scheme in ("https://", "http://"):
        text = text.removeprefix(scheme) if location.startswith(scheme) else text
    try:
        parsed = Location.parse(text)
    except InvalidPattern:
        return None
    path = parsed.path
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return parsed.host + path if path and path != "/" else parsed.host


@dataclass(frozen=True)
class AuthEntry:
    """One ``auth`` entry of a credential provider's answer: a location pattern and what to send there."""

    pattern: str
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password, not even in a debug log
        return f"AuthEntry(pattern={self.pattern!r}, username={self.username!r})"


def keyring_lookup(answers: Sequence[tuple[str, Iterable[AuthEntry]]], image: str) -> list[Credential]:
    """The credentials the kubelet would try for ``image`` (``registry/repository``), in its order, from the
    answers of the providers asked for it ((provider name, entries), in the configuration's order).

    All answers go into one keyring: its keys sorted in reverse (so a longer key comes before its prefix, and a
    plain one before a glob with the same start), the providers' credentials for one key in the providers'
    order. When no key matches a Docker Hub image, an ``index.docker.io`` key serves it.
    """
    filed: dict[str, list[Credential]] = {}
    for provider, entries in answers:
        for entry in entries:
            key = keyring_key(entry.pattern)
            if key is None:
                continue
            filed.setdefault(key, []).append(
                Credential(
                    location=key,
                    username=entry.username,
                    password=entry.password,
                    source=f"credential provider {provider}",
                )
            )
    found = [credential for key in sorted(filed, reverse=True) if urls_match(key, image) for credential in filed[key]]
    if not found and _is_docker_hub(image):
        return list(filed.get(DEFAULT_REGISTRY_KEY, ()))
    return found


def _is_docker_hub(image: str) -> bool:
    """The kubelet's ``isDefaultRegistryMatch``."""
    first, slash, _ = image.partition("/")
    if not first:
        return False
    if not slash or first in ("docker.io", "index.docker.io"):
        return True
    return not any(character in first for character in ".:")


def provider_matches(match_images: Iterable[str], image: str) -> bool:
    """Whether a provider with these ``matchImages`` is asked for ``image`` (the kubelet's ``isImageAllowed``)."""
    return any(urls_match(pattern, image) for pattern in match_images)
