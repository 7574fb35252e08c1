"""The layer walker: one blob streamed into its entries, with every hostile shape refused by a named reason."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import tarfile
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest
import zstandard

from slimguard.core.errors import InspectionError
from slimguard.core.facts.content import EntryKind, LayerEntry
from slimguard.layers.walker import LayerLimits, LayerRefused, walk_layer, walk_layer_stream

Member = tuple[str, bytes | None, int]  # name, content (None: a directory), mode


def tar_of(*members: tarfile.TarInfo | Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
                continue
            name, content, mode = member
            info = tarfile.TarInfo(name)
            info.mode = mode
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return out.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE, mode: int = 0o777) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = target
    return info


def digest_of(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def chunked(blob: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


def walk(blob: bytes, limits: LayerLimits | None = None, *, digest: str | None = None) -> list[LayerEntry]:
    return list(walk_layer(chunked(blob), digest=digest or digest_of(blob), limits=limits).entries)


def refusal(blob: bytes, limits: LayerLimits | None = None, *, digest: str | None = None) -> InspectionError:
    with pytest.raises(InspectionError) as raised:
        walk(blob, limits, digest=digest)
    return raised.value


BASIC = tar_of(
    ("usr/", None, 0o755),
    ("usr/bin/", None, 0o755),
    ("usr/bin/gcc-12", b"\x7fELF" + b"x" * 100, 0o755),
    ("etc/motd", b"hello\n", 0o644),
    link("usr/bin/gcc", "gcc-12"),
)


@pytest.mark.parametrize(
    "compress",
    [
        pytest.param(lambda tar: tar, id="plain tar"),
        pytest.param(gzip.compress, id="gzip"),
        pytest.param(lambda tar: zstandard.ZstdCompressor().compress(tar), id="zstd"),
        pytest.param(lambda tar: gzip.compress(tar[:1024]) + gzip.compress(tar[1024:]), id="multi-member gzip"),
    ],
)
def test_every_compression_yields_the_same_entries(compress: object) -> None:
    blob = compress(BASIC)  # type: ignore[operator]
    content = walk_layer(chunked(blob), digest=digest_of(blob))
    assert content.entries == (
        LayerEntry("usr", 0, EntryKind.DIRECTORY),
        LayerEntry("usr/bin", 0, EntryKind.DIRECTORY),
        LayerEntry("usr/bin/gcc-12", 104, EntryKind.FILE, executable=True),
        LayerEntry("etc/motd", 6, EntryKind.FILE, executable=False),
        LayerEntry("usr/bin/gcc", 0, EntryKind.SYMLINK, link_target="gcc-12"),
    )
    assert content.uncompressed_bytes == len(BASIC)
    assert content.digest == digest_of(blob)


def test_whiteouts_name_what_they_delete_and_opaque_markers_their_directory() -> None:
    entries = walk(tar_of(("var/cache/.wh.apt", b"", 0o644), ("opt/app/.wh..wh..opq", b"", 0o644)))
    assert entries == [
        LayerEntry("var/cache/apt", 0, EntryKind.WHITEOUT),
        LayerEntry("opt/app", 0, EntryKind.OPAQUE),
    ]


def test_dot_slash_names_and_the_root_entry_are_normalised() -> None:
    entries = walk(tar_of(("./", None, 0o755), ("./etc/", None, 0o755), ("./etc/hosts", b"x", 0o644)))
    assert [entry.path for entry in entries] == ["etc", "etc/hosts"]


def test_pax_long_names_and_gnu_long_names_are_read_whole() -> None:
    long_name = "opt/" + "d" * 150 + "/" + "f" * 120
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        entries = walk(tar_of((long_name, b"data", 0o644), link("opt/l", "x" * 200), fmt=fmt))
        assert entries[0].path == long_name
        assert entries[1].link_target == "x" * 200


def test_hardlinks_keep_their_target_and_mode() -> None:
    hardlink = link("usr/bin/python3", "usr/bin/python3.11", b"1", 0o755)
    entries = walk(tar_of(("usr/bin/python3.11", b"elf", 0o755), hardlink))
    assert entries[1] == LayerEntry(
        "usr/bin/python3", 0, EntryKind.HARDLINK, executable=True, link_target="usr/bin/python3.11"
    )


def test_package_databases_are_kept_and_other_contents_skipped() -> None:
    status = b"Package: gcc-12\nStatus: install ok installed\n\n"
    content = walk_layer(
        chunked(
            blob := tar_of(
                ("var/lib/dpkg/status", status, 0o644),
                ("var/lib/dpkg/status.d/base", b"Package: base-files\n", 0o644),
                ("var/lib/dpkg/status.d/sub/deeper", b"no", 0o644),
                ("var/lib/dpkg/status-old", b"old", 0o644),
                ("lib/apk/db/installed", b"P:musl\n", 0o644),
            )
        ),
        digest=digest_of(blob),
    )
    assert dict(content.package_databases) == {
        "var/lib/dpkg/status": status,
        "var/lib/dpkg/status.d/base": b"Package: base-files\n",
        "lib/apk/db/installed": b"P:musl\n",
    }


def test_a_package_database_above_the_cap_is_named_not_read() -> None:
    blob = tar_of(("var/lib/rpm/rpmdb.sqlite", b"s" * 5000, 0o644))
    content = walk_layer([blob], digest=digest_of(blob), limits=LayerLimits(max_database_bytes=4096))
    assert content.package_databases == {}
    assert content.oversized_databases == ("var/lib/rpm/rpmdb.sqlite",)


def test_a_decompression_bomb_is_refused_at_the_cap_without_unpacking_it() -> None:
    # 64 MiB of zeros in a gzip of ~64 KiB; the cap is 1 MiB, so the walker stops long before the end.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = compressor.compress(b"\0" * (64 * 1024 * 1024)) + compressor.flush()
    error = refusal(bomb, LayerLimits(max_uncompressed_bytes=1024 * 1024))
    assert error.reason == "LayerTooLarge"
    assert "1 MiB" in str(error)


def test_a_zstd_bomb_is_refused_too() -> None:
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (32 * 1024 * 1024))
    assert refusal(bomb, LayerLimits(max_uncompressed_bytes=1024 * 1024)).reason == "LayerTooLarge"


def test_too_many_entries_are_refused_by_count() -> None:
    blob = tar_of(*((f"f{n}", b"", 0o644) for n in range(11)))
    error = refusal(blob, LayerLimits(max_entries=10))
    assert error.reason == "TooManyLayerEntries"
    assert "10 entries" in str(error)


@pytest.mark.parametrize("name", ["../etc/passwd", "usr/../../etc/shadow", "/etc/passwd"])
def test_entries_escaping_the_root_are_refused(name: str) -> None:
    error = refusal(tar_of((name, b"x", 0o644)))
    assert error.reason == "UnsafeLayerPath"
    assert name in str(error)


def test_a_hardlink_escaping_the_root_is_refused() -> None:
    assert refusal(tar_of(link("usr/bin/x", "../../etc/shadow", b"1"))).reason == "UnsafeLayerPath"


def test_a_symlink_pointing_anywhere_is_only_a_name() -> None:
    # Nothing is extracted, so an absolute or upward symlink target escapes nothing.
    assert walk(tar_of(link("etc/alt", "../../../x")))[0].link_target == "../../../x"


def test_inner_dotdot_that_stays_inside_is_resolved() -> None:
    assert walk(tar_of(("usr/lib/../bin/x", b"x", 0o755)))[0].path == "usr/bin/x"


@pytest.mark.parametrize(
    ("compress", "cut"),
    [
        pytest.param(gzip.compress, 0.5, id="gzip cut mid-stream"),
        pytest.param(gzip.compress, -4, id="gzip without its trailer"),
        pytest.param(lambda tar: zstandard.ZstdCompressor().compress(tar), 0.5, id="zstd cut mid-stream"),
        pytest.param(lambda tar: tar, 700, id="tar cut inside a file"),
        pytest.param(lambda tar: tar, 1200, id="tar cut inside a header"),
    ],
)
def test_truncated_streams_are_garbled(compress: object, cut: float) -> None:
    big = tar_of(("a", b"a" * 600, 0o644), ("b", bytes(range(256)) * 40, 0o644), ("c", b"c", 0o644))
    blob = compress(big)  # type: ignore[operator]
    end = int(len(blob) * cut) if isinstance(cut, float) else cut
    truncated = blob[:end]
    # Digest of the truncated bytes themselves: the stream, not the hash, must be what is refused.
    error = refusal(truncated, digest=digest_of(truncated))
    assert error.reason == "GarbledLayer"
    assert "truncated or garbled" in str(error)


def test_garbage_is_garbled() -> None:
    blob = b"this is not a tar at all" * 100
    assert refusal(blob).reason == "GarbledLayer"
    corrupt = bytearray(gzip.compress(BASIC))
    corrupt[30] ^= 0xFF
    assert refusal(bytes(corrupt)).reason == "GarbledLayer"


def test_a_garbage_header_in_the_middle_is_not_taken_for_the_end() -> None:
    good = tar_of(("a", b"a", 0o644), ("b", b"b", 0o644))
    broken = good[:1024] + b"\x01" * 512 + good[1536:]
    assert refusal(broken).reason == "GarbledLayer"


def test_bytes_that_do_not_hash_to_the_digest_are_refused() -> None:
    blob = gzip.compress(BASIC)
    error = refusal(blob, digest=digest_of(blob + b"other"))
    assert error.reason == "LayerDigestMismatch"
    assert digest_of(blob + b"other") in str(error)


def test_an_unknown_digest_algorithm_is_refused() -> None:
    assert refusal(BASIC, digest="md5:abc").reason == "GarbledLayer"


def test_an_empty_layer_has_no_entries() -> None:
    for blob in (tar_of(), gzip.compress(b"")):
        content = walk_layer([blob], digest=digest_of(blob))
        assert content.entries == ()


async def test_the_async_walk_reads_one_chunk_at_a_time_off_the_loop() -> None:
    blob = gzip.compress(BASIC)
    handed_out = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal handed_out
        for chunk in chunked(blob, 64):
            handed_out += 1
            yield chunk

    content = await walk_layer_stream(stream(), digest=digest_of(blob))
    assert len(content.entries) == 5
    assert handed_out == len(range(0, len(blob), 64))


async def test_the_async_walk_raises_the_same_errors() -> None:
    blob = gzip.compress(BASIC)

    async def stream() -> AsyncIterator[bytes]:
        yield blob
        await asyncio.sleep(0)

    with pytest.raises(InspectionError) as raised:
        await walk_layer_stream(stream(), digest=digest_of(b"x"))
    assert raised.value.reason == "LayerDigestMismatch"


def test_zero_padding_after_the_last_gzip_member_is_allowed_and_other_trailing_bytes_are_not() -> None:
    padded = gzip.compress(BASIC) + b"\0" * 700
    assert len(walk(padded)) == 5
    assert refusal(gzip.compress(BASIC) + b"trailing garbage").reason == "GarbledLayer"


def test_a_refusal_says_whether_the_refused_bytes_are_the_digests() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = compressor.compress(b"\0" * (8 * 1024 * 1024)) + compressor.flush()
    small = LayerLimits(max_uncompressed_bytes=1024 * 1024)
    genuine = refusal(bomb, small)
    assert isinstance(genuine, LayerRefused)
    assert genuine.verified  # the rest was hashed, not unpacked: the refusal can be kept by digest
    served_other = refusal(bomb, small, digest=digest_of(b"another blob"))
    assert isinstance(served_other, LayerRefused)
    assert not served_other.verified
