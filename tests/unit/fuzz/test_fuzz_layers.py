"""Layer blobs come from registries slimguard does not trust: whatever bytes a blob holds (a tar with hostile
headers, a tar cut or flipped anywhere, gzip or zstd around it, or noise), the walker returns a LayerContent
or refuses with an InspectionError naming a reason, and never lets another exception out."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import zstandard
from hypothesis import example, given
from hypothesis import strategies as st

from slimguard.core.errors import InspectionError
from slimguard.core.facts.content import LayerContent
from slimguard.layers.walker import LayerLimits, walk_layer

REASONS = {"LayerDigestMismatch", "LayerTooLarge", "TooManyLayerEntries", "GarbledLayer", "UnsafeLayerPath"}
SMALL = LayerLimits(max_uncompressed_bytes=1 << 20, max_entries=200, max_database_bytes=4096)

name_parts = st.sampled_from(
    ["usr", "bin", "gcc", "..", ".", "", "var/lib/dpkg/status", "var/lib/dpkg/status.d", ".wh.x", ".wh..wh..opq"]
)
names = st.one_of(
    st.lists(name_parts, min_size=1, max_size=5).map("/".join),
    st.text(min_size=1, max_size=120),
    st.just("/etc/passwd"),
    st.just("a" * 300),  # longer than ustar's 100: a GNU long name or a pax header
)
members = st.fixed_dictionaries(
    {
        "name": names,
        "type": st.sampled_from(
            [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, b"Z"]
        ),
        "size": st.integers(0, 3000),
        "mode": st.integers(0, 0o7777),
        "linkname": names,
    }
)


def tar_of(entries: list[dict[str, object]], tar_format: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format) as archive:
        for entry in entries:
            info = tarfile.TarInfo(str(entry["name"]))
            info.type = entry["type"]  # type: ignore[assignment]
            info.mode = int(entry["mode"])  # type: ignore[call-overload]
            info.linkname = str(entry["linkname"])
            data = b"x" * int(entry["size"]) if info.type == tarfile.REGTYPE else b""  # type: ignore[call-overload]
            info.size = len(data)
            try:
                archive.addfile(info, io.BytesIO(data))
            except (ValueError, UnicodeError):  # a name the format cannot hold: the writer's limit, not ours
                continue
    return out.getvalue()


def damaged(blob: bytes, cuts: list[tuple[int, int]], truncate_at: int | None) -> bytes:
    data = bytearray(blob)
    for position, value in cuts:
        if data:
            data[position % len(data)] = value
    return bytes(data[:truncate_at] if truncate_at is not None else data)


def digest_of(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def walked(blob: bytes, *, digest: str | None = None) -> LayerContent | InspectionError:
    chunks = [blob[i : i + 997] for i in range(0, len(blob), 997)] or [b""]
    try:
        return walk_layer(chunks, digest=digest or digest_of(blob), media_type="fuzzed", limits=SMALL)
    except InspectionError as error:
        refused = error
    assert refused.reason in REASONS, refused.reason
    assert str(refused).startswith("layer sha256:")
    return refused


@given(
    entries=st.lists(members, max_size=12),
    tar_format=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    compression=st.sampled_from(["none", "gzip", "zstd"]),
    cuts=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=4),
    truncate_at=st.none() | st.integers(0, 1 << 14),
)
def test_any_tar_compressed_any_way_and_damaged_anywhere_is_read_or_refused_with_a_reason(
    entries: list[dict[str, object]],
    tar_format: int,
    compression: str,
    cuts: list[tuple[int, int]],
    truncate_at: int | None,
) -> None:
    blob = tar_of(entries, tar_format)
    if compression == "gzip":
        blob = gzip.compress(blob, mtime=0)
    elif compression == "zstd":
        blob = zstandard.ZstdCompressor().compress(blob)
    result = walked(damaged(blob, cuts, truncate_at))
    if isinstance(result, LayerContent):
        for entry in result.entries:
            assert not entry.path.startswith("/")
            assert ".." not in entry.path.split("/"), entry.path


@given(st.binary(max_size=4096))
@example(b"\x1f\x8b")  # a gzip magic and nothing else
@example(b"\x28\xb5\x2f\xfd")  # a zstd magic and nothing else
@example(b"\0" * 1024)  # the end-of-archive marker alone: an empty layer
def test_noise_is_read_or_refused_with_a_reason(blob: bytes) -> None:
    walked(blob)


@given(st.binary(min_size=1, max_size=512))
def test_bytes_that_do_not_hash_to_the_digest_are_never_read_as_that_layer(blob: bytes) -> None:
    result = walked(blob, digest="sha256:" + "0" * 64)
    assert isinstance(result, InspectionError)
