"""Content analysis: the final file system, its packages and tools, and dive's efficiency and wasted bytes.

The dive figures are derived by hand from dive v0.13.1's code (dive/filetree/efficiency.go: per path over
the *leaves* of each layer's tree, a file's whiteout weighs 0, a directory's whiteout the sum of every node
under it in the layers below; efficiency = Σ smallest / Σ cumulative; dive/image/image.go: wasted bytes =
Σ cumulative of the paths seen in 2+ layers).
"""

from __future__ import annotations

import sqlite3
import struct

import pytest

from slimguard.core.facts.content import ContentFacts, EntryKind, FoundTool, LayerContent, LayerEntry, PackageManager
from slimguard.core.facts.content_analysis import ContentMismatch, analyse_content, dive_efficiency
from slimguard.core.facts.image_facts import Layer
from slimguard.core.facts.packages import installed_names, rpm_sqlite_names

from .builders import MiB, digest


def d(path: str) -> LayerEntry:
    return LayerEntry(path, 0, EntryKind.DIRECTORY)


def f(path: str, size: int = 0, *, x: bool = False) -> LayerEntry:
    return LayerEntry(path, size, EntryKind.FILE, executable=x)


def sym(path: str, target: str) -> LayerEntry:
    return LayerEntry(path, 0, EntryKind.SYMLINK, link_target=target)


def wh(path: str) -> LayerEntry:
    return LayerEntry(path, 0, EntryKind.WHITEOUT)


def opq(path: str) -> LayerEntry:
    return LayerEntry(path, 0, EntryKind.OPAQUE)


def content(seed: str, *entries: LayerEntry, databases: dict[str, bytes] | None = None) -> LayerContent:
    return LayerContent(
        digest=digest(seed),
        entries=entries,
        uncompressed_bytes=sum(e.size for e in entries),
        package_databases=databases or {},
    )


def layer_of(item: LayerContent) -> Layer:
    return Layer(digest=item.digest, size=1, media_type="application/vnd.oci.image.layer.v1.tar+gzip")


def analyse(*contents: LayerContent) -> ContentFacts:
    return analyse_content([layer_of(c) for c in contents], contents)


BASE = content("base", d("bin"), f("bin/sh", 1000, x=True), d("tmp"))


# --- dive's numbers ------------------------------------------------------------------------------------------


def test_a_50_mib_file_added_then_deleted_is_50_mib_wasted_as_dive_counts_it() -> None:
    big = 50 * MiB
    added = content("add", d("tmp"), f("tmp/big", big))
    deleted = content("rm", d("tmp"), wh("tmp/big"))
    # Leaves: /bin/sh 1000 (layer 0), /tmp 0 (layer 0, an empty directory there), /tmp/big 50 MiB (layer 1)
    # and its whiteout (layer 2), which weighs 0 because what it deletes is a file.
    # /tmp/big: cumulative 52,428,800, smallest 0, seen twice → wasted.
    facts = analyse(BASE, added, deleted)
    assert facts.wasted_bytes == 52_428_800
    assert facts.efficiency == pytest.approx(1000 / (1000 + 52_428_800))
    assert facts.file_count == 3  # bin, bin/sh, tmp


def test_a_file_written_twice_wastes_both_copies() -> None:
    first = content("one", d("etc"), f("etc/app.conf", 100))
    second = content("two", d("etc"), f("etc/app.conf", 300))
    # /etc/app.conf: cumulative 400, smallest 100; /etc is not a leaf in either layer.
    assert dive_efficiency([first, second]) == (0.25, 400)


def test_a_deleted_directory_weighs_what_it_held_and_is_not_waste_in_dive() -> None:
    filled = content("fill", d("opt"), d("opt/data"), f("opt/data/a", 10), f("opt/data/b", 20))
    removed = content("drop", d("opt"), wh("opt/data"))
    # /opt/data is not a leaf in layer 1, so only its whiteout (layer 2) is seen: 30 bytes once, not waste.
    assert dive_efficiency([BASE, filled, removed]) == (1.0, 0)


def test_a_whiteout_of_a_path_no_lower_layer_has_ends_that_layers_count_as_in_dive() -> None:
    first = content("a", f("a", 10))
    # ".wh.nothing" sorts before "a": dive records /nothing (cumulative 0, smallest -1), then GetNode fails
    # and the rest of the layer is not visited, so the rewrite of /a is never counted. Σ smallest = 10 - 1,
    # Σ cumulative = 10: dive v0.13.1 prints "efficiency: 90.0000 %" and "wastedBytes: 0" for this image.
    second = content("b", wh("nothing"), f("a", 30))
    assert dive_efficiency([first, second]) == (0.9, 0)


