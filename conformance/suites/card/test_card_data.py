"""The card-info AP's signed data and alternative PINs, and the card-face AP (JPKI.md:
Card-info input-support AP; Card-face AP), read as jsapdu and myna read them: by short EF
identifier with an extended Le, or SELECT and short reads.

What reveals the holder (the My Number, name, address, photo) is read only from emulated
cards: on a real card it would end up in the traces a vendor sends around. Tests that need the
My Number or the security code run on emulated cards, which the harness can look into.
"""

from __future__ import annotations

import io

import pytest
from cryptography import x509
from PIL import Image

from mynahil.card_emulator import CardState
from mynahil.card_emulator.state import match_b_value
from mynahil.carddata import CardDataInvalid, CvCertificate, verify_face, verify_info
from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import AID, CardFaceFile, CardInfoFile, _read_tlvs, decode_offsets


def _emulated(card: CardUnderTest) -> CardState:
    state = card.emulated_state()
    if state is None:
        pytest.skip("needs the emulated card's data (a real card's would end up in the traces)")
    return state


def _full(card: CardUnderTest, fid: int) -> tuple[bytes, int]:
    """jsapdu's readEfBinaryFull: 00 B0 80|SFI 00 00 00 00."""
    return card.send(bytes((0x00, 0xB0, 0x80 | fid, 0x00, 0x00, 0x00, 0x00)))


def _verify_sfi(card: CardUnderTest, fid: int, value: str | None) -> int:
    data = value.encode("ascii") if value is not None else b""
    apdu = bytes((0x00, 0x20, 0x00, 0x80 | fid)) + (bytes((len(data),)) + data if data else b"")
    return card.send(apdu)[1]


def _ok(card: CardUnderTest, fid: int) -> bytes:
    data, sw = _full(card, fid)
    assert sw == OK, f"EF {fid:04X} answered {sw:04X}"
    return data


def _root(card: CardUnderTest) -> x509.Certificate:
    root = card.jlis_root()
    if root is None:
        pytest.skip("the suite holds no J-LIS root for this card")
    return root


# --- card-info AP ----------------------------------------------------------------------------


def _df21_by_its_header(card: CardUnderTest) -> None:
    """A real card through its reader: EF 0002's DF21 header and the tags it points at, read a
    few bytes at a time, so no name, address or birth date enters the traces."""
    if not card.card_info_pin:
        pytest.skip("give --card-info-pin to check a real card's DF21 header")
    assert card.verify(CardInfoFile.PIN, card.card_info_pin, AID.CARD_INFO) == OK
    assert card.select_ef(CardInfoFile.BASIC_INFO) == OK
    head, sw = card.read(0, 8)  # FF 20, a BER length, DF 21 and its length
    assert sw == OK, f"EF 0002 answered {sw:04X}"
    assert head[:2] == b"\xff\x20", f"EF 0002 starts {head[:2].hex()}"
    at = 3 + (head[2] & 0x7F if head[2] & 0x80 else 0)
    assert head[at : at + 2] == b"\xdf\x21", "EF 0002 must start with DF21 (myna skips it)"
    value, sw = card.read(at + 3, head[at + 2])
    assert sw == OK, f"DF21 answered {sw:04X}"
    tags = [card.read(offset, 2)[0] for offset in decode_offsets(value)]
    assert tags == [b"\xdf\x22", b"\xdf\x23", b"\xdf\x24", b"\xdf\x25"], [t.hex() for t in tags]


