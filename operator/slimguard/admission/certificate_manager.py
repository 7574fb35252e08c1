"""The webhook's self-managed certificate: one Secret every replica reads, the caBundle kept in step, no restart.

Each replica runs this manager as an owned task: every ``interval`` it reads the Secret, applies whatever step of
a rotation is due (``certificate_authority.advance``), serves the certificate the Secret holds (its SSLContext
reloaded in place) and makes the webhook configuration's caBundle hold the CAs the Secret says to trust. Writes
name the resourceVersion they were computed from, so no leader is needed: when replicas act at once, one write
lands and the others read it and serve what it holds. A GitOps render of the chart then holds no secret material
at all, and two renders are the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from slimguard.admission.certificate_authority import (
    RotationSchedule,
    ServingNames,
    UnusableSecret,
    WebhookTls,
    advance,
    certificates_in,
    fresh,
    read_secret,
    secret_annotations,
    secret_data,
)
from slimguard.admission.certificates import CertificateReloader
from slimguard.kube.webhook_certificates import (
    CertificateStoreError,
    StoredSecret,
    WebhookCertificateStore,
    WebhookConfiguration,
    WriteConflict,
)
from slimguard.tasks import BackgroundTasks

log = logging.getLogger(__name__)

CONFLICTS_PER_SYNC = 5
"""Reads again after a lost write race this many times at most in one go; the next interval tries again."""


class Unread:
    """The webhook configuration could not be read this time (the error is logged): its trust is not known."""


UNREAD = Unread()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SelfManagedCertificates:
    """``--certificate-secret`` and the flags that go with it, validated once at start-up."""

    secret_name: str
    namespace: str
    service: str
    webhook_configuration: str
    extra_hosts: tuple[str, ...] = ()
    schedule: RotationSchedule = field(default_factory=RotationSchedule)
    interval: float = 10.0
    """Seconds between reads of the Secret (``--cert-reload-interval``)."""

    def __post_init__(self) -> None:
        for flag, value in (
            ("--certificate-secret", self.secret_name),
            ("--namespace (or $POD_NAMESPACE)", self.namespace),
            ("--service", self.service),
            ("--webhook-configuration", self.webhook_configuration),
        ):
            if not value:
                raise ValueError(f"{flag} is required with --certificate-secret: the certificate is made for it")
        least = 2 * self.interval
        for flag, delay in (("--ca-trust-delay", self.schedule.trust_delay), ("--ca-overlap", self.schedule.overlap)):
            if delay.total_seconds() < least:
                raise ValueError(
                    f"{flag} ({delay.total_seconds():g} s) must be at least twice --cert-reload-interval "
                    f"({self.interval:g} s): every replica reads the Secret once per interval"
                )

    @property
    def names(self) -> ServingNames:
        return ServingNames(service=self.service, namespace=self.namespace, extra_hosts=self.extra_hosts)

    def describe(self) -> str:
        schedule = self.schedule
        return (
            f"self-managed (Secret {self.namespace}/{self.secret_name}, caBundle of ValidatingWebhookConfiguration "
            f"{self.webhook_configuration}, hosts {','.join(self.names.hosts)}, CA {schedule.ca_validity.days} d, "
            f"certificate {schedule.serving_validity.days} d)"
        )


class CertificateManager:
    def __init__(
        self,
        *,
        store: WebhookCertificateStore,
        settings: SelfManagedCertificates,
        directory: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.directory = directory or Path(tempfile.mkdtemp(prefix="slimguard-webhook-tls-"))
        self.pem_file = self.directory / "tls.pem"
        """Certificate and key in one file, replaced in one rename: a reload never sees half a rotation."""
        self.untrusted: str | None = None
        """Why the apiserver does not trust what this replica serves, when it is known not to (None: it does)."""
        self._written: bytes | None = None
        self._reloader: CertificateReloader | None = None
        self._reported: str | None = None
        self._reported_this_pass = False
        self._tasks = BackgroundTasks("the webhook certificate manager")

    @property
    def secret_ref(self) -> str:
        return self.store.secret_ref

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Return once a certificate is written to ``pem_file``: retried, backing off to 30 s, each new failure
        logged once (RBAC missing, the apiserver away). Until then the replica does not listen at all."""
        delay = min(1.0, self.settings.interval)
        while True:
            await self._sync_reporting()
            if self._written is not None:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def serve_through(self, reloader: CertificateReloader) -> None:
        """The server's certificate, reloaded here whenever the Secret's changes; ``problem`` answers /readyz."""
        self._reloader = reloader
        reloader.trust_problem = lambda: self.untrusted

    def run(self) -> None:
        self._tasks.spawn(self._keep_in_step(), name="webhook certificate manager")

    async def aclose(self) -> None:
        """Stop reading and writing (a write in flight is cancelled: each is one request, all or nothing)."""
        await self._tasks.aclose()

    def remove_files(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    async def _keep_in_step(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            await self._sync_reporting()

    async def _sync_reporting(self) -> None:
        self._reported_this_pass = False
        try:
            await self.sync()
        except CertificateStoreError as error:
            self._report(str(error))
        except Exception as error:  # a bug must not end the rotations: the last good certificate is still served
            if str(error) != self._reported:
                log.exception("webhook certificate: keeping it failed; trying again in %g s", self.settings.interval)
            self._reported, self._reported_this_pass = str(error), True
        if not self._reported_this_pass:
            self._reported = None

    def _report(self, problem: str) -> None:
        if problem != self._reported:  # once per distinct failure, not every interval
            log.error("webhook certificate: %s", problem)
        self._reported, self._reported_this_pass = problem, True

    # -- one pass -----------------------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Read, step, write, serve and publish; after a lost race, read the winner's Secret and go again."""
        for _ in range(CONFLICTS_PER_SYNC):
            try:
                await self._sync_once()
                return
            except WriteConflict as conflict:
                log.info("webhook certificate: another replica wrote first (%s); reading what it wrote", conflict)
        log.warning("webhook certificate: %d writes in a row lost a race; trying again later", CONFLICTS_PER_SYNC)

    async def _sync_once(self) -> None:
        now = self.clock()
        names = self.settings.names
        schedule = self.settings.schedule
        try:
            configuration: WebhookConfiguration | Unread | None = await self.store.read_configuration()
        except WriteConflict:
            raise
        except CertificateStoreError as error:  # the certificate is still kept and served; its trust is unknown
            self._report(str(error))
            configuration = UNREAD
        owner = configuration if isinstance(configuration, WebhookConfiguration) else None
        stored = await self.store.read_secret()
        if stored is None:
            tls = fresh(names=names, now=now, schedule=schedule)
            stored = await self.store.create_secret(
                data=secret_data(tls), annotations=secret_annotations(tls), owner=owner
            )
            log.info("webhook certificate: created %s: %s", self.secret_ref, self._describe(tls))
        else:
            tls = await self._step(stored, owner, now=now)
        self._serve(tls)
        if not isinstance(configuration, Unread):
            await self._publish(tls, configuration)

    async def _step(
        self, stored: StoredSecret, configuration: WebhookConfiguration | None, *, now: datetime
    ) -> WebhookTls:
        names, schedule = self.settings.names, self.settings.schedule
        try:
            tls = read_secret(stored.data, stored.annotations, now=now)
            steps = [f"dropped what could not be read ({note})" for note in tls.notes]
            tls, done = advance(tls, names=names, now=now, schedule=schedule)
            steps += done
        except UnusableSecret as why:
            tls = fresh(names=names, now=now, schedule=schedule)
            steps = [f"{why}: replaced by a new CA and serving certificate ({self._describe(tls)})"]
        unowned = configuration is not None and configuration.uid not in stored.owner_uids
        if steps or unowned:
            await self.store.replace_secret(
                stored, data=secret_data(tls), annotations=secret_annotations(tls), owner=configuration
            )
            for step in steps:
                log.info("webhook certificate: %s: %s", self.secret_ref, step)
        return tls

    def _describe(self, tls: WebhookTls) -> str:
        serving = tls.serving.cert.not_valid_after_utc.isoformat() if tls.serving else "none"
        return (
            f"CA valid until {tls.ca.cert.not_valid_after_utc.isoformat()}, serving certificate for "
            f"{', '.join(self.settings.names.hosts)} valid until {serving}"
        )

    def _serve(self, tls: WebhookTls) -> None:
        assert tls.serving is not None  # advance and fresh always leave one
        pem = tls.serving.cert_pem + tls.serving.key_pem
        if pem == self._written:
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(dir=self.directory, prefix=".tls-")  # mode 0600
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(pem)
            os.replace(staging, self.pem_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(staging)
            raise
        self._written = pem
        if self._reloader is not None:
            self._reloader.reload_if_changed()

    async def _publish(self, tls: WebhookTls, configuration: WebhookConfiguration | None) -> None:
        name = self.settings.webhook_configuration
        if configuration is None:
            self._untrusted(
                f"ValidatingWebhookConfiguration {name} does not exist: no apiserver trusts this webhook's CA"
            )
            return
        bundle = tls.bundle_pem()
        if any(current != bundle for _, current in configuration.ca_bundles):
            try:
                await self.store.patch_ca_bundle(configuration, bundle)
            except WriteConflict:
                raise
            except CertificateStoreError as error:
                if not any(tls.ca.cert in certificates_in(current) for _, current in configuration.ca_bundles):
                    self._untrusted(f"{error}, and it does not hold the CA that signs this webhook's certificate")
                else:
                    self._report(str(error))
                return
            subjects = "; ".join(cert.subject.rfc4514_string() for cert in certificates_in(bundle))
            log.info("webhook certificate: caBundle of ValidatingWebhookConfiguration %s set to %s", name, subjects)
        self._untrusted(None)

    def _untrusted(self, problem: str | None) -> None:
        if problem and problem != self.untrusted:
            log.error("webhook certificate: %s", problem)
        elif self.untrusted and not problem:
            name = self.settings.webhook_configuration
            log.info("webhook certificate: the caBundle of ValidatingWebhookConfiguration %s trusts it now", name)
        self.untrusted = problem
