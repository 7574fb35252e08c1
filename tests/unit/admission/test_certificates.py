"""The serving certificate's expiry and reload failures, with the clock injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from slimguard import metrics
from slimguard.admission.certificates import CertificateReloader, CertificateUnavailable
from slimguard_testbed.certs import CertificateAuthority

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


def write_pair(ca: CertificateAuthority, directory: Path, not_after: datetime) -> tuple[Path, Path]:
    pair = ca.issue("webhook", hosts=("127.0.0.1",), valid_for=(not_after - timedelta(days=30), not_after))
    return pair.write(directory, "webhook")


def test_a_certificate_is_a_problem_from_the_second_it_expires(ca: CertificateAuthority, tmp_path: Path) -> None:
    not_after = NOW + timedelta(hours=1)
    cert, key = write_pair(ca, tmp_path, not_after)
    clock = [NOW.timestamp()]
    reloader = CertificateReloader(str(cert), str(key), clock=lambda: clock[0])
    assert reloader.problem() is None
    assert metrics.WEBHOOK_CERTIFICATE_EXPIRY._value.get() == not_after.timestamp()
    clock[0] = not_after.timestamp()
    assert reloader.problem() == f"serving certificate {cert} expired at {not_after.isoformat()}"


def test_a_rotation_to_a_fresh_certificate_clears_the_problem(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key = write_pair(ca, tmp_path, NOW - timedelta(days=1))
    reloader = CertificateReloader(str(cert), str(key), clock=NOW.timestamp)
    assert reloader.problem() is not None
    later = NOW + timedelta(days=90)
    write_pair(ca, tmp_path, later)
    assert reloader.reload_if_changed()
    assert reloader.problem() is None
    assert reloader.not_after == later


def test_vanished_files_keep_the_last_pair_and_are_logged_once(
    ca: CertificateAuthority, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = write_pair(ca, tmp_path, NOW + timedelta(days=10))
    reloader = CertificateReloader(str(cert), str(key), clock=NOW.timestamp)
    before = metrics.WEBHOOK_CERTIFICATE_RELOAD_FAILURES._value.get()
    cert.unlink()
    for _ in range(3):
        assert not reloader.reload_if_changed()
    assert metrics.WEBHOOK_CERTIFICATE_RELOAD_FAILURES._value.get() == before + 3
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "still serving the last good pair" in r.message)
    ) == 1
    assert reloader.problem() is None  # what is served is still good


def test_a_missing_or_garbled_pair_at_start_is_one_clear_error(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(CertificateUnavailable, match=r"cannot load the serving certificate .*tls\.crt"):
        CertificateReloader(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    cert, key = write_pair(ca, tmp_path, NOW + timedelta(days=10))
    key.write_text("not a key")
    with pytest.raises(CertificateUnavailable, match="cannot load"):
        CertificateReloader(str(cert), str(key))