def test_dive_ignores_opaque_markers() -> None:
    first = content("a", d("d"), f("d/x", 10))
    second = content("b", d("d"), opq("d"), f("d/y", 5))
    assert dive_efficiency([first, second]) == (1.0, 0)


def test_an_empty_image_is_fully_efficient() -> None:
    assert dive_efficiency([]) == (1.0, 0)
    assert dive_efficiency([content("dirs", d("a"), d("b"))]) == (1.0, 0)


def test_the_same_layer_twice_counts_every_path_twice() -> None:
    twice = content("x", f("x", 7))
    assert dive_efficiency([twice, twice]) == (0.5, 14)


# --- the final file system ------------------------------------------------------------------------------


def test_whiteouts_and_opaque_directories_hide_lower_layers_only() -> None:
    lower = content("l", d("app"), f("app/old", x=True), d("cache"), f("cache/x", x=True))
    upper = content("u", opq("app"), f("app/new", x=True), wh("cache"), d("cache"), f("cache/y", x=True))
    facts = analyse(lower, upper)
    assert facts.executables == (("app/new", 1), ("cache/y", 1))


def test_symlinks_are_executables_when_they_lead_to_one_through_directory_links() -> None:
    merged_usr = content(
        "usr",
        sym("bin", "usr/bin"),
        d("usr"),
        d("usr/bin"),
        f("usr/bin/dash", x=True),
        sym("usr/bin/sh", "dash"),
        sym("usr/bin/cc", "/etc/alternatives/cc"),
        d("etc"),
        d("etc/alternatives"),
        sym("etc/alternatives/cc", "/bin/gcc-12"),
        f("usr/bin/gcc-12", x=True),
        sym("usr/bin/dangling", "nowhere"),
        sym("usr/bin/loop", "loop"),
        f("usr/lib/libc.so.6"),
        sym("usr/bin/notexec", "../lib/libc.so.6"),
    )
    executables = dict(analyse(merged_usr).executables)
    assert set(executables) == {"etc/alternatives/cc", "usr/bin/dash", "usr/bin/sh", "usr/bin/cc", "usr/bin/gcc-12"}


def test_a_file_replacing_a_directory_removes_its_contents() -> None:
    lower = content("l", d("opt"), d("opt/tool"), f("opt/tool/run", x=True))
    upper = content("u", f("opt/tool", x=False))
    assert analyse(lower, upper).executables == ()


def test_contents_that_are_not_the_images_layers_are_refused() -> None:
    with pytest.raises(ContentMismatch):
        analyse_content([layer_of(BASE)], [content("other")])


# --- packages --------------------------------------------------------------------------------------------

STATUS = b"""Package: libc6
Status: install ok installed
Architecture: amd64
Description: GNU C Library
 continuation: Status: deinstall ok config-files

Package: gcc-12
Status: install ok installed

Package: oldthing
Status: deinstall ok config-files

Package: broken
Status: install ok half-installed

Package: held
Status: hold ok installed
"""


def test_dpkg_counts_installed_entries_only() -> None:
    assert installed_names("var/lib/dpkg/status", STATUS) == ("libc6", "gcc-12", "held")


def test_distroless_status_d_files_count_without_a_status_and_md5sums_are_not_packages() -> None:
    assert installed_names("var/lib/dpkg/status.d/base", b"Package: base-files\nVersion: 12\n") == ("base-files",)
    assert installed_names("var/lib/dpkg/status.d/base.md5sums", b"abc  etc/debian_version\n") == ()


def test_apk_counts_every_package_stanza() -> None:
    installed = b"C:Q1abc\nP:musl\nV:1.2\n\nC:Q1def\nP:busybox\nV:1.36\n"
    assert installed_names("lib/apk/db/installed", installed) == ("musl", "busybox")


def rpm_header(name: str) -> bytes:
    data = name.encode() + b"\0"
    return struct.pack(">II", 1, len(data)) + struct.pack(">IIII", 1000, 6, 0, 1) + data


def rpmdb_sqlite(*names: str) -> bytes:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(rpm_header(n),) for n in names])
    connection.commit()
    image = connection.serialize()
    connection.close()
    return image


