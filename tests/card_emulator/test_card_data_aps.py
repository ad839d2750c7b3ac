"""Short EF identifiers, extended Le, the complete card-info AP and the card-face AP, in raw
APDUs (JPKI.md: short EF identifiers, card-info input-support AP, card-face AP; issue 14).

The command sequences of public clients are replayed byte for byte in
``tests/card_emulator/test_public_client_sequences.py``; these tests pin each rule on its own.
"""

from __future__ import annotations

from datetime import date

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from mynahil.card_emulator import CardState, EmulatedCard
from mynahil.card_emulator.state import from_json, match_b_value, to_json
from mynahil.carddata import CardDataInvalid, verify_face, verify_info
from mynahil.jpki import (
    AID,
    JPKI_INTERNAL_FILES,
    BasicInfo,
    _read_tlvs,
    decode_basic_info,
    decode_offsets,
    encode_basic_info,
)
from mynahil.reference_impl.jlis import JlisCA
from tests.card_emulator.test_jpki_rules import select_aid, select_ef, sw
from tests.support import PASSWORD, PIN, CardFactory, examples

OK = b"\x90\x00"


def apdu(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def verify_sfi(sfi: int, value: str) -> bytes:
    data = value.encode("ascii")
    return bytes((0x00, 0x20, 0x00, 0x80 | sfi, len(data))) + data


def read_full(sfi: int) -> bytes:
    """jsapdu's readEfBinaryFull: ``00 B0 8x 00 00 00 00`` (extended Le 65,536)."""
    return bytes((0x00, 0xB0, 0x80 | sfi, 0x00, 0x00, 0x00, 0x00))


def ok(response: bytes) -> bytes:
    assert response[-2:] == OK, f"answered {sw(response)}"
    return response[:-2]


# --- addressing ------------------------------------------------------------------------------


def test_read_binary_by_short_ef_identifier(card: EmulatedCard, card_state: CardState) -> None:
    """P1 = 80|SFI reads that EF of the current AP at offset P2 and makes it current."""
    assert card_state.auth is not None
    cert = card_state.auth.certificate
    card.transmit(select_aid(AID.JPKI))
    assert ok(card.transmit(apdu("00 B0 8A 00 04"))) == cert[:4]
    assert ok(card.transmit(apdu("00 B0 8A 10 04"))) == cert[0x10:0x14]
    # the EF is now current: a plain READ BINARY continues in it
    assert ok(card.transmit(apdu("00 B0 01 00 08"))) == cert[0x100:0x108]
    assert ok(card.transmit(read_full(0x0B))) == card_state.auth.ca_certificate


def test_short_ef_identifier_rules(card: EmulatedCard) -> None:
    """The README's choices: SFIs 1..30 of the current AP; 0, 31 and P1 bits 6-7 → 6A86; no AP
    or no such EF → 6A82; key and PIN EFs keep answering 6986."""
    assert sw(card.transmit(apdu("00 B0 8A 00 04"))) == "6A82"  # no AP selected
    card.transmit(select_aid(AID.JPKI))
    assert sw(card.transmit(apdu("00 B0 80 00 04"))) == "6A86"
    assert sw(card.transmit(apdu("00 B0 9F 00 04"))) == "6A86"
    assert sw(card.transmit(apdu("00 B0 C1 00 04"))) == "6A86"
    assert sw(card.transmit(apdu("00 B0 83 00 04"))) == "6A82"  # no EF 0003 in the JPKI AP
    for key_or_pin in (0x17, 0x18, 0x1A, 0x1B):
        assert sw(card.transmit(bytes((0x00, 0xB0, 0x80 | key_or_pin, 0, 4)))) == "6986"
    card.transmit(select_aid(AID.CARD_INFO))
    assert sw(card.transmit(apdu("00 B0 8A 00 04"))) == "6A82", "SFIs name the current AP only"


def test_verify_and_change_by_short_ef_identifier(card: EmulatedCard) -> None:
    card.transmit(select_aid(AID.JPKI))
    assert sw(card.transmit(apdu("00 20 00 98"))) == "63C3"  # retry query by SFI
    assert sw(card.transmit(verify_sfi(0x18, "0000"))) == "63C2"
    assert sw(card.transmit(verify_sfi(0x18, PIN))) == "9000"
    assert sw(card.transmit(apdu("00 20 00 8A"))) == "6986"  # a certificate is no PIN EF
    assert sw(card.transmit(apdu("00 20 00 83"))) == "6A82"
    assert sw(card.transmit(apdu("00 20 00 40"))) == "6A86"
    assert sw(card.transmit(apdu("00 24 01 98 04 35 36 37 38"))) == "9000"
    assert sw(card.transmit(verify_sfi(0x18, "5678"))) == "9000"
    # VERIFY by SFI does not change the current EF: nothing is selected yet
    assert sw(card.transmit(apdu("00 B0 00 00 04"))) == "6986"


def test_extended_le_answers_the_whole_file(card: EmulatedCard, card_state: CardState) -> None:
    assert card_state.auth is not None
    card.transmit(select_aid(AID.JPKI))
    card.transmit(select_ef(0x000A))
    assert ok(card.transmit(apdu("00 B0 00 00 00 00 00"))) == card_state.auth.certificate
    assert ok(card.transmit(apdu("00 B0 00 10 00 00 00"))) == card_state.auth.certificate[16:]


def test_the_jpki_aps_internal_efs(card: EmulatedCard) -> None:
    """The EFs public clients name but nobody describes: present, never readable."""
    card.transmit(select_aid(AID.JPKI))
    for fid in JPKI_INTERNAL_FILES:
        assert sw(card.transmit(select_ef(fid))) == "9000", f"{fid:04X}"
        assert sw(card.transmit(apdu("00 B0 00 00 04"))) == "6986", f"{fid:04X}"
        assert sw(card.transmit(bytes((0x00, 0xB0, 0x80 | fid, 0, 4)))) == "6986"
        assert sw(card.transmit(apdu("00 20 00 80"))) == "6986"


# --- the card-info AP --------------------------------------------------------------------------


def _root(ca: JlisCA) -> x509.Certificate:
    return x509.load_der_x509_certificate(ca.auth_ca_certificate)


@pytest.fixture
def ca(card_factory: CardFactory) -> JlisCA:
    return card_factory.ca


def _info_files(card: EmulatedCard) -> list[bytes]:
    return [ok(card.transmit(read_full(sfi))) for sfi in (1, 2, 3, 4)]


def test_card_info_ap_signed_data_verifies(card: EmulatedCard, ca: JlisCA) -> None:
    card.transmit(select_aid(AID.CARD_INFO))
    assert sw(card.transmit(read_full(1))) == "6982"
    assert sw(card.transmit(read_full(3))) == "6982"
    assert sw(card.transmit(read_full(4))) == "9000", "the intermediate certificate is free"
    assert sw(card.transmit(read_full(5))) == "9000", "AP basic info is free"
    assert sw(card.transmit(verify_sfi(0x11, PIN))) == "9000"
    ef1, ef2, ef3, ef4 = _info_files(card)
    verify_info(ef1, ef2, ef3, ef4, _root(ca))
    with pytest.raises(CardDataInvalid, match="EF 0002"):
        verify_info(ef1, ef2[:-1] + b"9", ef3, ef4, _root(ca))  # the sex changed
    with pytest.raises(CardDataInvalid, match="EF 0003"):
        verify_info(ef1, ef2, ef3[:-1] + bytes((ef3[-1] ^ 1,)), ef4, _root(ca))
    other = _root(JlisCA.create())
    with pytest.raises(CardDataInvalid, match="not issued by this J-LIS root"):
        verify_info(ef1, ef2, ef3, ef4, other)


def test_df21_offsets_point_at_each_field(card: EmulatedCard, card_state: CardState) -> None:
    card.transmit(select_aid(AID.CARD_INFO))
    card.transmit(verify_sfi(0x11, PIN))
    ef2 = ok(card.transmit(read_full(2)))
    inner = _read_tlvs(_read_tlvs(ef2)[b"\xff\x20"])
    offsets = decode_offsets(inner[b"\xdf\x21"])
    assert [ef2[o : o + 2] for o in offsets] == [b"\xdf\x22", b"\xdf\x23", b"\xdf\x24", b"\xdf\x25"]
    assert decode_basic_info(ef2).name == card_state.holder.name


@settings(max_examples=examples(60), deadline=None)
@given(st.text(max_size=80), st.text(max_size=200), st.sampled_from(["1", "2", "9"]))
def test_df21_offsets_for_any_holder(name: str, address: str, sex: str) -> None:
    info = BasicInfo(name, address, "19700101", sex)
    ef2 = encode_basic_info(info)
    inner = _read_tlvs(_read_tlvs(ef2)[b"\xff\x20"])
    tags = [b"\xdf\x22", b"\xdf\x23", b"\xdf\x24", b"\xdf\x25"]
    assert next(iter(inner)) == b"\xdf\x21", "DF21 comes first: clients skip the first inner TLV"
    assert [ef2[o : o + 2] for o in decode_offsets(inner[b"\xdf\x21"])] == tags
    assert decode_basic_info(ef2) == info


def test_match_a_and_b_open_the_card_info_ap(card: EmulatedCard, card_state: CardState) -> None:
    h = card_state.holder
    b = match_b_value(h, card_state.card_expires, card_state.security_code)
    assert len(b) == 14
    assert b.startswith(f"{h.birth_date:%y%m%d}")
    assert b[6:10] == f"{card_state.card_expires.year}"
    for sfi, value in ((0x14, h.my_number), (0x15, b)):
        card.transmit(select_aid(AID.CARD_INFO))
        assert sw(card.transmit(read_full(1))) == "6982"
        assert sw(card.transmit(bytes((0, 0x20, 0, 0x80 | sfi)))) == "63CA"
        assert sw(card.transmit(verify_sfi(sfi, value))) == "9000"
        assert ok(card.transmit(read_full(1)))[3:15] == h.my_number.encode()


def test_match_b_checks_the_expiry_year(card: EmulatedCard, card_state: CardState) -> None:
    h = card_state.holder
    right = match_b_value(h, card_state.card_expires, card_state.security_code)
    wrong_year = right[:6] + f"{card_state.card_expires.year + 1}" + right[10:]
    card.transmit(select_aid(AID.CARD_INFO))
    assert sw(card.transmit(verify_sfi(0x15, wrong_year))) == "63C9"
    assert sw(card.transmit(verify_sfi(0x15, right))) == "9000"


def test_each_alternative_pin_has_its_own_counter(
    card: EmulatedCard, card_state: CardState
) -> None:
    card.transmit(select_aid(AID.CARD_INFO))
    assert sw(card.transmit(verify_sfi(0x14, "000000000000"))) == "63C9"
    assert sw(card.transmit(apdu("00 20 00 91"))) == "63C3"
    assert sw(card.transmit(apdu("00 20 00 95"))) == "63CA"
    card.transmit(select_aid(AID.CARD_FACE))
    assert sw(card.transmit(apdu("00 20 00 93"))) == "63CA", "the card-face AP counts apart"
    # printed on the card: CHANGE REFERENCE DATA cannot change them
    card.transmit(select_aid(AID.CARD_INFO))
    card.transmit(verify_sfi(0x14, card_state.holder.my_number))
    assert sw(card.transmit(apdu("00 24 01 94 0C 313131313131313131313131"))) == "6985"


# --- the card-face AP ------------------------------------------------------------------------


def test_card_face_ap(card: EmulatedCard, card_state: CardState, ca: JlisCA) -> None:
    import io

    from PIL import Image

    h = card_state.holder
    card.transmit(select_aid(AID.CARD_FACE))
    assert sw(card.transmit(read_full(3))) == "9000", "AP info is free"
    for sfi in (1, 2, 5):
        assert sw(card.transmit(read_full(sfi))) == "6982", f"EF {sfi:04X} without a PIN"
    assert sw(card.transmit(verify_sfi(0x11, f"{h.birth_date:%y%m%d}"))) == "9000"
    birth_ef = ok(card.transmit(read_full(1)))
    assert sw(card.transmit(read_full(2))) == "6982", "the birth PIN opens EF 0001 only"
    b = match_b_value(h, card_state.card_expires, card_state.security_code)
    assert sw(card.transmit(verify_sfi(0x12, b))) == "9000"
    entries_ef = ok(card.transmit(read_full(2)))
    assert sw(card.transmit(read_full(5))) == "6982", "照合番号B does not reveal the My Number"
    assert sw(card.transmit(verify_sfi(0x13, h.my_number))) == "9000"
    my_number_ef = ok(card.transmit(read_full(5)))
    ef4 = ok(card.transmit(read_full(4)))
    entries = verify_face(birth_ef, entries_ef, my_number_ef, ef4, _root(ca))
    assert entries.birth == f"{h.birth_date:%Y%m%d}"
    assert entries.expiry == f"{card_state.card_expires:%Y%m%d}"
    assert entries.sex == h.sex.value
    assert Image.open(io.BytesIO(entries.photo_jp2)).format == "JPEG2000"
    assert Image.open(io.BytesIO(entries.name_png)).format == "PNG"
    assert 6_000 < len(entries_ef) < 40_000, "about the size a real card face reads"
    tampered = entries_ef.replace(entries.name_png[-40:], bytes(40))
    with pytest.raises(CardDataInvalid):
        verify_face(None, tampered, None, ef4, _root(ca))


# --- old card files --------------------------------------------------------------------------


def test_a_card_file_from_before_loads_with_documented_defaults(card_state: CardState) -> None:
    data = to_json(card_state)
    for key in ("security_code", "signed"):
        del data[key]
    for slot in ("info_a", "info_b", "face_birth", "face_a", "face_b"):
        del data["pins"][slot]
    old = from_json(data)
    assert len(old.security_code) == 4
    assert old.security_code.isdigit()
    assert old.security_code == from_json(data).security_code, "stable for the card"
    assert old.signed is None
    card = EmulatedCard(old)
    card.transmit(select_aid(AID.CARD_INFO))
    assert sw(card.transmit(verify_sfi(0x15, match_b_value(
        old.holder, old.card_expires, old.security_code)))) == "9000"  # fmt: skip
    assert sw(card.transmit(read_full(2))) == "9000"
    assert sw(card.transmit(read_full(3))) == "6A82", "no J-LIS signature on an old card"
    card.transmit(select_aid(AID.CARD_FACE))
    assert sw(card.transmit(read_full(3))) == "9000"
    assert sw(card.transmit(read_full(2))) == "6A82"


def test_issuance_checks_the_security_code(ca: JlisCA, card_state: CardState) -> None:
    from mynahil.reference_impl.jlis import issue_card

    with pytest.raises(ValueError, match="security code"):
        issue_card(
            ca,
            card_state.holder,
            pin=PIN,
            password=PASSWORD,
            issued_on=date(2024, 1, 1),
            with_certificates=False,
            security_code="12a4",
        )
