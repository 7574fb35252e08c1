"""walk_layer(verify=False): a trusted local export (docker save) whose layers' digests are known only once read."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from slimguard.core.errors import InspectionError
from slimguard.layers.walker import LayerLimits, walk_layer


def tar_with(name: str, body: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_the_content_carries_the_digest_of_the_bytes_read() -> None:
    blob = tar_with("app/server.js", b"console.log(1)\n")
    content = walk_layer([blob[:700], blob[700:]], digest="abc/layer.tar", verify=False)
    assert content.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert [entry.path for entry in content.entries] == ["app/server.js"]


def test_limits_still_hold_and_name_the_layer_by_its_label() -> None:
    blob = tar_with("big", b"x" * 4096)
    with pytest.raises(InspectionError) as raised:
        walk_layer([blob], digest="abc/layer.tar", verify=False, limits=LayerLimits(max_uncompressed_bytes=1024))
    assert raised.value.reason == "LayerTooLarge"
    assert "abc/layer.tar" in str(raised.value)


def test_verified_walks_are_unchanged_a_wrong_digest_is_refused() -> None:
    blob = tar_with("a", b"1")
    with pytest.raises(InspectionError) as raised:
        walk_layer([blob], digest="sha256:" + "0" * 64)
    assert raised.value.reason == "LayerDigestMismatch"
