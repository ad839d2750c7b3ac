"""The signature (JPKI.md: Signature): PKCS#1 v1.5 by RSA-2048, verifiable with the certificate."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynahil.card import Pin, digest_info_sha256
from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import JpkiFile

MESSAGE = b"conformance challenge"


def _sign_apdu(digest_info: bytes, p1p2: bytes = b"\x00\x80") -> bytes:
    return b"\x80\x2a" + p1p2 + bytes([len(digest_info)]) + digest_info + b"\x00"


def _check(certificate_der: bytes, signature: bytes, message: bytes) -> None:
    key = x509.load_der_x509_certificate(certificate_der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert len(signature) == 256, f"a {len(signature)}-byte signature, not RSA-2048"
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        pytest.fail("the signature is not PKCS#1 v1.5 over the DigestInfo with the card's key")


def _need_pin(card: CardUnderTest) -> None:
    if not card.pin:
        pytest.skip("give --pin to check signatures on a real card")


@pytest.mark.requirement("JPKI-SIG-001")
def test_signature_verifies_with_the_certificate(card_under_test: CardUnderTest) -> None:
    _need_pin(card_under_test)
    api = card_under_test.api
    certificate = api.read_auth_certificate()
    api.verify(Pin.AUTH, card_under_test.pin)
    _check(certificate, api.sign(Pin.AUTH, digest_info_sha256(MESSAGE)), MESSAGE)


@pytest.mark.requirement("JPKI-SIG-002")
def test_signing_needs_the_pin(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    assert card.select_ef(JpkiFile.AUTH_KEY) == OK
    data, sw = card.send(_sign_apdu(digest_info_sha256(b"x")))
    assert sw == 0x6982, f"signing without the PIN answered {sw:04X}"
    assert data == b""


@pytest.mark.requirement("JPKI-SIG-002")
def test_the_signing_password_does_not_open_the_auth_key(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    if not card.sign_password:
        pytest.skip("give --sign-password to check it opens the signing key only")
    assert card.verify(JpkiFile.SIGN_PIN, card.sign_password) == OK
    assert card.select_ef(JpkiFile.AUTH_KEY) == OK
    data, sw = card.send(_sign_apdu(digest_info_sha256(b"x")))
    assert sw == 0x6982, f"after only the signing password the auth key answered {sw:04X}"
    assert data == b""


@pytest.mark.requirement("JPKI-SIG-002")
def test_signing_needs_a_key_ef(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    _need_pin(card)
    assert card.verify(JpkiFile.AUTH_PIN, card.pin) == OK  # the PIN EF is the current EF
    data, sw = card.send(_sign_apdu(digest_info_sha256(b"x")))
    assert sw != OK, "signed with the PIN EF selected, no key EF"
    assert data == b""


@pytest.mark.requirement("JPKI-SIG-003")
def test_signing_with_wrong_parameters(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    _need_pin(card)
    card.api.verify(Pin.AUTH, card.pin)
    card.api.select_file(JpkiFile.AUTH_KEY)
    digest_info = digest_info_sha256(MESSAGE)
    assert card.send(_sign_apdu(digest_info, b"\x00\x81"))[1] == 0x6A86, "wrong P2"
    assert card.send(_sign_apdu(digest_info, b"\x01\x80"))[1] == 0x6A86, "wrong P1"
    too_long = bytes(250)
    assert card.send(_sign_apdu(too_long))[1] == 0x6700, "a DigestInfo too long for RSA-2048"
    assert card.send(bytes.fromhex("802A008000"))[1] in (0x6700, 0x6A80), "no data"


@pytest.mark.requirement("JPKI-SIG-004")
def test_a_verified_pin_lapses(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    _need_pin(card)
    card.api.verify(Pin.AUTH, card.pin)
    assert card.select_ap() == OK
    assert card.select_ef(JpkiFile.AUTH_KEY) == OK
    assert card.send(_sign_apdu(digest_info_sha256(b"x")))[1] == 0x6982, "after reselecting the AP"
    card.api.forget_selection()
    card.api.verify(Pin.AUTH, card.pin)
    card.select_ef(JpkiFile.AUTH_KEY)
    card.power_cycle()
    # right after the reset nothing is selected: the key EF selected before it must not sign
    sw = card.send(_sign_apdu(digest_info_sha256(b"x")))[1]
    assert sw != OK, "after a reset the key selected and PIN verified before it still signed"
    assert card.select_ap() == OK
    assert card.select_ef(JpkiFile.AUTH_KEY) == OK
    assert card.send(_sign_apdu(digest_info_sha256(b"x")))[1] == 0x6982, "after a reset"


@pytest.mark.requirement("JPKI-SIG-005")
def test_the_signing_key_signs(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    if not card.sign_password:
        pytest.skip("give --sign-password to sign with a real card's signing key")
    card.api.verify(Pin.SIGN, card.sign_password)
    certificate = card.api.read_sign_certificate()
    _check(certificate, card.api.sign(Pin.SIGN, digest_info_sha256(MESSAGE)), MESSAGE)