def test_rpm_sqlite_names_come_from_the_headers() -> None:
    assert rpm_sqlite_names(rpmdb_sqlite("bash", "gcc", "rpm")) == ("bash", "gcc", "rpm")


def test_the_final_database_counts_and_the_layer_that_installed_each_package_is_named() -> None:
    base_status = b"Package: libc6\nStatus: install ok installed\n"
    build_status = base_status + b"".join(
        b"\nPackage: %s\nStatus: install ok installed\n" % name for name in (b"gcc-12", b"make")
    )
    base = content("b", f("var/lib/dpkg/status"), databases={"var/lib/dpkg/status": base_status})
    build = content(
        "i", f("var/lib/dpkg/status"), f("usr/bin/gcc-12", x=True), databases={"var/lib/dpkg/status": build_status}
    )
    facts = analyse(base, build)
    assert facts.packages.count == 3
    assert facts.packages.managers == (PackageManager.DPKG,)
    assert FoundTool("compilers", "gcc-12", by_package=True, layer_index=1) in facts.tools
    assert FoundTool("compilers", "make", by_package=True, layer_index=1) in facts.tools
    assert FoundTool("compilers", "usr/bin/gcc-12", by_package=False, layer_index=1) in facts.tools
    assert not any(tool.what == "libc6" for tool in facts.tools)


def test_a_deleted_database_counts_nothing() -> None:
    base = content("b", f("var/lib/dpkg/status"), databases={"var/lib/dpkg/status": STATUS})
    assert analyse(base, content("rm", wh("var/lib/dpkg/status"))).packages.count == 0


def test_an_image_without_a_database_has_zero_packages_from_no_manager() -> None:
    packages = analyse(BASE).packages
    assert (packages.count, packages.managers) == (0, ())


def test_berkeley_db_rpm_is_unknown_with_a_reason_never_zero() -> None:
    packages = analyse(content("rhel8", f("var/lib/rpm/Packages", 4096))).packages
    assert packages.count is None
    assert packages.managers == (PackageManager.RPM,)
    assert "BerkeleyDB" in (packages.unknown_reason or "")


def test_an_oversized_or_garbled_database_is_unknown() -> None:
    oversized = LayerContent(
        digest=digest("big"),
        entries=(f("var/lib/rpm/rpmdb.sqlite", 10**9),),
        uncompressed_bytes=10**9,
        oversized_databases=("var/lib/rpm/rpmdb.sqlite",),
    )
    assert "larger than" in (analyse(oversized).packages.unknown_reason or "")
    garbled = content("g", f("var/lib/rpm/rpmdb.sqlite"), databases={"var/lib/rpm/rpmdb.sqlite": b"nope"})
    assert analyse(garbled).packages.count is None


def test_the_sqlite_rpmdb_is_counted() -> None:
    db = rpmdb_sqlite("bash", "gcc", "git")
    facts = analyse(content("fedora", f("var/lib/rpm/rpmdb.sqlite"), databases={"var/lib/rpm/rpmdb.sqlite": db}))
    assert facts.packages.count == 3
    assert {tool.what for tool in facts.tools} == {"bash", "gcc", "git"}


# --- tools -----------------------------------------------------------------------------------------------


def test_tools_are_found_by_name_on_a_bin_path_only() -> None:
    image = content(
        "t",
        f("usr/bin/make", x=True),
        f("usr/local/bin/pip3.11", x=True),
        f("usr/share/doc/make", x=True),  # not on a bin path
        f("usr/bin/curl", x=False),  # not executable
        f("bin/bash", x=True),
        f("usr/bin/git", x=True),
        f("usr/bin/wget", x=True),
    )
    found = {(tool.category, tool.what) for tool in analyse(image).tools}
    assert found == {
        ("compilers", "usr/bin/make"),
        ("packageManagers", "usr/local/bin/pip3.11"),
        ("shells", "bin/bash"),
        ("vcs", "usr/bin/git"),
        ("downloaders", "usr/bin/wget"),
    }


def test_gcc_base_and_libgcc_packages_are_not_compilers() -> None:
    status = b"".join(
        b"Package: %s\nStatus: install ok installed\n\n" % name for name in (b"gcc-12-base", b"libgcc-s1", b"cpp-12")
    )
    facts = analyse(content("slim", f("var/lib/dpkg/status"), databases={"var/lib/dpkg/status": status}))
    assert [tool for tool in facts.tools if tool.category == "compilers"] == []
