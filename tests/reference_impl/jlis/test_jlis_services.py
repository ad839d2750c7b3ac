"""J-LIS services: status, CRL, OCSP, and the old→new linkage of renewal and reissue."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from mynahil.card_emulator import CardState
from mynahil.reference_impl.jlis import JlisCA, KeyPool, lifecycle, random_holder
from mynahil.reference_impl.jlis.registry import CertificateRegistry, JlisServices, ocsp_request_for
from mynahil.reference_impl.mykey import CertificateAuthority, CertificateStatus
from tests.support import PASSWORD, PIN

TODAY = date(2025, 6, 1)
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def serial(der: bytes) -> int:
    return int(x509.load_der_x509_certificate(der).serial_number)


@pytest.fixture
def services(jlis_ca: JlisCA) -> JlisServices:
    return JlisServices(jlis_ca, CertificateRegistry())


@pytest.fixture
def card(services: JlisServices, key_pool: KeyPool, rng: random.Random) -> CardState:
    return lifecycle.issue(
        services.ca, services.registry, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool,
    )  # fmt: skip


def test_services_are_what_the_mykey_platform_needs(services: JlisServices) -> None:
    authority: CertificateAuthority = services
    assert authority.auth_ca_certificate == services.ca.auth_ca_certificate


def test_status_and_suspension(services: JlisServices, card: CardState) -> None:
    assert card.auth is not None
    auth = serial(card.auth.certificate)
    assert services.status(auth) is CertificateStatus.GOOD
    assert services.status(12345) is CertificateStatus.UNKNOWN
    lifecycle.suspend(services.registry, card, at=NOW)
    assert services.status(auth) is CertificateStatus.REVOKED
    assert card.sign is not None
    assert services.status(serial(card.sign.certificate)) is CertificateStatus.REVOKED


def test_crl_is_signed_and_lists_the_revoked(services: JlisServices, card: CardState) -> None:
    assert card.auth is not None
    empty = x509.load_der_x509_crl(services.crl("auth", now=NOW))
    lifecycle.suspend(services.registry, card, at=NOW)
    crl = x509.load_der_x509_crl(services.crl("auth", now=NOW))
    _key, issuer = services.ca.signer("auth")
    public = issuer.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert crl.is_signature_valid(public)
    assert [r.serial_number for r in crl] == [serial(card.auth.certificate)]
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > empty.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert len(empty) == 0


def test_ocsp_answers_good_revoked_and_malformed(services: JlisServices, card: CardState) -> None:
    assert card.auth is not None
    request = ocsp_request_for(card.auth.certificate, services.ca.auth_ca_certificate)
    good = ocsp.load_der_ocsp_response(services.ocsp_response(request, now=NOW))
    assert good.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD
    lifecycle.suspend(services.registry, card, at=NOW)
    revoked = ocsp.load_der_ocsp_response(services.ocsp_response(request, now=NOW))
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    _key, issuer = services.ca.signer("auth")
    public = issuer.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    from cryptography.hazmat.primitives.asymmetric import padding

    assert revoked.signature_hash_algorithm is not None
    public.verify(
        revoked.signature,
        revoked.tbs_response_bytes,
        padding.PKCS1v15(),
        revoked.signature_hash_algorithm,
    )
    broken = ocsp.load_der_ocsp_response(services.ocsp_response(b"\x30\x03junk", now=NOW))
    assert broken.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_renewal_links_and_keeps_the_holder(
    services: JlisServices, card: CardState, key_pool: KeyPool
) -> None:
    assert card.auth is not None
    later = TODAY + timedelta(days=400)
    renewed = lifecycle.renew(services.ca, services.registry, card, on=later, keys=key_pool)
    assert renewed.auth is not None
    assert renewed.holder == card.holder
    assert renewed.pins == card.pins
    old, new = serial(card.auth.certificate), serial(renewed.auth.certificate)
    assert services.predecessor(new) == old
    assert services.registry.successor(old) == new
    assert services.status(old) is CertificateStatus.REVOKED
    not_after = x509.load_der_x509_certificate(renewed.auth.certificate).not_valid_after_utc
    assert not_after.date() <= renewed.card_expires
    twice = lifecycle.renew(services.ca, services.registry, renewed, on=later, keys=key_pool)
    assert twice.auth is not None
    assert services.predecessor(services.predecessor(serial(twice.auth.certificate)) or 0) == old


def test_reissue_links_the_new_card_to_the_old(
    services: JlisServices, card: CardState, key_pool: KeyPool
) -> None:
    assert card.auth is not None
    lifecycle.suspend(services.registry, card, at=NOW)
    new = lifecycle.reissue(
        services.ca, services.registry, card, on=TODAY, pin="5678", password="NEW123", keys=key_pool
    )
    assert new.auth is not None
    assert services.predecessor(serial(new.auth.certificate)) == serial(card.auth.certificate)
    assert services.status(serial(new.auth.certificate)) is CertificateStatus.GOOD
    assert services.registry.entry(serial(card.auth.certificate)) is not None


def test_declined_card_cannot_be_renewed(
    services: JlisServices, key_pool: KeyPool, rng: random.Random
) -> None:
    declined = lifecycle.issue(
        services.ca, services.registry, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool, with_certificates=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="declined"):
        lifecycle.renew(services.ca, services.registry, declined, on=TODAY)


def test_registry_survives_a_restart(
    tmp_path: Path, jlis_ca: JlisCA, key_pool: KeyPool, rng: random.Random
) -> None:
    registry = CertificateRegistry(tmp_path)
    card = lifecycle.issue(
        jlis_ca, registry, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool,
    )  # fmt: skip
    lifecycle.suspend(registry, card, at=NOW)
    renewed = lifecycle.reissue(
        jlis_ca, registry, card, on=TODAY, pin=PIN, password=PASSWORD, keys=key_pool
    )
    again = CertificateRegistry(tmp_path)
    assert card.auth is not None
    assert renewed.auth is not None
    assert again.status(serial(card.auth.certificate)) is CertificateStatus.REVOKED
    assert again.predecessor(serial(renewed.auth.certificate)) == serial(card.auth.certificate)


def test_a_running_server_sees_cards_issued_by_another_process(
    tmp_path: Path, jlis_ca: JlisCA, key_pool: KeyPool, rng: random.Random
) -> None:
    """`mynahil card new` records into the folder while `mynahil serve` holds its own copy."""
    server_view, issuer_view = CertificateRegistry(tmp_path), CertificateRegistry(tmp_path)
    card = lifecycle.issue(
        jlis_ca, issuer_view, random_holder(rng), pin=PIN, password=PASSWORD,
        issued_on=TODAY, keys=key_pool,
    )  # fmt: skip
    assert card.auth is not None
    auth = serial(card.auth.certificate)
    assert server_view.status(auth) is CertificateStatus.GOOD
    server_view.revoke(auth, "lost", NOW)  # the hotline, through the server
    lifecycle.reissue(
        jlis_ca, issuer_view, card, on=TODAY, pin=PIN, password=PASSWORD, keys=key_pool
    )
    assert issuer_view.entry(auth) is not None
    assert issuer_view.entry(auth).reason == "lost"  # type: ignore[union-attr]
