"""The emulated card against JPKI.md, fact by fact, in raw APDUs.

Each test names the section of JPKI.md it checks; choices the emulator makes where JPKI.md is
silent are tested as the README documents them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynahil.card import digest_info_sha256
from mynahil.card_emulator import CardState, EmulatedCard, contactless_type_b_atr, save_card
from mynahil.card_emulator.state import CardFile
from mynahil.jpki import AID, decode_basic_info, decode_my_number
from tests.support import PASSWORD, PIN, CardFactory

OK = b"\x90\x00"


def select_aid(aid: AID) -> bytes:
    return bytes((0x00, 0xA4, 0x04, 0x0C, len(aid.value))) + aid.value


def select_ef(fid: int) -> bytes:
    return bytes.fromhex("00A4020C02") + fid.to_bytes(2, "big")


def read(offset: int, le: int) -> bytes:
    return bytes((0x00, 0xB0, offset >> 8, offset & 0xFF, le % 256))


def verify(pin: bytes) -> bytes:
    return bytes((0x00, 0x20, 0x00, 0x80, len(pin))) + pin


def sign(data: bytes) -> bytes:
    return bytes((0x80, 0x2A, 0x00, 0x80, len(data))) + data + b"\x00"


def sw(response: bytes) -> str:
    return response[-2:].hex().upper()


def read_all(card: EmulatedCard) -> bytes:
    out = b""
    while True:
        response = card.transmit(read(len(out), 0))
        if sw(response) == "6B00":
            return out
        assert sw(response) == "9000"
        out += response[:-2]
        if len(response) - 2 < 256:
            return out


# --- applications ----------------------------------------------------------------------------


@pytest.mark.parametrize("aid", list(AID))
def test_every_application_selects(card: EmulatedCard, aid: AID) -> None:
    """JPKI.md "Applications": SELECT by DF name answers 9000."""
    assert card.transmit(select_aid(aid)) == OK


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00A4040C0AD392F000260100000002", "6A82"),  # unknown AID
        ("01A4040C0AD392F000260100000001", "6881"),  # logical channel 1
        ("0CA4040C0AD392F000260100000001", "6882"),  # secure messaging on SELECT
        ("0CB0000004", "69FC"),  # secure messaging otherwise
        ("00CA000000", "6D00"),  # unknown INS
        ("FFA4040C0AD392F000260100000001", "6E00"),  # invalid CLA
        ("00A4080C0AD392F000260100000001", "6A86"),  # unsupported P1
        ("00A4040C", "6700"),  # SELECT without a name
        ("00B0", "6700"),  # fewer than 4 header bytes
        ("00A4040C0AD392F0002601", "6700"),  # Lc longer than the data
    ],
)
def test_status_words_for_bad_commands(card: EmulatedCard, apdu: str, expected: str) -> None:
    """JPKI.md "Applications" and "Status words"."""
    assert sw(card.transmit(bytes.fromhex(apdu))) == expected


def test_ef_outside_any_application_is_not_found(card: EmulatedCard) -> None:
    assert sw(card.transmit(select_ef(0x000A))) == "6A82"


# --- JPKI AP files -------------------------------------------------------------------------


def test_free_files_read_without_pin(card: EmulatedCard, card_state: CardState) -> None:
    """JPKI.md "JPKI AP files": 0002, 000A, 000B, 0006, 0008 are free."""
    assert card_state.auth is not None
    assert card_state.sign is not None
    card.transmit(select_aid(AID.JPKI))
    expected = {
        0x000A: card_state.auth.certificate,
        0x000B: card_state.auth.ca_certificate,
        0x0002: card_state.sign.ca_certificate,
    }
    for fid, content in expected.items():
        assert card.transmit(select_ef(fid)) == OK
        assert read_all(card) == content
    card.transmit(select_ef(0x0006))
    token = read_all(card)
    assert token[:32] == b"JPKIAPICCTOKEN2".ljust(32, b" ")
    card.transmit(select_ef(0x0008))
    assert read_all(card) == bytes.fromhex("8F8F00")


def test_signing_certificate_needs_the_password(card: EmulatedCard, card_state: CardState) -> None:
    """JPKI.md: 0001 is readable after the signing password only, else 6982."""
    assert card_state.sign is not None
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0001))
    assert sw(card.transmit(read(0, 4))) == "6982"
    card.transmit(select_ef(0x001B))
    assert card.transmit(verify(PASSWORD.encode())) == OK
    card.transmit(select_ef(0x0001))
    assert read_all(card) == card_state.sign.certificate


@pytest.mark.parametrize("fid", [0x0017, 0x0018, 0x001A, 0x001B])
def test_keys_and_pins_are_never_readable(card: EmulatedCard, fid: int) -> None:
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    card.transmit(verify(PIN.encode()))
    assert card.transmit(select_ef(fid)) == OK
    assert sw(card.transmit(read(0, 4))) == "6986"


def test_read_binary_chunks_offsets_and_der_length(
    card: EmulatedCard, card_state: CardState
) -> None:
    """JPKI.md READ BINARY: ≤256 a command (Le 00 = 256), short read at the end, 6B00 beyond."""
    assert card_state.auth is not None
    cert = card_state.auth.certificate
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x000A))
    head = card.transmit(read(0, 4))
    assert head[:2] == b"\x30\x82"
    assert int.from_bytes(head[2:4], "big") + 4 == len(cert)
    assert len(card.transmit(read(0, 0))) == 256 + 2
    tail = card.transmit(read(len(cert) - 10, 0))
    assert tail == cert[-10:] + OK
    assert sw(card.transmit(read(len(cert), 1))) == "6B00"
    assert sw(card.transmit(read(0x7FFF, 1))) == "6B00"
    assert sw(card.transmit(bytes.fromhex("00B00000"))) == "6700"  # no Le
    # SFI 01 names the signing certificate, which needs the signing password (issue 14)
    assert sw(card.transmit(bytes.fromhex("00B0810004"))) == "6982"


# --- PINs ----------------------------------------------------------------------------------


def test_auth_pin_three_tries_then_blocked(card: EmulatedCard) -> None:
    """JPKI.md "PINs": 63C2, 63C1, 63C0, then 6984 for every VERIFY, the right PIN included."""
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    assert sw(card.transmit(bytes.fromhex("00200080"))) == "63C3"
    assert [sw(card.transmit(verify(b"0000"))) for _ in range(3)] == ["63C2", "63C1", "63C0"]
    assert sw(card.transmit(verify(PIN.encode()))) == "6984"
    assert sw(card.transmit(bytes.fromhex("00200080"))) == "6984"


def test_signing_password_has_five_tries(card: EmulatedCard) -> None:
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x001B))
    assert sw(card.transmit(bytes.fromhex("00200080"))) == "63C5"
    assert sw(card.transmit(verify(b"WRONG1"))) == "63C4"
    assert card.transmit(verify(PASSWORD.encode())) == OK
    assert sw(card.transmit(bytes.fromhex("00200080"))) == "63C5"


def test_counters_persist_across_power_cycles(card_factory: CardFactory, tmp_path: Path) -> None:
    """JPKI.md: counters live in the card; neither a reset nor a new process restores them."""
    path = tmp_path / "card.json"
    save_card(card_factory(), path)
    with CardFile(path) as stored:
        card = EmulatedCard(stored.state, stored)
        card.transmit(select_aid(AID.JPKI))
        card.transmit(select_ef(0x0018))
        card.transmit(verify(b"0000"))
        card.reset()
        card.transmit(select_aid(AID.JPKI))
        card.transmit(select_ef(0x0018))
        assert sw(card.transmit(bytes.fromhex("00200080"))) == "63C2"
    with CardFile(path) as stored:
        card = EmulatedCard(stored.state, stored)
        card.transmit(select_aid(AID.JPKI))
        card.transmit(select_ef(0x0018))
        assert sw(card.transmit(bytes.fromhex("00200080"))) == "63C2"


def test_change_reference_data(card: EmulatedCard) -> None:
    """JPKI.md: CHANGE REFERENCE DATA 00 24 01 80 only after a successful VERIFY."""
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    assert sw(card.transmit(bytes.fromhex("002401800435353535"))) == "6982"
    card.transmit(verify(PIN.encode()))
    assert sw(card.transmit(bytes.fromhex("00240180053535353535"))) == "6A80"  # 5 digits
    assert card.transmit(bytes.fromhex("002401800435353535")) == OK
    assert sw(card.transmit(verify(PIN.encode()))) == "63C2"
    assert card.transmit(verify(b"5555")) == OK


# --- signature -----------------------------------------------------------------------------


def _auth_key(card_state: CardState) -> rsa.RSAPublicKey:
    assert card_state.auth is not None
    key = x509.load_der_x509_certificate(card_state.auth.certificate).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_signature_verifies_with_the_certificate(card: EmulatedCard, card_state: CardState) -> None:
    """JPKI.md "Signature": PKCS#1 v1.5 RSA-2048 over the DigestInfo, 256 bytes + 9000."""
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    card.transmit(verify(PIN.encode()))
    card.transmit(select_ef(0x0017))
    response = card.transmit(sign(digest_info_sha256(b"message")))
    assert sw(response) == "9000"
    assert len(response) == 258
    _auth_key(card_state).verify(response[:-2], b"message", padding.PKCS1v15(), hashes.SHA256())


