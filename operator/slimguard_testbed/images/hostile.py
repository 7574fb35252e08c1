"""Hostile layers: blobs a registry happily stores and serves, that no layer reader may trust.

- a gzip bomb: ~16 MB of gzip that inflates to 16 GiB of (valid) tar, whose entries are 1 GiB files of zeros;
- a tar whose entries escape the root with `../` (and one whose entries are absolute paths);
- a truncated gzip stream: a sound layer cut off halfway (its digest is the digest of what is stored);
- a layer whose bytes do not match its digest: pushed sound, then its bytes replaced in the registry's storage
  directory with another valid layer of the same length (distribution verifies digests on upload only).

Each sits on the busybox base, so a reader sees one sound layer before the hostile one. They are built in
memory in well under a second (the bomb is made of repeated deflate blocks, never by compressing 16 GiB).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from slimguard_testbed import oci
from slimguard_testbed.cache import cache_dir
from slimguard_testbed.images.recipe_cache import _pseudo_random
from slimguard_testbed.oci import SOURCE_DATE_EPOCH, Blob, History, Image, Layer

GIB = 1 << 30
BOMB_ENTRY_BYTES = 1 * GIB
BOMB_ENTRIES = 16
_ZERO_CHUNK = 1 << 20


# -- crc32 of long runs without reading them (zlib's crc32_combine, which Python's zlib does not expose) ----


def _gf2_times(matrix: list[int], vector: int) -> int:
    result = 0
    row = 0
    while vector:
        if vector & 1:
            result ^= matrix[row]
        vector >>= 1
        row += 1
    return result


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The crc32 of A+B from crc32(A), crc32(B) and len(B), as zlib's `crc32_combine` computes it."""
    if length2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)  # first pass: one zero byte
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = _gf2_square(even)
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


def crc32_of_zeros(length: int) -> int:
    """crc32 of `length` zero bytes, by doubling (a 1 GiB run costs ~30 combines, not 1 GiB of hashing)."""
    result, have = 0, 0
    piece, piece_length = zlib.crc32(bytes(_ZERO_CHUNK)), _ZERO_CHUNK
    whole, rest = divmod(length, _ZERO_CHUNK)
    while whole:
        if whole & 1:
            result = crc32_combine(result, piece, piece_length) if have else piece
            have += piece_length
        whole >>= 1
        if whole:
            piece = crc32_combine(piece, piece, piece_length)
            piece_length *= 2
    if rest:
        tail = zlib.crc32(bytes(rest))
        result = crc32_combine(result, tail, rest) if have else tail
    return result


# -- the layers ---------------------------------------------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    """`data` as raw deflate blocks ending in a full flush: byte-aligned, dictionary reset, not final, so
    such pieces can be concatenated into one stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = SOURCE_DATE_EPOCH
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def gzip_bomb(*, entries: int = BOMB_ENTRIES, entry_bytes: int = BOMB_ENTRY_BYTES) -> tuple[bytes, int]:
    """(gzip bytes, inflated size) of a valid gzip'd tar of `entries` files of `entry_bytes` zeros each.

    The tar is header, zeros, header, zeros, ..., then the two zero blocks that end an archive, so everything
    but the headers is one long run of zeros: deflated once per MiB and repeated, with the gzip trailer's
    crc32 computed by combining, never by reading 16 GiB.
    """
    if entry_bytes % _ZERO_CHUNK:
        raise ValueError("entry_bytes must be a whole number of MiB")
    zero_block = _raw_deflate(bytes(_ZERO_CHUNK))
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]  # gzip header: deflate, no name, mtime 0, max compression
    crc, size = 0, 0
    for number in range(entries):
        header = _tar_header(f"bomb/zeros-{number:02d}.bin", entry_bytes)
        parts.append(_raw_deflate(header))
        crc, size = crc32_combine(crc, zlib.crc32(header), len(header)), size + len(header)
        parts.append(zero_block * (entry_bytes // _ZERO_CHUNK))
        crc, size = crc32_combine(crc, crc32_of_zeros(entry_bytes), entry_bytes), size + entry_bytes
    end = bytes(1024)
    parts.append(_raw_deflate(end))
    crc, size = crc32_combine(crc, zlib.crc32(end), len(end)), size + len(end)
    parts.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))  # the final (empty) block
    parts.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(parts), size


def bomb_layer(*, entries: int = BOMB_ENTRIES, entry_bytes: int = BOMB_ENTRY_BYTES) -> Layer:
    """The gzip bomb as a layer, with its true diff_id (sha256 of the 16 GiB tar: ~10 s, so cached on disk)."""
    data, size = gzip_bomb(entries=entries, entry_bytes=entry_bytes)
    record = cache_dir("images") / f"gzip-bomb-{entries}x{entry_bytes}.diff_id"
    if not record.exists():
        record.write_text(_bomb_diff_id(entries, entry_bytes))
    return Layer(Blob.of(data), record.read_text().strip(), size, "ADD bomb.tar.gz / # hostile: a gzip bomb")