@pytest.mark.requirement("JPKI-CINFO-004")
def test_basic_info_starts_with_df21_offsets(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-info")
    if card.emulated_state() is None:
        _df21_by_its_header(card)
        return
    assert card.verify(CardInfoFile.PIN, card.pin, AID.CARD_INFO) == OK
    ef2 = _ok(card, CardInfoFile.BASIC_INFO)
    outer = _read_tlvs(ef2).get(b"\xff\x20", b"")
    inner = _read_tlvs(outer)
    assert next(iter(inner), None) == b"\xdf\x21", "EF 0002 must start with DF21 (myna skips it)"
    offsets = decode_offsets(inner[b"\xdf\x21"])
    tags = [ef2[o : o + 2] for o in offsets]
    assert tags == [b"\xdf\x22", b"\xdf\x23", b"\xdf\x24", b"\xdf\x25"], [t.hex() for t in tags]


@pytest.mark.requirement("JPKI-CINFO-005")
def test_card_info_signature_verifies(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-info")
    _emulated(card)
    assert card.verify(CardInfoFile.PIN, card.pin, AID.CARD_INFO) == OK
    ef1, ef2, ef3, ef4 = (_ok(card, fid) for fid in (1, 2, 3, 4))
    try:
        verify_info(ef1, ef2, ef3, ef4, _root(card))
    except CardDataInvalid as exc:
        pytest.fail(f"the card-info AP's data does not verify: {exc}")


@pytest.mark.requirement("JPKI-CINFO-006")
def test_card_info_free_files(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-info")
    assert card.select_ap(AID.CARD_INFO) == OK
    assert card.select_ef(CardInfoFile.SIGNATURE) == OK
    _, sw = card.read(0, 4)
    assert sw == 0x6982, f"EF 0003 answered {sw:04X} without a PIN"
    assert card.select_ef(CardInfoFile.CERTIFICATE) == OK
    certificate = card.api.read_current_file()
    CvCertificate.parse(certificate)  # 7F21 { 5F4E issuer subject key, 5F37 signature }
    assert card.select_ef(CardInfoFile.AP_INFO) == OK
    info = card.api.read_current_file()
    (payload,) = _read_tlvs(info).values()  # myna's basic_info: one TLV holding two
    assert len(_read_tlvs(payload)) >= 2, f"EF 0005 holds {info.hex()}"


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-CINFO-007")
def test_match_a_and_b_open_the_card_info_ap(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-info")
    state = _emulated(card)
    b = match_b_value(state.holder, state.card_expires, state.security_code)
    for fid, value in ((CardInfoFile.PIN_A, state.holder.my_number), (CardInfoFile.PIN_B, b)):
        assert card.select_ap(AID.CARD_INFO) == OK
        _, sw = _full(card, CardInfoFile.MY_NUMBER)
        assert sw == 0x6982
        assert _verify_sfi(card, fid, value) == OK, f"EF {fid:04X} refused the right value"
        for ef in (1, 2, 3):
            _ok(card, ef)
    assert card.select_ap(AID.CARD_INFO) == OK
    counters = {f: _verify_sfi(card, f, None) for f in (0x11, 0x14, 0x15)}
    assert all(sw & 0xFFF0 == 0x63C0 for sw in counters.values()), counters
    wrong = "0" * 12 if state.holder.my_number != "0" * 12 else "1" * 12
    assert _verify_sfi(card, CardInfoFile.PIN_A, wrong) == counters[0x14] - 1
    assert _verify_sfi(card, CardInfoFile.PIN_B, None) == counters[0x15], "A and B share a counter"
    assert _verify_sfi(card, CardInfoFile.PIN, None) == counters[0x11], "A's try cost the PIN one"


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-CINFO-008")
def test_match_b_checks_the_expiry_year(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-info")
    state = _emulated(card)
    right = match_b_value(state.holder, state.card_expires, state.security_code)
    for wrong in (
        right[:6] + f"{state.card_expires.year - 5:04d}" + right[10:],  # another expiry year
        right[:10] + f"{(int(right[10:]) + 1) % 10000:04d}",  # another security code
        f"{(int(right[:6]) + 1):06d}"[-6:] + right[6:],  # another birth date
    ):
        assert card.select_ap(AID.CARD_INFO) == OK
        before = _verify_sfi(card, CardInfoFile.PIN_B, None)
        assert _verify_sfi(card, CardInfoFile.PIN_B, wrong) == before - 1, f"accepted {wrong}"
        _, sw = _full(card, CardInfoFile.MY_NUMBER)
        assert sw == 0x6982
    assert _verify_sfi(card, CardInfoFile.PIN_B, right) == OK


# --- card-face AP ----------------------------------------------------------------------------


@pytest.mark.requirement("JPKI-FACE-001")
def test_card_face_free_and_protected_files(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-face")
    assert card.select_ap(AID.CARD_FACE) == OK
    info = _ok(card, CardFaceFile.AP_INFO)
    (payload,) = _read_tlvs(info).values()  # myna's visual basic_info: four TLVs inside
    assert len(_read_tlvs(payload)) >= 4, f"EF 0003 holds {info.hex()}"
    CvCertificate.parse(_ok(card, CardFaceFile.CERTIFICATE))
    for fid in (CardFaceFile.BIRTH, CardFaceFile.ENTRIES, CardFaceFile.MY_NUMBER):
        data, sw = _full(card, fid)
        assert (data, sw) == (b"", 0x6982), f"EF {fid:04X} answered {sw:04X} without a PIN"


@pytest.mark.requirement("JPKI-FACE-002")
def test_card_face_entries(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-face")
    state = _emulated(card)
    assert card.select_ap(AID.CARD_FACE) == OK
    assert _verify_sfi(card, CardFaceFile.PIN_A, state.holder.my_number) == OK
    entries_ef = _ok(card, CardFaceFile.ENTRIES)
    inner = _read_tlvs(_read_tlvs(entries_ef)[b"\xff\x20"])
    assert list(inner) == [bytes((0xDF, t)) for t in range(0x21, 0x2B)], [t.hex() for t in inner]
    offsets = decode_offsets(inner[b"\xdf\x21"])
    assert [entries_ef[o : o + 2] for o in offsets] == list(inner)[1:]
    for tag, kind in ((0x25, "PNG"), (0x26, "PNG"), (0x27, "JPEG2000"), (0x2A, "PNG")):
        image = Image.open(io.BytesIO(inner[bytes((0xDF, tag))]))
        assert image.format == kind, f"DF{tag:02X} is {image.format}, not {kind}"
    entries = verify_face(
        _ok(card, CardFaceFile.BIRTH), entries_ef, _ok(card, CardFaceFile.MY_NUMBER),
        _ok(card, CardFaceFile.CERTIFICATE), _root(card),
    )  # fmt: skip
    assert entries.birth == f"{state.holder.birth_date:%Y%m%d}"
    assert entries.expiry == f"{state.card_expires:%Y%m%d}"


@pytest.mark.requirement("JPKI-FACE-003")
def test_which_pin_opens_which_card_face_file(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    card.require_application("card-face")
    state = _emulated(card)
    h = state.holder
    b = match_b_value(h, state.card_expires, state.security_code)
    expected = (
        (CardFaceFile.PIN_BIRTH, f"{h.birth_date:%y%m%d}", {1}),
        (CardFaceFile.PIN_B, b, {1, 2}),
        (CardFaceFile.PIN_A, h.my_number, {1, 2, 5}),
    )
    for pin, value, opens in expected:
        assert card.select_ap(AID.CARD_FACE) == OK
        assert _verify_sfi(card, pin, value) == OK, f"PIN EF {pin:04X} refused the right value"
        for fid in (1, 2, 5):
            _, sw = _full(card, fid)
            want = OK if fid in opens else 0x6982
            assert sw == want, f"after PIN EF {pin:04X}, EF {fid:04X} answered {sw:04X}"
