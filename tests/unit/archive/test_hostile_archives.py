"""A hostile or broken archive is one clear error and exit 2, never a traceback and never a pass.

Each archive here is a real one (the test bed's images written as a layout, a tar or a docker save) broken the
way a truncated upload, a tampered artifact or a malicious tarball would be. ``check`` reports a broken image as
an error finding (exit 2) and ``inspect`` as one line on standard error (exit 2); an archive that cannot be
opened at all is one line on standard error for both.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive.archives import (
    NAME,
    app_image,
    blob,
    docker_save,
    docker_save_oci,
    edit_json,
    multi_platform,
    oci_layout,
    write_tar,
)
from slimguard.cli.main import app

POLICY = """\
apiVersion: slimguard.dev/v1alpha1
kind: ImagePolicy
metadata: {name: slim}
spec:
  mode: Enforce
  rules: {maxUncompressedSize: 100Mi, maxPackages: 50}
"""


def check(tmp_path: Path, archive: Path, *names: str) -> tuple[int, str, dict | None]:
    """``check --input``: (exit status, standard error, the JSON report when one was written)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    result = CliRunner().invoke(app, ["check", "--input", str(archive), *names, "-p", str(policy), "-f", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, result.stderr.strip(), json.loads(result.stdout) if result.stdout.strip() else None


def inspect(archive: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["inspect", "--input", str(archive), "--content"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, result.stderr.strip()


def refused(tmp_path: Path, archive: Path, message: str) -> None:
    """Both commands: exit 2, one line on standard error that says ``message``."""
    for code, stderr in (check(tmp_path, archive)[:2], inspect(archive)):
        assert code == 2
        assert stderr.count("\n") == 0, stderr
        assert stderr.startswith("slimguard: error: "), stderr
        assert message in stderr, stderr


def image_error(tmp_path: Path, archive: Path, reason: str, message: str) -> None:
    """``check``: an error finding with its reason (exit 2); ``inspect``: one line."""
    code, _, report = check(tmp_path, archive, NAME)
    assert code == 2
    assert report is not None
    (image,) = report["images"]
    assert image["status"] == "error"
    reasons = {finding.get("reason") for finding in image["findings"]}
    assert reasons == {reason}, image["findings"]
    assert all(message in finding["message"] for finding in image["findings"]), image["findings"]
    code, stderr = inspect(archive)
    assert code == 2
    assert stderr.count("\n") == 0
    assert message in stderr


def test_garbage_is_no_archive(tmp_path: Path) -> None:
    garbage = tmp_path / "image.tar"
    garbage.write_bytes(os.urandom(5000))
    refused(tmp_path, garbage, f"{garbage} is not a readable tar: truncated or garbled")


def test_a_tar_cut_short_is_found_before_anything_is_read(tmp_path: Path) -> None:
    saved = docker_save(tmp_path / "saved.tar", app_image())
    cut = tmp_path / "cut.tar"
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    refused(tmp_path, cut, f"{cut} is cut short: ")


def test_a_gzip_compressed_tar_cut_short_is_refused(tmp_path: Path) -> None:
    saved = docker_save(tmp_path / "saved.tar", app_image())
    packed = gzip.compress(saved.read_bytes())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    refused(tmp_path, cut, "is not a readable tar: truncated or garbled")


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../../etc/cron.d/evil", "holds a path escaping the archive: '../../etc/cron.d/evil'"),
        ("blobs/../../evil", "holds a path escaping the archive: 'blobs/../../evil'"),
        ("/etc/passwd", "holds a path outside the archive: '/etc/passwd'"),
    ],
)
def test_a_member_escaping_the_archive_refuses_it(tmp_path: Path, member: str, message: str) -> None:
    saved = docker_save(tmp_path / "saved.tar", app_image())
    with tarfile.open(saved, "a") as archive:
        info = tarfile.TarInfo(member)
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    refused(tmp_path, saved, message)


def test_a_link_out_of_the_archive_is_not_followed(tmp_path: Path) -> None:
    link = tarfile.TarInfo("manifest.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../../etc/passwd"
    archive = write_tar(tmp_path / "linked.tar", {"manifest.json": link})
    refused(tmp_path, archive, "holds a path escaping the archive: '../../../etc/passwd'")


def test_a_symlink_out_of_a_layout_directory_is_not_followed(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    config = blob(layout, image.config.digest)
    config.unlink()
    config.symlink_to(secret)
    code, stderr = inspect(layout)
    assert code == 2
    assert f"{layout} links 'blobs/sha256/{image.config.digest[7:]}' to a file outside it" in stderr


def test_a_manifest_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    manifest = blob(layout, image.digest)
    manifest.write_bytes(manifest.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":3'))
    image_error(tmp_path, layout, "DigestMismatch", f"{layout} holds other bytes than the manifest {image.digest}")


def test_a_config_swapped_for_another_is_refused(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    config = blob(layout, image.config.digest)
    config.write_bytes(config.read_bytes().replace(b'"created"', b'"Created"'))
    image_error(tmp_path, layout, "DigestMismatch", f"holds other bytes than the image config {image.config.digest}")


def test_a_garbled_layer_is_refused_when_read(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    layer = blob(layout, image.layers[1].blob.digest)
    body = layer.read_bytes()
    layer.write_bytes(body[:10] + bytes(b ^ 0xFF for b in body[10:2000]) + body[2000:])  # same size, garbage
    image_error(tmp_path, layout, "GarbledLayer", f"layer {image.layers[1].blob.digest} is not")


def members_of(archive: Path) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    with tarfile.open(archive) as opened:
        for member in opened.getmembers():
            extracted = opened.extractfile(member) if member.isfile() else None
            if extracted is not None:
                members[member.name] = extracted.read()
    return members


@pytest.mark.parametrize("docker", ["before 25", "25 and later"])
def test_a_layer_that_does_not_match_its_digest_is_refused_when_read(tmp_path: Path, docker: str) -> None:
    """A docker save layer is its uncompressed tar: other bytes of the same length are a readable tar that is not
    the layer, found by its digest."""
    image = app_image()
    write = docker_save if docker == "before 25" else docker_save_oci
    members = members_of(write(tmp_path / "saved.tar", image))
    diff_id = image.layers[0].diff_id
    name = f"{diff_id[7:]}/layer.tar" if docker == "before 25" else f"blobs/sha256/{diff_id[7:]}"
    members[name] = members[name].replace(b"install ok installed", b"install ok INSTALLED")
    tampered = write_tar(tmp_path / "tampered.tar", members)
    image_error(tmp_path, tampered, "LayerDigestMismatch", f"{tampered} holds other bytes than the layer {diff_id}")


def test_a_missing_layer_is_refused_even_when_no_rule_reads_layers(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    blob(layout, image.layers[2].blob.digest).unlink()
    image_error(tmp_path, layout, "ArchiveUnreadable", f"{layout} lacks the layer {image.layers[2].blob.digest}")


def test_a_missing_config_is_refused(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    blob(layout, image.config.digest).unlink()
    image_error(tmp_path, layout, "ArchiveUnreadable", f"{layout} lacks the image config {image.config.digest}")


def test_a_layer_shorter_than_its_manifest_says_is_refused(tmp_path: Path) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    layer = blob(layout, image.layers[1].blob.digest)
    layer.write_bytes(layer.read_bytes()[:1000])
    image_error(tmp_path, layout, "ArchiveUnreadable", "as 1,000 bytes where its manifest says")


@pytest.mark.parametrize("what", ["index.json", "manifest"])
def test_a_giant_catalogue_or_manifest_is_refused_unread(tmp_path: Path, what: str) -> None:
    image = app_image()
    layout = oci_layout(tmp_path / "layout", image)
    padding = " " * (5 << 20)  # JSON whitespace: a valid document of 5 MiB
    if what == "index.json":
        (layout / "index.json").write_text((layout / "index.json").read_text() + padding)
        refused(tmp_path, layout, "holds a index.json of 5 MiB, more than the 4 MiB slimguard reads of one")
        return
    manifest = blob(layout, image.digest)
    manifest.write_bytes(manifest.read_bytes() + padding.encode())
    image_error(tmp_path, layout, "ArchiveUnreadable", "holds a manifest of 5 MiB")


def test_a_descriptor_naming_a_path_instead_of_a_digest_is_refused(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", app_image())
    edit_json(layout / "index.json", lambda index: index["manifests"][0].update(digest="sha256:../../../etc/passwd"))
    image_error(tmp_path, layout, "UnsupportedDigest", "not a sha256 or sha512 digest")


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda layout: (layout / "index.json").write_text("{not json"), "holds a garbled index.json"),
        (lambda layout: (layout / "index.json").write_text('{"manifests": {}}'), "holds a garbled index.json"),
        (lambda layout: (layout / "index.json").unlink(), "is no image archive: it has no index.json"),
    ],
    ids=["not-json", "wrong-shape", "missing"],
)
def test_a_layout_without_a_readable_index_is_refused(
    tmp_path: Path, write: Callable[[Path], object], message: str
) -> None:
    layout = oci_layout(tmp_path / "layout", app_image())
    write(layout)
    refused(tmp_path, layout, message)


def test_a_path_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    refused(tmp_path, tmp_path / "nothing.tar", "is neither a file nor a directory")


def test_an_index_with_more_platforms_than_slimguard_reads_is_still_bounded(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", multi_platform())
    index = json.loads((layout / "index.json").read_text())
    index["manifests"] = index["manifests"] * 2000
    (layout / "index.json").write_text(json.dumps(index))
    refused(tmp_path, layout, "holds a garbled index.json (it lists 2,000 manifests; slimguard reads 1,000)")


def test_a_docker_save_listing_other_layers_than_its_config_is_refused(tmp_path: Path) -> None:
    members = members_of(docker_save(tmp_path / "saved.tar", app_image()))
    catalogue = json.loads(members["manifest.json"])
    catalogue[0]["Layers"] = catalogue[0]["Layers"][:-1]  # the config has three diff IDs
    members["manifest.json"] = json.dumps(catalogue).encode()
    tampered = write_tar(tmp_path / "tampered.tar", members)
    image_error(
        tmp_path, tampered, "GarbledManifest", "holds a garbled image config (its diff_ids do not match the 2 layers"
    )