def _bomb_diff_id(entries: int, entry_bytes: int) -> str:
    digest = hashlib.sha256()
    zeros = bytes(_ZERO_CHUNK)
    for number in range(entries):
        digest.update(_tar_header(f"bomb/zeros-{number:02d}.bin", entry_bytes))
        for _ in range(entry_bytes // _ZERO_CHUNK):
            digest.update(zeros)
    digest.update(bytes(1024))
    return "sha256:" + digest.hexdigest()


def _tar(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A tar with exactly these names, however unsafe (tarfile writes `../x` and `/x` as given)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = SOURCE_DATE_EPOCH
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def escaping_layer() -> Layer:
    """`../` entries that climb out of the root (a reader that extracted them would write outside it)."""
    tar = _tar(
        [
            ("app/readme.txt", b"nothing to see\n"),
            ("../../../../etc/cron.d/slimguard-escape", b"* * * * * root /tmp/x\n"),
            ("app/../../../root/.ssh/authorized_keys", b"ssh-ed25519 AAAA slimguard-escape\n"),
        ]
    )
    return oci.layer_from_tar_bytes(tar, created_by="ADD escape.tar / # hostile: entries climb out with ../")


def absolute_layer() -> Layer:
    """Entries named by absolute paths (`/etc/...`): tar readers strip the `/`; extractors that do not write
    over the host's files."""
    tar = _tar([("/etc/slimguard-absolute.conf", b"absolute=true\n"), ("/usr/bin/slimguard-absolute", b"#!/bin/sh\n")])
    return oci.layer_from_tar_bytes(tar, created_by="ADD absolute.tar / # hostile: absolute entry names")


def truncated_layer() -> Layer:
    """A sound 1 MiB layer's gzip cut off halfway: the registry stores what it is given, digest and all."""
    sound = oci.layer_from_files(
        {"/app/payload.bin": _pseudo_random("truncated-payload", 1 << 20)}, created_by="COPY payload.bin /app/"
    )
    data = sound.blob.read()
    cut = data[: len(data) // 2]
    # The config keeps the sound layer's diff_id: the image looks right until the stream is read.
    return Layer(Blob.of(cut), sound.diff_id, sound.uncompressed_size, "COPY payload.bin /app/ # hostile: cut short")


def _stored_gzip_layer(seed: str, created_by: str) -> Layer:
    """A layer gzipped without compression (level 0), so its length depends only on the tar's length."""
    tar = _tar([("app/data.bin", _pseudo_random(seed, 256 << 10)), ("app/seed.txt", seed.encode())])
    blob = gzip.compress(tar, compresslevel=0, mtime=0)
    return Layer(Blob.of(blob), "sha256:" + hashlib.sha256(tar).hexdigest(), len(tar), created_by)


@dataclass(frozen=True)
class SwappedLayer:
    """`layer` is what the manifest names and the registry verified; `replacement` is what it will serve."""

    layer: Layer
    replacement: bytes


def swapped_layer() -> SwappedLayer:
    """A sound layer and a second, equally sound one of the same length (`app/seed.txt` differs in one
    letter): once the second is written over the first in storage, the registry serves bytes whose sha256 is
    not the digest it is asked for, and nothing but that sha256 tells."""
    original = _stored_gzip_layer("swap-original", "COPY app /app # hostile: bytes replaced in storage")
    replacement = _stored_gzip_layer("swap-replaced", "")
    if replacement.blob.size != original.blob.size:
        raise AssertionError("stored gzip of equal-length tars must have equal length")
    return SwappedLayer(original, replacement.blob.read())


def registry_blob_path(storage_dir: Path, digest: str) -> Path:
    """Where distribution's filesystem driver keeps a blob's bytes."""
    algorithm, hexdigest = digest.split(":", 1)
    return storage_dir / "docker" / "registry" / "v2" / "blobs" / algorithm / hexdigest[:2] / hexdigest / "data"


def replace_blob_in_storage(storage_dir: Path, digest: str, replacement: bytes) -> None:
    """Overwrite the stored bytes of `digest` (already pushed) with `replacement`, behind the registry's back."""
    path = registry_blob_path(storage_dir, digest)
    if not path.exists():
        raise FileNotFoundError(f"{digest} is not in the registry storage at {storage_dir}")
    path.write_bytes(replacement)


def on_busybox(busybox: Image, layer: Layer) -> Image:
    return oci.build_image([layer], base=busybox, history=[History(layer.created_by)], cmd=["sh"])


__all__ = [
    "BOMB_ENTRIES",
    "BOMB_ENTRY_BYTES",
    "SwappedLayer",
    "absolute_layer",
    "bomb_layer",
    "crc32_combine",
    "crc32_of_zeros",
    "escaping_layer",
    "gzip_bomb",
    "on_busybox",
    "registry_blob_path",
    "replace_blob_in_storage",
    "swapped_layer",
    "truncated_layer",
]
