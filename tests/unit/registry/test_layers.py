"""Uncompressed sizes read from a zstd frame header (gzip trailers are read from the real registry in e2e)."""

from __future__ import annotations

from slimguard.registry.inspector import zstd_content_size


def frame_header(descriptor: int, size_field: bytes, window: bytes = b"") -> bytes:
    return b"\x28\xb5\x2f\xfd" + bytes([descriptor]) + window + size_field


def test_a_single_segment_frame_with_a_one_byte_size() -> None:
    assert zstd_content_size(frame_header(0b0010_0000, b"\x2a")) == 42


def test_a_two_byte_size_field_is_offset_by_256() -> None:
    assert zstd_content_size(frame_header(0b0110_0000, (1000 - 256).to_bytes(2, "little"))) == 1000


def test_a_four_byte_size_after_the_window_descriptor() -> None:
    assert zstd_content_size(frame_header(0b1000_0000, (5_000_000).to_bytes(4, "little"), window=b"\x58")) == 5_000_000


def test_an_eight_byte_size() -> None:
    assert zstd_content_size(frame_header(0b1110_0000, (6 * 2**32).to_bytes(8, "little"))) == 6 * 2**32


def test_no_size_when_the_encoder_left_it_out_or_the_magic_is_wrong() -> None:
    assert zstd_content_size(frame_header(0b0000_0000, b"", window=b"\x58")) is None
    assert zstd_content_size(b"\x1f\x8b\x08\x00\x00\x00") is None
