"""The JPKI AP's files and the certificates in them (JPKI.md: JPKI AP files; Certificates)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from mynahil.card import MyNumberCard, NoCertificate, Pin
from mynahil.card_emulator import EmulatedCard, FaultyCard
from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import AID, TOKEN_INFO, JpkiFile, decode_basic_info


def _auth_certificate(card: CardUnderTest) -> x509.Certificate:
    return x509.load_der_x509_certificate(card.api.read_auth_certificate())


@pytest.mark.requirement("JPKI-FILE-001")
def test_auth_certificate_reads_freely_and_chains_to_the_ca(
    card_under_test: CardUnderTest,
) -> None:
    certificate = _auth_certificate(card_under_test)
    ca = x509.load_der_x509_certificate(card_under_test.api.read_auth_ca_certificate())
    certificate.verify_directly_issued_by(ca)


@pytest.mark.requirement("JPKI-FILE-002")
def test_token_info_label(card_under_test: CardUnderTest) -> None:
    info = card_under_test.api.read_token_info()
    assert info[:32] == TOKEN_INFO, f"token info starts {info[:32]!r}"


@pytest.mark.requirement("JPKI-FILE-003")
def test_signing_certificate_needs_the_password(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    assert card.select_ef(JpkiFile.SIGN_CERT) == OK
    data, sw = card.send("00B0000004")
    assert sw == 0x6982, f"the signing certificate answered {sw:04X} without the password"
    assert data == b""
    if not card.pin:
        return  # the auth-PIN half needs --pin on a real card
    assert card.verify(JpkiFile.AUTH_PIN, card.pin) == OK
    assert card.select_ef(JpkiFile.SIGN_CERT) == OK
    data, sw = card.send("00B0000004")
    assert sw == 0x6982, f"after only the auth PIN the signing certificate answered {sw:04X}"
    assert data == b""


@pytest.mark.requirement("JPKI-FILE-004")
@pytest.mark.parametrize(
    "fid", [JpkiFile.AUTH_KEY, JpkiFile.AUTH_PIN, JpkiFile.SIGN_KEY, JpkiFile.SIGN_PIN],
    ids=lambda f: f"{int(f):04X}",
)  # fmt: skip
def test_keys_and_pins_never_read(card_under_test: CardUnderTest, fid: int) -> None:
    assert card_under_test.select_ap() == OK
    card_under_test.select_ef(fid)
    data, sw = card_under_test.send("00B0000004")
    assert sw != OK, f"EF {fid:04X} was readable"
    assert data == b""


@pytest.mark.requirement("JPKI-FILE-005")
def test_signing_certificates(card_under_test: CardUnderTest) -> None:
    api = card_under_test.api
    ca = x509.load_der_x509_certificate(api.read_sign_ca_certificate())
    if not card_under_test.sign_password:
        pytest.skip("give --sign-password to read the signing certificate of a real card")
    api.verify(Pin.SIGN, card_under_test.sign_password)
    certificate = x509.load_der_x509_certificate(api.read_sign_certificate())
    certificate.verify_directly_issued_by(ca)


@pytest.mark.requirement("JPKI-FILE-006")
def test_presence_flags(card_under_test: CardUnderTest) -> None:
    flags = card_under_test.api.read_file(AID.JPKI, JpkiFile.PRESENCE)
    assert flags[:3] == bytes.fromhex("8F8F00"), f"presence flags {flags.hex()}"


@pytest.mark.requirement("JPKI-CERT-001")
def test_auth_certificate_profile(card_under_test: CardUnderTest) -> None:
    certificate = _auth_certificate(card_under_test)
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048
    assert key.public_numbers().e == 65537
    assert certificate.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    issuer = certificate.issuer
    assert [a.value for a in issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["JPKI"]
    units = [a.value for a in issuer.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    assert "JPKI for user authentication" in units, f"issuer {issuer.rfc4514_string()}"
    assert certificate.serial_number > 0


@pytest.mark.requirement("JPKI-CERT-002", "SPEC-CARD-004")
def test_auth_certificate_reveals_no_one(card_under_test: CardUnderTest) -> None:
    der = card_under_test.api.read_auth_certificate()
    certificate = x509.load_der_x509_certificate(der)
    oids = {a.oid for a in certificate.subject}
    assert oids == {NameOID.COMMON_NAME}, f"subject {certificate.subject.rfc4514_string()}"
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        names = None
    assert names is None, "the certificate carries subject alternative names"
    card = card_under_test.emulated_card
    inner = card.card if isinstance(card, FaultyCard) else card
    if isinstance(inner, EmulatedCard):  # the harness knows the holder: none of it may appear
        holder = inner.state.holder
        assert holder.my_number.encode("ascii") not in der, "the My Number is in the certificate"
        assert holder.name.encode("utf-8") not in der, "the holder's name is in the certificate"
    # A standalone 12-digit number in the subject: a random hex CN often holds 12 digits in a
    # row, so only a run not embedded in other letters or digits counts.
    subject = certificate.subject.rfc4514_string().encode()
    assert not re.search(rb"(?<![0-9A-Za-z])\d{12}(?![0-9A-Za-z])", subject)


def _fifth_birthday_after(born: date, issued: date) -> date:
    """Independent of the reference code on purpose: strictly after issuance, 29 Feb -> 28 Feb."""

    def on(year: int) -> date:
        if (born.month, born.day) == (2, 29):
            return date(year, 2, 28)
        return born.replace(year=year)

    first = on(issued.year) if on(issued.year) > issued else on(issued.year + 1)
    return on(first.year + 4)


@pytest.mark.requirement("SPEC-CARD-002")
def test_certificate_validity_ends_by_the_fifth_birthday(card_under_test: CardUnderTest) -> None:
    """The card's first certificate (an emulated card under test is newly issued; a renewed
    certificate would run to the card's own expiry, which the card does not tell)."""
    if not card_under_test.target.emulated:
        pytest.skip("needs the holder's birth date from the card-info AP: emulated cards only")
    certificate = _auth_certificate(card_under_test)
    card_under_test.api.verify(Pin.CARD_INFO, card_under_test.pin)
    card_under_test.api.select_file(0x0002)
    born = decode_basic_info(card_under_test.api.read_current_file()).birth_date
    birth = date(int(born[:4]), int(born[4:6]), int(born[6:8]))
    issued = certificate.not_valid_before_utc.date()
    latest = _fifth_birthday_after(birth, issued)
    not_after = certificate.not_valid_after_utc.date()
    assert not_after <= latest, f"valid to {not_after}, after the 5th birthday {latest}"


@pytest.mark.requirement("SPEC-CARD-003")
def test_a_card_without_certificates_says_so(card_under_test: CardUnderTest) -> None:
    _card, wire = card_under_test.another_emulated_card(with_certificates=False)
    api = MyNumberCard(wire)
    with pytest.raises(NoCertificate):
        api.read_auth_certificate()
    assert card_under_test.select_ap() == OK  # the card under test is untouched
