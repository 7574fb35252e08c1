"""OS package databases → the names of the installed packages. Pure: bytes in, names out.

- dpkg: ``var/lib/dpkg/status`` and distroless' ``var/lib/dpkg/status.d/*`` (one stanza per file); an entry
  counts when its ``Status`` says the package is installed (``install ok installed``, also ``hold ok
  installed``); entries removed with their configuration kept (``deinstall ok config-files``), half-installed
  or not-installed ones do not. status.d stanzas carry no Status in some distroless images: there the file
  itself says the package is installed.
- apk: ``lib/apk/db/installed``, one stanza per package, ``P:`` its name.
- rpm: the sqlite database (``rpmdb.sqlite``, rpm ≥ 4.16, Fedora 33+, RHEL 9, SUSE) is read with the
  standard library from memory; each row of ``Packages`` is a package, its name read from the rpm header.
  BerkeleyDB (``Packages``, RHEL ≤ 8) and ndb (``Packages.db``) have no reader here: their count is unknown,
  never zero.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from slimguard.core.facts.content import PackageManager

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
RPM_SQLITE = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
RPM_BERKELEY = ("var/lib/rpm/Packages", "usr/lib/sysimage/rpm/Packages")
RPM_NDB = ("var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages.db")
_RPM_TAG_NAME = 1000
_RPM_STRING = 6


class UnreadableDatabase(ValueError):
    """A package database that is there but cannot be read; the message says why (it becomes the reason)."""


@dataclass(frozen=True, slots=True)
class DatabaseFile:
    """Which manager a database path belongs to, and whether slimguard can read it."""

    manager: PackageManager
    readable: bool = True


def database_of(path: str) -> DatabaseFile | None:
    """What ``path`` is, if it is a package database of the final file system."""
    if path == DPKG_STATUS or (path.startswith(DPKG_STATUS_D) and "/" not in path[len(DPKG_STATUS_D) :]):
        return DatabaseFile(PackageManager.DPKG)
    if path == APK_INSTALLED:
        return DatabaseFile(PackageManager.APK)
    if path in RPM_SQLITE:
        return DatabaseFile(PackageManager.RPM)
    if path in RPM_BERKELEY or path in RPM_NDB:
        return DatabaseFile(PackageManager.RPM, readable=False)
    return None


def unreadable_reason(path: str) -> str:
    kind = "BerkeleyDB" if path in RPM_BERKELEY else "ndb"
    return (
        f"the rpm database /{path} is in {kind} format, which slimguard cannot read "
        "(rpm 4.16+ writes rpmdb.sqlite, which it can)"
    )


def installed_names(path: str, content: bytes) -> tuple[str, ...]:
    """The installed packages ``content`` (the file at ``path``) lists, in its order."""
    database = database_of(path)
    if database is None:
        return ()
    if database.manager is PackageManager.DPKG:
        return tuple(_dpkg_installed(content, status_required=path == DPKG_STATUS))
    if database.manager is PackageManager.APK:
        return tuple(_apk_installed(content))
    if not database.readable:
        raise UnreadableDatabase(unreadable_reason(path))
    return rpm_sqlite_names(content, path)


def _stanzas(content: bytes) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    for raw in content.decode("utf-8", errors="replace").splitlines():
        if not raw.strip():
            if fields:
                yield fields
            fields = {}
        elif raw[0] in " \t":
            continue  # a continuation line (Description, Conffiles): nothing counted is in them
        else:
            key, separator, value = raw.partition(":")
            if separator:
                fields[key.strip()] = value.strip()
    if fields:
        yield fields


def _dpkg_installed(content: bytes, *, status_required: bool) -> Iterator[str]:
    for stanza in _stanzas(content):
        name = stanza.get("Package")
        if not name:
            continue  # status.d also holds *.md5sums files: no stanza, no package
        status = stanza.get("Status")
        if status is None:
            if status_required:
                continue
        elif status.split()[-1:] != ["installed"]:
            continue
        yield name


def _apk_installed(content: bytes) -> Iterator[str]:
    for raw in content.decode("utf-8", errors="replace").splitlines():
        if raw.startswith("P:") and raw[2:].strip():
            yield raw[2:].strip()


def rpm_sqlite_names(content: bytes, path: str = RPM_SQLITE[0]) -> tuple[str, ...]:
    """Package names from an rpmdb.sqlite image, read in memory (never written anywhere)."""
    image = bytearray(content)
    if image[:16] != b"SQLite format 3\x00":
        raise UnreadableDatabase(f"/{path} is not an sqlite database")
    if len(image) > 19 and image[18] == 2:  # WAL mode: read the main file as it is (a built image is checkpointed)
        image[18] = image[19] = 1
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(bytes(image))
        rows = connection.execute("SELECT blob FROM Packages").fetchall()
    except sqlite3.Error as error:
        raise UnreadableDatabase(f"/{path} cannot be read as an rpm database ({error})") from None
    finally:
        connection.close()
    names = []
    for (blob,) in rows:
        name = _rpm_header_name(blob) if isinstance(blob, bytes) else None
        names.append(name or "(unnamed rpm)")
    return tuple(names)


def _rpm_header_name(blob: bytes) -> str | None:
    """The NAME tag of an rpm header blob: index count and data size, 16-byte index entries, then the data."""
    if len(blob) < 8:
        return None
    entries, data_size = struct.unpack(">II", blob[:8])
    data_start = 8 + 16 * entries
    if data_start + data_size > len(blob):
        return None
    for number in range(entries):
        tag, kind, offset, _count = struct.unpack(">IIII", blob[8 + 16 * number : 24 + 16 * number])
        if tag == _RPM_TAG_NAME and kind == _RPM_STRING and offset < data_size:
            start = data_start + offset
            end = blob.find(b"\0", start, data_start + data_size)
            return blob[start : end if end >= 0 else data_start + data_size].decode("utf-8", errors="replace")
    return None
