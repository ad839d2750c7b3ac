"""The card and reader suite: the JPKI AP as JPKI.md describes it, through the device under
test. Each test names the requirements it checks; destructive ones only run on emulated cards
unless the user allows them."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conformance.plugin import CardUnderTest
from mynahil.card import Pin, digest_info_sha256
from mynahil.jpki import AID, JpkiFile
from mynahil.transports import CardRemovedError

SELECT_AP = bytes.fromhex("00A4040C0A")
OK = 0x9000


def send(card: CardUnderTest, hex_or_bytes: str | bytes) -> tuple[bytes, int]:
    raw = bytes.fromhex(hex_or_bytes) if isinstance(hex_or_bytes, str) else hex_or_bytes
    response = card.transport.transmit(raw)
    return response[:-2], int.from_bytes(response[-2:], "big")


def select_ap(card: CardUnderTest, aid: bytes = AID.JPKI.value) -> int:
    return send(card, SELECT_AP + aid)[1]


def select_ef(card: CardUnderTest, fid: int) -> int:
    return send(card, bytes.fromhex("00A4020C02") + fid.to_bytes(2, "big"))[1]


def verify_auth(card: CardUnderTest, pin: str | None) -> int:
    assert select_ap(card) == OK
    assert select_ef(card, JpkiFile.AUTH_PIN) == OK
    data = pin.encode("ascii") if pin is not None else b""
    header = bytes.fromhex("00200080")
    return send(card, header + (bytes([len(data)]) + data if data else b""))[1]


def wrong_pin(card: CardUnderTest) -> str:
    return "0000" if card.pin != "0000" else "9999"


@pytest.mark.requirement("JPKI-SEL-001")
def test_jpki_ap_selects(card_under_test: CardUnderTest) -> None:
    assert select_ap(card_under_test) == OK


@pytest.mark.requirement("JPKI-SEL-002")
def test_unknown_aid_is_6a82(card_under_test: CardUnderTest) -> None:
    assert select_ap(card_under_test, bytes.fromhex("D392F000260100000099")) == 0x6A82


@pytest.mark.requirement("JPKI-FILE-001")
def test_auth_certificate_reads_freely_and_chains_to_the_ca(
    card_under_test: CardUnderTest,
) -> None:
    api = card_under_test.api
    certificate = x509.load_der_x509_certificate(api.read_auth_certificate())
    ca = x509.load_der_x509_certificate(api.read_auth_ca_certificate())
    certificate.verify_directly_issued_by(ca)


@pytest.mark.requirement("JPKI-FILE-002")
def test_token_info_label(card_under_test: CardUnderTest) -> None:
    assert card_under_test.api.read_token_info()[:15] == b"JPKIAPICCTOKEN2"


@pytest.mark.requirement("JPKI-FILE-003")
def test_signing_certificate_needs_the_password(card_under_test: CardUnderTest) -> None:
    assert select_ap(card_under_test) == OK
    assert select_ef(card_under_test, JpkiFile.SIGN_CERT) == OK
    _, sw = send(card_under_test, "00B0000004")
    assert sw == 0x6982, f"the signing certificate answered {sw:04X} without the password"


@pytest.mark.requirement("JPKI-FILE-004")
@pytest.mark.parametrize(
    "fid", [JpkiFile.AUTH_KEY, JpkiFile.AUTH_PIN, JpkiFile.SIGN_KEY, JpkiFile.SIGN_PIN]
)
def test_keys_and_pins_never_read(card_under_test: CardUnderTest, fid: int) -> None:
    assert select_ap(card_under_test) == OK
    select_ef(card_under_test, fid)
    data, sw = send(card_under_test, "00B0000004")
    assert sw != OK
    assert data == b""


def _read_auth_certificate_raw(card: CardUnderTest, chunk: int) -> bytes:
    assert select_ap(card) == OK
    assert select_ef(card, JpkiFile.AUTH_CERT) == OK
    head, sw = send(card, "00B0000004")
    assert sw == OK
    total = 4 + int.from_bytes(head[2:4], "big")
    out = b""
    while len(out) < total:
        le = min(chunk, total - len(out))
        data, sw = send(card, bytes([0, 0xB0, len(out) >> 8, len(out) & 0xFF, le % 256]))
        assert sw == OK
        out += data
        if not data:
            break
    return out


@pytest.mark.requirement("JPKI-READ-001")
def test_le_00_reads_256_bytes(card_under_test: CardUnderTest) -> None:
    assert select_ap(card_under_test) == OK
    assert select_ef(card_under_test, JpkiFile.AUTH_CERT) == OK
    data, sw = send(card_under_test, "00B0000000")
    assert sw == OK
    assert len(data) == 256, f"Le 00 returned {len(data)} bytes"


@pytest.mark.requirement("JPKI-READ-002")
def test_offsets_chunks_and_the_end_of_the_file(card_under_test: CardUnderTest) -> None:
    whole = _read_auth_certificate_raw(card_under_test, 256)
    assert _read_auth_certificate_raw(card_under_test, 100) == whole
    x509.load_der_x509_certificate(whole)
    tail_at = len(whole) - 10
    data, sw = send(card_under_test, bytes([0, 0xB0, tail_at >> 8, tail_at & 0xFF, 0]))
    assert sw == OK
    assert data == whole[tail_at:]
    beyond = len(whole) + 0x100
    _, sw = send(card_under_test, bytes([0, 0xB0, beyond >> 8, beyond & 0xFF, 4]))
    assert sw == 0x6B00


@pytest.mark.requirement("JPKI-PIN-001")
def test_empty_verify_reports_tries(card_under_test: CardUnderTest) -> None:
    sw = verify_auth(card_under_test, None)
    assert sw & 0xFFF0 == 0x63C0
    if card_under_test.target.emulated:
        assert sw == 0x63C3


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-002")
def test_wrong_pin_counts_down_and_the_right_one_resets(card_under_test: CardUnderTest) -> None:
    before = verify_auth(card_under_test, None) & 0x0F
    assert verify_auth(card_under_test, wrong_pin(card_under_test)) == 0x63C0 | (before - 1)
    assert verify_auth(card_under_test, card_under_test.pin) == OK
    assert verify_auth(card_under_test, None) == 0x63C0 | 3


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-003")
def test_third_wrong_pin_blocks_for_good(card_under_test: CardUnderTest) -> None:
    wrong = wrong_pin(card_under_test)
    assert verify_auth(card_under_test, wrong) == 0x63C2
    assert verify_auth(card_under_test, wrong) == 0x63C1
    assert verify_auth(card_under_test, wrong) == 0x63C0
    assert verify_auth(card_under_test, card_under_test.pin) == 0x6984
    assert verify_auth(card_under_test, None) == 0x6984


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-004")
def test_counter_survives_power_cycle_and_reselect(card_under_test: CardUnderTest) -> None:
    assert verify_auth(card_under_test, wrong_pin(card_under_test)) == 0x63C2
    card_under_test.transport.inner.reset()
    assert verify_auth(card_under_test, None) == 0x63C2
    assert select_ap(card_under_test) == OK
    assert verify_auth(card_under_test, None) == 0x63C2
    assert verify_auth(card_under_test, card_under_test.pin) == OK  # leave it unlocked


@pytest.mark.requirement("JPKI-SIG-001")
def test_signature_verifies_with_the_certificate(card_under_test: CardUnderTest) -> None:
    if not card_under_test.pin:
        pytest.skip("give --conformance-pin to check signatures on a real card")
    api = card_under_test.api
    certificate = x509.load_der_x509_certificate(api.read_auth_certificate())
    message = b"conformance challenge"
    api.verify(Pin.AUTH, card_under_test.pin)
    signature = api.sign(Pin.AUTH, digest_info_sha256(message))
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert len(signature) == 256
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        pytest.fail("the signature is not PKCS#1 v1.5 over the DigestInfo with the card's key")


@pytest.mark.requirement("JPKI-SIG-002")
def test_signing_needs_the_pin(card_under_test: CardUnderTest) -> None:
    assert select_ap(card_under_test) == OK
    assert select_ef(card_under_test, JpkiFile.AUTH_KEY) == OK
    digest_info = digest_info_sha256(b"x")
    _, sw = send(
        card_under_test, bytes([0x80, 0x2A, 0x00, 0x80, len(digest_info)]) + digest_info + b"\x00"
    )
    assert sw == 0x6982


@pytest.mark.requirement("JPKI-SW-001")
def test_unknown_instruction_and_class(card_under_test: CardUnderTest) -> None:
    assert select_ap(card_under_test) == OK
    assert send(card_under_test, "00FE000000")[1] == 0x6D00
    assert send(card_under_test, "D0A4040C00")[1] == 0x6E00


@pytest.mark.requirement("JPKI-ATR-001")
def test_atr_is_the_expected_one(card_under_test: CardUnderTest) -> None:
    expected = card_under_test.target.device.expected_atr
    if not expected:
        pytest.skip("the device profile accepts any ATR")
    assert card_under_test.transport.atr.hex().upper() == expected


@pytest.mark.requirement("JPKI-TIME-001")
@pytest.mark.faults("nfc-phone")
def test_mykey_read_and_sign_fits_the_budget(card_under_test: CardUnderTest) -> None:
    if not card_under_test.pin:
        pytest.skip("give --conformance-pin to time the signing on a real card")
    budget = card_under_test.target.device.budget_ms
    if card_under_test.target.emulated:
        budget = max(budget, 5000.0)  # behind NFC latency: the phone budget of SPEC.md
    start = time.perf_counter()
    card_under_test.api.authenticate(card_under_test.pin, b"\x01" * 32)
    elapsed_ms = (time.perf_counter() - start) * 1000
    assert elapsed_ms <= budget, f"{elapsed_ms:.0f} ms > budget {budget:.0f} ms"


@pytest.mark.requirement("JPKI-ROB-001")
def test_removal_is_clean_and_reinsertion_recovers(card_under_test: CardUnderTest) -> None:
    from card_emulator import FaultProfile, FaultyCard

    if not card_under_test.target.emulated or card_under_test.target.wire != "inproc":
        pytest.skip("fault injection needs the in-process emulated card")
    card = card_under_test.emulated_card
    assert card is not None
    faulty = FaultyCard(card, FaultProfile(latency=None, remove_after=3, seed=1))
    from mynahil.card import MyNumberCard
    from mynahil.transports.inproc import InProcessTransport

    wire = InProcessTransport(faulty)
    wire.connect()
    api = MyNumberCard(wire)
    with pytest.raises(CardRemovedError):
        api.read_auth_certificate()
    faulty.profile = FaultProfile(latency=None, seed=1)
    faulty.reinsert()
    wire.connect()
    api = MyNumberCard(wire)
    assert x509.load_der_x509_certificate(api.read_auth_certificate())
