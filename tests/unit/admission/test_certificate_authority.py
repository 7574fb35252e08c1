"""The webhook's own CA and serving certificate: minted, read back from the Secret, and rotated, with the clock
injected. Each state is written to Secret data and read back before the next step, as the manager does."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from slimguard.admission.certificate_authority import (
    BUNDLE,
    CA_KEY,
    PUBLISHED_AT,
    ROTATE_CA,
    SERVING_CERT,
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

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NAMES = ServingNames(service="slimguard-webhook", namespace="slimguard", extra_hosts=("127.0.0.1",))
SCHEDULE = RotationSchedule()


def stored(tls: WebhookTls, *, now: datetime, edit: dict[str, str | None] | None = None) -> WebhookTls:
    """``tls`` written to a Secret and read back at ``now`` (annotations edited as given: None removes one)."""
    annotations = {key: value for key, value in secret_annotations(tls).items() if value is not None}
    for key, value in (edit or {}).items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    return read_secret(secret_data(tls), annotations, now=now)


def step(tls: WebhookTls, now: datetime, schedule: RotationSchedule = SCHEDULE) -> tuple[WebhookTls, list[str]]:
    return advance(stored(tls, now=now), names=NAMES, now=now, schedule=schedule)


def serial(tls: WebhookTls) -> int:
    assert tls.serving is not None
    return tls.serving.cert.serial_number


def issuer_trusted(tls: WebhookTls, bundle_of: WebhookTls) -> bool:
    """Would an apiserver holding ``bundle_of``'s caBundle accept the certificate ``tls`` serves?"""
    assert tls.serving is not None
    return any(tls.serving.cert.issuer == ca.subject for ca in bundle_of.trusted()) and any(
        _verifies(tls.serving.cert, ca) for ca in bundle_of.trusted()
    )


def _verifies(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:
        return False
    return True


def test_a_fresh_ca_signs_a_serving_certificate_for_the_service_names() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    assert tls.serving is not None
    ca, served = tls.ca.cert, tls.serving.cert
    assert ca.not_valid_after_utc == T0 + 365 * DAY
    assert served.not_valid_after_utc == T0 + 90 * DAY
    assert served.not_valid_before_utc < T0  # a node whose clock lags accepts it too
    served.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "slimguard-webhook",
        "slimguard-webhook.slimguard",
        "slimguard-webhook.slimguard.svc",
        "slimguard-webhook.slimguard.svc.cluster.local",
    ]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert certificates_in(tls.bundle_pem()) == [ca]


def test_the_secret_holds_the_pair_as_kubernetes_tls_secrets_do_and_reads_back_the_same() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    data = secret_data(tls)
    assert {"tls.crt", "tls.key", "ca.crt", "ca.key", "ca-bundle.crt"} == set(data)
    assert base64.b64decode(data[SERVING_CERT]) == tls.serving.cert_pem  # type: ignore[union-attr]
    assert base64.b64decode(data[BUNDLE]) == tls.ca.cert_pem
    again = stored(tls, now=T0 + DAY)
    assert again == tls
    assert advance(again, names=NAMES, now=T0 + DAY, schedule=SCHEDULE) == (again, [])


def test_the_serving_certificate_is_renewed_with_a_third_of_its_life_left_and_the_same_ca() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    assert step(tls, T0 + 59 * DAY)[1] == []
    renewed, done = step(tls, T0 + 61 * DAY)
    assert len(done) == 1
    assert "a new one is served" in done[0]
    assert serial(renewed) != serial(tls)
    assert renewed.ca == tls.ca
    assert renewed.bundle_pem() == tls.bundle_pem()  # no trust changes: one step
    assert renewed.serving.cert.not_valid_after_utc == T0 + 151 * DAY  # type: ignore[union-attr]


