"""The webhook's serving certificate: loaded, reloaded when it rotates, and watched for expiry.

A webhook whose certificate has expired or whose Secret is gone fails every call from the apiserver, which
then applies the configuration's failurePolicy: every Pod admitted unchecked (Ignore) or none at all (Fail).
Neither must happen silently, so the replica says so three ways: ``/readyz`` fails naming the expiry, the log
says it once per change, and ``slimguard_webhook_certificate_expiry_timestamp_seconds`` lets an alert fire days
before it happens.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography import x509

from slimguard import metrics

log = logging.getLogger(__name__)


class CertificateUnavailable(Exception):
    """The serving certificate or key cannot be loaded; the message names the file and why."""


def leaf_not_after(cert_file: Path) -> datetime:
    """When the first certificate of a PEM chain (the one served) stops being valid."""
    try:
        leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError as error:
        raise CertificateUnavailable(f"{cert_file} holds no PEM certificate: {error}") from None
    return leaf.not_valid_after_utc


class CertificateReloader:
    """Loads the chain into one SSLContext and again whenever the files change; new handshakes use it.

    When the files vanish or are half written (a Secret deleted, or a rotation in progress), the last good
    pair stays in use: it is still the best thing to serve, and the failure is counted and logged.
    """

    def __init__(self, cert_file: str, key_file: str, *, clock: Callable[[], float] = time.time) -> None:
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self.clock = clock
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self._stamp = self._current_stamp()
            self.context.load_cert_chain(self.cert_file, self.key_file)
            self.not_after = leaf_not_after(self.cert_file)
        except (OSError, ssl.SSLError) as error:
            raise CertificateUnavailable(
                f"cannot load the serving certificate {self.cert_file} and key {self.key_file}: {error}"
            ) from None
        metrics.WEBHOOK_CERTIFICATE_EXPIRY.set(self.not_after.timestamp())
        self.reloads = 0
        self.trust_problem: Callable[[], str | None] = lambda: None
        """Why the apiserver does not trust this certificate, when the replica knows (a self-managed one does)."""
        self._last_failure: str | None = None
        self._reported_expired = False
        self.check_expiry()

    def _current_stamp(self) -> tuple[float, ...]:
        # The inodes too: a file replaced by a rename within one tick of the coarse file clock, at the same size,
        # is still seen as new.
        cert, key = self.cert_file.stat(), self.key_file.stat()
        return (cert.st_mtime, key.st_mtime, cert.st_size, key.st_size, cert.st_ino, key.st_ino)

    @property
    def expired(self) -> bool:
        return self.clock() >= self.not_after.timestamp()

    def problem(self) -> str | None:
        """Why this replica cannot serve the apiserver, or None."""
        if self.expired:
            return f"serving certificate {self.cert_file} expired at {self.not_after.isoformat()}"
        return self.trust_problem()

    def check_expiry(self) -> None:
        if self.expired and not self._reported_expired:
            log.error("%s: the apiserver's calls fail and its failurePolicy decides every review", self.problem())
        self._reported_expired = self.expired

    def reload_if_changed(self) -> bool:
        try:
            stamp = self._current_stamp()
            if stamp == self._stamp:
                self._last_failure = None
                return False
            self.context.load_cert_chain(self.cert_file, self.key_file)
            not_after = leaf_not_after(self.cert_file)
        except (OSError, ssl.SSLError, CertificateUnavailable) as error:
            self._failed(str(error))
            return False
        self._stamp, self.not_after, self._last_failure = stamp, not_after, None
        metrics.WEBHOOK_CERTIFICATE_EXPIRY.set(not_after.timestamp())
        self.reloads += 1
        log.info("serving certificate reloaded from %s (valid until %s)", self.cert_file, not_after.isoformat())
        return True

    def _failed(self, reason: str) -> None:
        metrics.WEBHOOK_CERTIFICATE_RELOAD_FAILURES.inc()
        if reason != self._last_failure:  # once per distinct failure, not every interval
            log.warning("serving certificate not reloaded, still serving the last good pair: %s", reason)
        self._last_failure = reason

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
            self.check_expiry()