def test_raw_data_that_is_not_a_digest_info_is_padded_and_signed(
    card: EmulatedCard, card_state: CardState
) -> None:
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    card.transmit(verify(PIN.encode()))
    card.transmit(select_ef(0x0017))
    response = card.transmit(sign(b"\x01\x02\x03"))
    numbers = _auth_key(card_state).public_numbers()
    recovered = pow(int.from_bytes(response[:-2], "big"), numbers.e, numbers.n).to_bytes(256, "big")
    assert recovered == b"\x00\x01" + b"\xff" * (256 - 3 - 3) + b"\x00\x01\x02\x03"


def test_signature_needs_the_matching_pin(card: EmulatedCard) -> None:
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0017))
    assert sw(card.transmit(sign(digest_info_sha256(b"m")))) == "6982"
    card.transmit(select_ef(0x0018))
    card.transmit(verify(PIN.encode()))
    card.transmit(select_ef(0x001A))  # the signing key wants the signing password
    assert sw(card.transmit(sign(digest_info_sha256(b"m")))) == "6982"


def test_signature_parameter_and_length_errors(card: EmulatedCard) -> None:
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    card.transmit(verify(PIN.encode()))
    card.transmit(select_ef(0x0017))
    assert sw(card.transmit(bytes.fromhex("802A9E9A0401020304"))) == "6A86"
    assert sw(card.transmit(sign(bytes(246)))) == "6700"
    assert sw(card.transmit(bytes.fromhex("802A008000"))) == "6700"  # Le only, no data


