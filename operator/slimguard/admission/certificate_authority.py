"""The webhook's own CA and serving certificate: minted here, kept in one Secret, rotated on a schedule.

Pure: time comes in as ``now`` and nothing here reads the cluster, so every step of a rotation is tested with a
clock in milliseconds. ``certificate_manager`` reads and writes the Secret and the webhook configuration.

Why a rotation takes three steps. The apiserver trusts the webhook through the ``caBundle`` of its
ValidatingWebhookConfiguration, and it learns of a new bundle a moment after it is written (each apiserver
through its own watch). A replica that served a certificate of a new CA before every apiserver trusted that CA
would fail reviews, and one still serving the old CA's certificate after the bundle dropped it would too. So:

1. **publish**: a new CA is made and added to the bundle; the serving certificate stays as it is.
2. **switch**, ``trust_delay`` later: the new CA signs a new serving certificate; the old CA stays in the bundle,
   because replicas pick the new certificate up one by one (each reads the Secret every few seconds).
3. **drop**, ``overlap`` later: the old CA leaves the bundle.

Renewing the serving certificate alone (its CA unchanged) changes no trust, so it is one step.

Validity: the CA for 365 days, the serving certificate for 90, each renewed when a third of its life is left
(cert-manager's default point: 60 days into 90). Kyverno's own defaults are alike (CA 365 days, certificate 150,
renewed 15 days ahead); slimguard renews a month ahead, so a webhook that cannot write its Secret for weeks is
still serving a valid certificate when the expiry alert (14 days ahead) fires. The serving certificate never
outlives its CA, and the CA is renewed four months ahead, so a new serving certificate always gets its 90 days.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_NAME = 64
"""The longest common name (or organizational unit) a certificate may carry (RFC 5280 ub-common-name)."""

CLOCK_SKEW = timedelta(minutes=5)
"""Certificates are valid from a little before they are made: a node whose clock lags must accept them too."""

# The Secret's keys. tls.crt, tls.key and ca.crt as cert-manager and `kubectl create secret tls` name them, so the
# Secret reads the same whoever made it; the rest is slimguard's own.
SERVING_CERT, SERVING_KEY, CA_CERT, CA_KEY = "tls.crt", "tls.key", "ca.crt", "ca.key"
NEXT_CA_CERT, NEXT_CA_KEY, PREVIOUS_CA_CERT = "next-ca.crt", "next-ca.key", "previous-ca.crt"
BUNDLE = "ca-bundle.crt"
"""What the webhook configuration's caBundle holds: written for people to compare; read back, it is recomputed."""

ANNOTATION_PREFIX = "slimguard.dev/"
PUBLISHED_AT = ANNOTATION_PREFIX + "next-ca-published-at"
SWITCHED_AT = ANNOTATION_PREFIX + "ca-switched-at"
ROTATE_CA = ANNOTATION_PREFIX + "rotate-ca"
"""Set it (to anything) on the Secret to rotate the CA now, in the same three steps: after a suspected leak of the
CA key, or to see a rotation happen. It is removed when the rotation starts."""


class UnusableSecret(Exception):
    """The Secret cannot be continued from (no CA key, a garbled or expired CA); the message says why."""


