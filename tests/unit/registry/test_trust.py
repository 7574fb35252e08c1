"""A --ca-file that cannot be used is refused at start, naming the file and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimguard.registry.trust import CaBundleUnreadable, registry_tls_context
from slimguard_testbed.certs import CertificateAuthority


def test_a_readable_bundle_is_trusted_besides_the_system_store(tmp_path: Path) -> None:
    bundle = tmp_path / "registry-ca.crt"
    bundle.write_bytes(CertificateAuthority().cert_pem)
    without, with_bundle = registry_tls_context([]), registry_tls_context([str(bundle)])
    assert with_bundle.cert_store_stats()["x509_ca"] == without.cert_store_stats()["x509_ca"] + 1


def test_a_missing_bundle_names_the_file() -> None:
    with pytest.raises(CaBundleUnreadable) as refused:
        registry_tls_context(["/nonexistent/registry-ca.crt"])
    assert str(refused.value) == "--ca-file /nonexistent/registry-ca.crt cannot be read: No such file or directory"


def test_a_directory_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(CaBundleUnreadable) as refused:
        registry_tls_context([str(tmp_path)])
    assert str(refused.value) == f"--ca-file {tmp_path} cannot be read: Is a directory"


def test_a_file_without_a_pem_certificate_names_the_file(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("not a certificate\n")
    with pytest.raises(CaBundleUnreadable) as refused:
        registry_tls_context([str(bundle)])
    assert str(refused.value).startswith(f"--ca-file {bundle} holds no PEM CA certificate (")