def test_the_ca_rotates_in_three_steps_publish_switch_drop() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    at = T0 + 240 * DAY  # a third of 365 days left after 243.3 days
    tls, done = step(tls, at)
    assert "a new one is served" in done[0]  # the serving certificate's own renewal, on the old CA
    old_ca = tls.ca.cert
    assert step(tls, at + DAY)[1] == []

    at = T0 + 244 * DAY
    published, done = step(tls, at)
    assert done == [
        f"the CA expires at {old_ca.not_valid_after_utc.isoformat()}: a new CA is published in the caBundle; "
        f"it signs from {(at + timedelta(minutes=5)).isoformat()}"
    ]
    assert serial(published) == serial(tls)  # nothing served changes yet
    assert certificates_in(published.bundle_pem()) == [old_ca, published.next_ca.cert]  # type: ignore[union-attr]

    assert step(published, at + timedelta(minutes=4))[1] == []
    at += timedelta(minutes=5)
    switched, done = step(published, at)
    assert len(done) == 1
    assert done[0].startswith("the new CA signs the serving certificate from now on")
    assert switched.ca == published.next_ca
    switched.serving.cert.verify_directly_issued_by(switched.ca.cert)  # type: ignore[union-attr]
    assert certificates_in(switched.bundle_pem()) == [switched.ca.cert, old_ca]

    assert step(switched, at + timedelta(minutes=59))[1] == []
    dropped, done = step(switched, at + timedelta(hours=1))
    assert done == ["the old CA is dropped from the caBundle"]
    assert certificates_in(dropped.bundle_pem()) == [switched.ca.cert]
    assert serial(dropped) == serial(switched)


def test_no_step_of_two_years_leaves_a_served_certificate_untrusted_by_a_bundle_one_write_behind() -> None:
    """What 'no review lost' needs of the plan: an apiserver that has not yet seen the latest caBundle trusts the
    new certificate, and a replica that has not yet loaded it serves one the new caBundle trusts."""
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    at, rotations, renewals = T0, 0, 0
    while at < T0 + 800 * DAY:
        at += DAY if tls.next_ca is None and tls.previous_ca is None else timedelta(minutes=10)
        after, done = step(tls, at)
        if done:
            assert issuer_trusted(after, bundle_of=tls), (at, done)
            assert issuer_trusted(tls, bundle_of=after), (at, done)
            rotations += any("published" in line for line in done)
            renewals += any("a new one is served" in line for line in done)
        assert after.serving.cert.not_valid_after_utc - at > 29 * DAY  # type: ignore[union-attr]
        tls = after
    assert rotations == 3  # at about 243, 486 and 729 days
    assert renewals >= 9


def test_a_rotation_asked_for_on_the_secret_starts_at_once_and_its_annotation_goes() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    asked = stored(tls, now=T0 + DAY, edit={ROTATE_CA: "please"})
    assert asked.rotation_requested
    published, done = advance(asked, names=NAMES, now=T0 + DAY, schedule=SCHEDULE)
    assert done[0].startswith(f"a CA rotation was asked for ({ROTATE_CA}): a new CA is published")
    assert published.next_ca is not None
    assert secret_annotations(published)[ROTATE_CA] is None  # removed by the write
    again, done = advance(
        stored(published, now=T0 + DAY, edit={ROTATE_CA: "again"}), names=NAMES, now=T0 + DAY, schedule=SCHEDULE
    )
    assert done == [f"a CA rotation was asked for ({ROTATE_CA}) while one is under way: it goes on"]
    assert again.next_ca == published.next_ca


def test_a_published_ca_whose_annotation_was_edited_away_still_switches_on_time() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    published, _ = advance(
        stored(tls, now=T0, edit={ROTATE_CA: "1"}), names=NAMES, now=T0, schedule=SCHEDULE
    )  # fmt: skip
    later = T0 + timedelta(minutes=6)
    edited = stored(published, now=later, edit={PUBLISHED_AT: None})
    switched, done = advance(edited, names=NAMES, now=later, schedule=SCHEDULE)
    assert switched.ca == published.next_ca, done


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    short = RotationSchedule(ca_validity=100 * DAY)
    tls = fresh(names=NAMES, now=T0, schedule=short)
    assert tls.serving.cert.not_valid_after_utc == T0 + 90 * DAY  # type: ignore[union-attr]
    renewed, _ = step(tls, T0 + 61 * DAY, short)
    assert renewed.ca.cert.not_valid_after_utc == T0 + 100 * DAY
    assert renewed.serving.cert.not_valid_after_utc <= renewed.ca.cert.not_valid_after_utc  # type: ignore[union-attr]