@pytest.mark.parametrize("how", ["reset", "reselect"])
def test_security_state_cleared(card: EmulatedCard, how: str) -> None:
    """JPKI.md: the PIN must be verified since the last reset / AP selection."""
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    card.transmit(verify(PIN.encode()))
    if how == "reset":
        card.reset()
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0017))
    assert sw(card.transmit(sign(digest_info_sha256(b"m")))) == "6982"


def test_declined_card_has_no_certificate_files(card_factory: CardFactory) -> None:
    card = EmulatedCard(card_factory(with_certificates=False))
    card.transmit(select_aid(AID.JPKI))
    for fid in (0x000A, 0x0001, 0x0017, 0x001A):
        assert sw(card.transmit(select_ef(fid))) == "6A82"
    card.transmit(select_ef(0x0008))
    assert read_all(card) == bytes(3)


# --- card-info input-support AP ---------------------------------------------------------------


def test_card_info_behind_its_own_pin(card: EmulatedCard, card_state: CardState) -> None:
    """JPKI.md "Card-info input-support AP": My Number and the four facts need PIN EF 0011."""
    holder = card_state.holder
    card.transmit(select_aid(AID.CARD_INFO))
    card.transmit(select_ef(0x0001))
    assert sw(card.transmit(read(0, 0))) == "6982"
    card.transmit(select_ef(0x0011))
    assert sw(card.transmit(verify(b"0000"))) == "63C2"
    assert card.transmit(verify(PIN.encode())) == OK
    card.transmit(select_ef(0x0001))
    raw = read_all(card)
    assert raw[:3] == b"\xff\x10\x0c"
    assert decode_my_number(raw) == holder.my_number
    card.transmit(select_ef(0x0002))
    info = decode_basic_info(read_all(card))
    assert (info.name, info.address, info.birth_date, info.sex) == (
        holder.name,
        holder.address,
        holder.birth_date.strftime("%Y%m%d"),
        holder.sex.value,
    )
    # Its counter is its own: the JPKI auth PIN still has all three tries.
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x0018))
    assert sw(card.transmit(bytes.fromhex("00200080"))) == "63C3"


def test_reading_the_certificate_does_not_reveal_the_my_number(card_state: CardState) -> None:
    """SPEC.md: the user-authentication certificate carries no personal data."""
    assert card_state.auth is not None
    der = card_state.auth.certificate
    holder = card_state.holder
    for secret in (holder.my_number, holder.name, holder.address):
        assert secret.encode() not in der


def test_atr_profiles(card_factory: CardFactory) -> None:
    """JPKI.md "ATR and interface": contact and contactless Type B profiles."""
    assert EmulatedCard(card_factory()).atr == bytes.fromhex("3BE000FF8131FE4514")
    contactless = EmulatedCard(card_factory(atr_profile="contactless")).atr
    assert contactless == contactless_type_b_atr()
    assert contactless[:4] == bytes.fromhex("3B888001")
    tck = 0
    for byte in contactless[1:-1]:
        tck ^= byte
    assert tck == contactless[-1]