@dataclass(frozen=True)
class RotationSchedule:
    ca_validity: timedelta = timedelta(days=365)
    serving_validity: timedelta = timedelta(days=90)
    renew_when_left: float = 1 / 3
    """A certificate is renewed once less than this share of its lifetime is left."""
    trust_delay: timedelta = timedelta(minutes=5)
    """Between publishing a new CA in the caBundle and serving a certificate it signed: every apiserver's watch
    of the webhook configuration must have seen the new bundle. Watches take well under a second; five minutes
    cost nothing, since the CA is renewed months ahead."""
    overlap: timedelta = timedelta(hours=1)
    """How long the old CA stays in the caBundle after the switch: every replica must have loaded the new
    certificate first (each reads the Secret every ``--cert-reload-interval``, 10 s by default)."""

    def __post_init__(self) -> None:
        for name in ("ca_validity", "serving_validity"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if not 0 < self.renew_when_left < 1:
            raise ValueError("renew_when_left must be between 0 and 1")
        if self.trust_delay < timedelta(0) or self.overlap < timedelta(0):
            raise ValueError("trust_delay and overlap must not be negative")


@dataclass(frozen=True, eq=False)
class Pair:
    """A certificate and its private key; two are equal when both are (key objects compare by identity)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pair) and (self.cert_pem, self.key_pem) == (other.cert_pem, other.key_pem)

    def __hash__(self) -> int:
        return hash(self.cert_pem)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass(frozen=True)
class ServingNames:
    """Whom the serving certificate speaks for: the Service's DNS names, and any extra host (a ``url`` webhook)."""

    service: str
    namespace: str
    extra_hosts: tuple[str, ...] = ()

    @property
    def hosts(self) -> tuple[str, ...]:
        base = f"{self.service}.{self.namespace}"
        names = (self.service, base, f"{base}.svc", f"{base}.svc.cluster.local", *self.extra_hosts)
        return tuple(dict.fromkeys(names))

    @property
    def common_name(self) -> str:
        return f"{self.service}.{self.namespace}.svc"

    def subject_alternative_names(self) -> x509.SubjectAlternativeName:
        names: list[x509.GeneralName] = []
        for host in self.hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return x509.SubjectAlternativeName(names)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _usage(*, signs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs,
        crl_sign=signs,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(*, names: ServingNames, now: datetime, validity: timedelta) -> Pair:
    """A CA for the webhook alone. Its name carries the time it was made, so two CAs in one bundle differ."""
    key = _key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "slimguard"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, names.common_name[:MAX_NAME]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"slimguard webhook CA {now.strftime('%Y%m%dT%H%M%SZ')}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pair(cert, key)


def issue_serving(*, ca: Pair, names: ServingNames, now: datetime, validity: timedelta) -> Pair:
    """A serving certificate signed by ``ca``, never valid beyond it."""
    key = _key()
    ca_key_id = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    # A Service and a namespace may have 63 characters each, a common name 64: a longer one is left out, and the
    # names are then the certificate's whole identity (RFC 5280: the extension is critical). Clients read only them.
    named = len(names.common_name) <= MAX_NAME
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.common_name)] if named else [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(names.subject_alternative_names(), critical=not named)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Pair(cert, key)


def _due(cert: x509.Certificate, *, now: datetime, share_left: float) -> bool:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < lifetime * share_left


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _matches(pair: Pair) -> bool:
    return pair.cert.public_key() == pair.key.public_key()


def serving_problem(serving: Pair | None, *, ca: Pair, names: ServingNames, now: datetime) -> str | None:
    """Why ``serving`` cannot go on being served (None: it can, until it is due)."""
    if serving is None:
        return "no serving certificate"
    if not _matches(serving):
        return "the serving key does not match its certificate"
    if not _signed_by(serving.cert, ca.cert):
        return "the serving certificate is not signed by the CA"
    if serving.cert.not_valid_after_utc <= now:
        return f"the serving certificate expired at {serving.cert.not_valid_after_utc.isoformat()}"
    try:
        present = serving.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the serving certificate names no host"
    wanted = names.subject_alternative_names()
    missing = [str(getattr(name, "value", name)) for name in wanted if name not in present]
    if missing:
        return f"the serving certificate does not name {', '.join(missing)}"
    return None


@dataclass(frozen=True)
class WebhookTls:
    """What the Secret holds: the CA signing now, the certificate served, and a rotation's other CA if one is under
    way (the next one while it is published, the previous one during the overlap)."""

    ca: Pair
    serving: Pair | None
    next_ca: Pair | None = None
    published_at: datetime | None = None
    previous_ca: x509.Certificate | None = None
    switched_at: datetime | None = None
    rotation_requested: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What was wrong with the parts that could not be read back (dropped, and made again if still needed)."""

    def trusted(self) -> list[x509.Certificate]:
        """The CAs the webhook configuration's caBundle must hold, the one signing now first."""
        others = [pair.cert for pair in (self.next_ca,) if pair] + ([self.previous_ca] if self.previous_ca else [])
        return [self.ca.cert, *others]

    def bundle_pem(self) -> bytes:
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in self.trusted())