def test_the_longest_service_and_namespace_names_fit_in_a_certificate() -> None:
    longest = ServingNames(service="s" * 63, namespace="n" * 63)
    tls = fresh(names=longest, now=T0, schedule=SCHEDULE)
    assert tls.serving is not None
    assert tls.serving.cert.subject == x509.Name([])  # a common name holds 64 characters at most
    names = tls.serving.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.critical
    assert f"{'s' * 63}.{'n' * 63}.svc" in names.value.get_values_for_type(x509.DNSName)
    assert advance(stored(tls, now=T0), names=longest, now=T0, schedule=SCHEDULE)[1] == []


def test_new_names_get_a_new_serving_certificate_from_the_same_ca() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    renamed = ServingNames(service="guard", namespace="slimguard")
    after, done = advance(stored(tls, now=T0 + DAY), names=renamed, now=T0 + DAY, schedule=SCHEDULE)
    assert done == [
        "the serving certificate does not name guard, guard.slimguard, guard.slimguard.svc, "
        f"guard.slimguard.svc.cluster.local: a new one is served, valid until {(T0 + 91 * DAY).isoformat()}"
    ]
    assert after.ca == tls.ca


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        ({CA_KEY: None}, "its CA cannot sign: no ca.key"),
        ({"ca.crt": base64.b64encode(b"not a certificate").decode()}, "its CA cannot sign: ca.crt holds no PEM"),
        ({CA_KEY: "%%%"}, "its CA cannot sign: no ca.key"),
    ],
)
def test_a_secret_whose_ca_cannot_sign_is_unusable_naming_why(edit: dict[str, str | None], why: str) -> None:
    data: dict[str, str] = dict(secret_data(fresh(names=NAMES, now=T0, schedule=SCHEDULE)))
    for key, value in edit.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with pytest.raises(UnusableSecret) as raised:
        read_secret(data, {}, now=T0)
    assert str(raised.value).startswith(why)


def test_an_expired_ca_is_unusable_and_another_cas_key_does_not_pass_for_its_own() -> None:
    one, other = (fresh(names=NAMES, now=T0, schedule=SCHEDULE) for _ in range(2))
    with pytest.raises(UnusableSecret, match="its CA expired at"):
        read_secret(secret_data(one), {}, now=T0 + 366 * DAY)
    mixed = secret_data(one) | {CA_KEY: secret_data(other)[CA_KEY]}
    with pytest.raises(UnusableSecret, match=r"ca\.key is not the key of ca\.crt"):
        read_secret(mixed, {}, now=T0)


def test_a_garbled_serving_certificate_is_made_again_from_the_ca() -> None:
    tls = fresh(names=NAMES, now=T0, schedule=SCHEDULE)
    data = secret_data(tls) | {SERVING_CERT: base64.b64encode(b"garbage").decode()}
    read = read_secret(data, {}, now=T0)
    assert read.serving is None
    assert read.notes
    assert read.notes[0].startswith("serving certificate: tls.crt holds no PEM certificate")
    after, done = advance(read, names=NAMES, now=T0, schedule=SCHEDULE)
    assert done[0].startswith("no serving certificate: a new one is served")
    after.serving.cert.verify_directly_issued_by(tls.ca.cert)  # type: ignore[union-attr]


def test_the_schedule_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="ca_validity must be positive"):
        RotationSchedule(ca_validity=timedelta(0))
    with pytest.raises(ValueError, match="must not be negative"):
        RotationSchedule(overlap=-DAY)
