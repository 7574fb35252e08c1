"""What a push would send of a layer kept uncompressed (a local Docker engine, a ``docker save`` archive):
its tar gzipped as it streams past, counted, never stored."""

from __future__ import annotations

import zlib


class GzipCounter:
    """The size of the gzip (at its default level, as ``docker push`` compresses) of the bytes given to it."""

    def __init__(self) -> None:
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip, at its default level
        self._size = 0
        self._flushed = False

    def update(self, chunk: bytes) -> None:
        self._size += len(self._gzip.compress(chunk))

    @property
    def size(self) -> int:
        if not self._flushed:
            self._size += len(self._gzip.flush())
            self._flushed = True
        return self._size