def fresh(*, names: ServingNames, now: datetime, schedule: RotationSchedule) -> WebhookTls:
    """A new CA and the serving certificate it signs: for a webhook with no Secret, or one it cannot use."""
    ca = new_ca(names=names, now=now, validity=schedule.ca_validity)
    return WebhookTls(ca=ca, serving=issue_serving(ca=ca, names=names, now=now, validity=schedule.serving_validity))


def advance(
    tls: WebhookTls, *, names: ServingNames, now: datetime, schedule: RotationSchedule
) -> tuple[WebhookTls, list[str]]:
    """Every step due at ``now``, applied; and what was done, one line each (nothing: no write is needed)."""
    done: list[str] = []
    if tls.rotation_requested:
        if tls.next_ca is None:
            tls = _publish(tls, names=names, now=now, schedule=schedule)
            done.append(f"a CA rotation was asked for ({ROTATE_CA}): {_published(tls, schedule)}")
        else:
            done.append(f"a CA rotation was asked for ({ROTATE_CA}) while one is under way: it goes on")
        tls = replace(tls, rotation_requested=False)
    elif tls.next_ca is None and _due(tls.ca.cert, now=now, share_left=schedule.renew_when_left):
        tls = _publish(tls, names=names, now=now, schedule=schedule)
        done.append(f"the CA expires at {tls.ca.cert.not_valid_after_utc.isoformat()}: {_published(tls, schedule)}")
    if tls.next_ca is not None and now >= (tls.published_at or now) + schedule.trust_delay:
        old = tls.ca
        tls = replace(
            tls,
            ca=tls.next_ca,
            serving=issue_serving(ca=tls.next_ca, names=names, now=now, validity=schedule.serving_validity),
            next_ca=None,
            published_at=None,
            previous_ca=old.cert,
            switched_at=now,
        )
        done.append(
            f"the new CA signs the serving certificate from now on (valid until "
            f"{_not_after(tls.serving)}); the old CA stays in the caBundle until {(now + schedule.overlap).isoformat()}"
        )
    if tls.previous_ca is not None:
        expired = tls.previous_ca.not_valid_after_utc <= now
        if expired or now >= (tls.switched_at or now) + schedule.overlap:
            tls = replace(tls, previous_ca=None, switched_at=None)
            done.append("the old CA is dropped from the caBundle" + (" (it expired)" if expired else ""))
    problem = serving_problem(tls.serving, ca=tls.ca, names=names, now=now)
    due = tls.serving is not None and _due(tls.serving.cert, now=now, share_left=schedule.renew_when_left)
    if problem or due:
        serving = issue_serving(ca=tls.ca, names=names, now=now, validity=schedule.serving_validity)
        why = problem or f"the serving certificate expires at {_not_after(tls.serving)}"
        tls = replace(tls, serving=serving)
        done.append(f"{why}: a new one is served, valid until {_not_after(serving)}")
    return tls, done


def _publish(tls: WebhookTls, *, names: ServingNames, now: datetime, schedule: RotationSchedule) -> WebhookTls:
    next_ca = new_ca(names=names, now=now, validity=schedule.ca_validity)
    return replace(tls, next_ca=next_ca, published_at=now)


def _published(tls: WebhookTls, schedule: RotationSchedule) -> str:
    assert tls.published_at is not None
    signs_from = tls.published_at + schedule.trust_delay
    return f"a new CA is published in the caBundle; it signs from {signs_from.isoformat()}"


def _not_after(pair: Pair | None) -> str:
    return pair.cert.not_valid_after_utc.isoformat() if pair else "never"


# -- the Secret ---------------------------------------------------------------------------------------------------


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_data(tls: WebhookTls) -> dict[str, str]:
    """The Secret's ``data`` (base64, as the API takes it)."""
    data: dict[str, bytes] = {
        CA_CERT: tls.ca.cert_pem,
        CA_KEY: tls.ca.key_pem,
        BUNDLE: tls.bundle_pem(),
    }
    if tls.serving is not None:
        data[SERVING_CERT], data[SERVING_KEY] = tls.serving.cert_pem, tls.serving.key_pem
    if tls.next_ca is not None:
        data[NEXT_CA_CERT], data[NEXT_CA_KEY] = tls.next_ca.cert_pem, tls.next_ca.key_pem
    if tls.previous_ca is not None:
        data[PREVIOUS_CA_CERT] = _pem(tls.previous_ca)
    return {key: _b64(value) for key, value in sorted(data.items())}


def secret_annotations(tls: WebhookTls) -> dict[str, str | None]:
    """The Secret's annotations slimguard keeps (None: remove it, as in a merge patch)."""
    return {
        PUBLISHED_AT: _time(tls.published_at),
        SWITCHED_AT: _time(tls.switched_at),
        ROTATE_CA: "true" if tls.rotation_requested else None,
    }


def _time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _read_pair(data: Mapping[str, bytes], cert_key: str, key_key: str) -> Pair:
    """The pair under those keys; ValueError naming the key when it is missing or does not parse."""
    if cert_key not in data or key_key not in data:
        missing = [k for k in (cert_key, key_key) if k not in data]
        raise ValueError(f"no {' and no '.join(missing)}")
    try:
        cert = x509.load_pem_x509_certificate(data[cert_key])
    except ValueError as error:
        raise ValueError(f"{cert_key} holds no PEM certificate ({error})") from None
    try:
        key = serialization.load_pem_private_key(data[key_key], password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{key_key} holds no unencrypted PEM key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_key} is not an ECDSA key")
    pair = Pair(cert, key)
    if not _matches(pair):
        raise ValueError(f"{key_key} is not the key of {cert_key}")
    return pair


def _read_moment(annotations: Mapping[str, str], key: str) -> datetime | None:
    value = annotations.get(key)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def read_secret(data: Mapping[str, str], annotations: Mapping[str, str], *, now: datetime) -> WebhookTls:
    """The Secret read back. A CA that cannot sign (missing, garbled, without its key, expired) makes it
    unusable; a broken serving certificate or other CA is only noted: ``advance`` makes them again if needed."""
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(value, validate=True)
        except ValueError:
            continue  # reported as missing below if it matters
    try:
        ca = _read_pair(decoded, CA_CERT, CA_KEY)
    except ValueError as error:
        raise UnusableSecret(f"its CA cannot sign: {error}") from None
    if ca.cert.not_valid_after_utc <= now:
        raise UnusableSecret(f"its CA expired at {ca.cert.not_valid_after_utc.isoformat()}")
    notes: list[str] = []
    serving: Pair | None = None
    try:
        serving = _read_pair(decoded, SERVING_CERT, SERVING_KEY)
    except ValueError as error:
        notes.append(f"serving certificate: {error}")
    next_ca: Pair | None = None
    if NEXT_CA_CERT in decoded or NEXT_CA_KEY in decoded:
        try:
            next_ca = _read_pair(decoded, NEXT_CA_CERT, NEXT_CA_KEY)
        except ValueError as error:
            notes.append(f"next CA: {error}")
    previous: x509.Certificate | None = None
    if PREVIOUS_CA_CERT in decoded:
        try:
            previous = x509.load_pem_x509_certificate(decoded[PREVIOUS_CA_CERT])
        except ValueError as error:
            notes.append(f"previous CA: {error}")
    return WebhookTls(
        ca=ca,
        serving=serving,
        next_ca=next_ca,
        # Without their annotations (edited away), the times the CAs were made stand in: never later than the truth.
        published_at=(_read_moment(annotations, PUBLISHED_AT) or _made(next_ca.cert)) if next_ca else None,
        previous_ca=previous,
        switched_at=(_read_moment(annotations, SWITCHED_AT) or _made(ca.cert)) if previous else None,
        rotation_requested=ROTATE_CA in annotations,
        notes=tuple(notes),
    )


def _made(cert: x509.Certificate) -> datetime:
    return cert.not_valid_before_utc + CLOCK_SKEW


def certificates_in(bundle: bytes) -> Sequence[x509.Certificate]:
    """The certificates of a PEM bundle (a caBundle); none when it is not PEM."""
    try:
        return x509.load_pem_x509_certificates(bundle)
    except ValueError:
        return []
