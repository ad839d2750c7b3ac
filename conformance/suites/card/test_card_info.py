"""The card-info input-support AP (JPKI.md: Card-info input-support AP).

Its contents (the My Number, name, address) are read only from emulated cards: on a real card
they would end up in the traces a vendor sends around.
"""

from __future__ import annotations

import re

import pytest

from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import AID, CardInfoFile, JpkiFile


@pytest.mark.requirement("JPKI-CINFO-001")
def test_card_info_pin_has_three_tries(card_under_test: CardUnderTest) -> None:
    sw = card_under_test.verify(CardInfoFile.PIN, None, AID.CARD_INFO)
    assert sw & 0xFFF0 == 0x63C0, f"the card-info PIN's retry query answered {sw:04X}"
    assert sw == 0x63C3, (
        f"the card-info PIN shows {sw & 0x0F} of 3 tries (a fresh or correctly reset one shows 3)"
    )


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-CINFO-001")
def test_card_info_pin_counts_on_its_own(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    wrong = card.verify(CardInfoFile.PIN, card.wrong_pin(), AID.CARD_INFO)
    assert wrong == 0x63C2, f"a wrong card-info PIN answered {wrong:04X}"
    auth = card.verify(JpkiFile.AUTH_PIN, None)
    assert auth == 0x63C3, f"a wrong card-info PIN left the auth PIN at {auth:04X}"
    assert card.verify(CardInfoFile.PIN, card.pin, AID.CARD_INFO) == OK
    after = card.verify(CardInfoFile.PIN, None, AID.CARD_INFO)
    assert after == 0x63C3, f"after a correct card-info PIN its counter answers {after:04X}"


@pytest.mark.requirement("JPKI-CINFO-002")
@pytest.mark.parametrize("fid", [CardInfoFile.MY_NUMBER, CardInfoFile.BASIC_INFO],
                         ids=["0001", "0002"])  # fmt: skip
def test_card_info_needs_the_pin(card_under_test: CardUnderTest, fid: int) -> None:
    card = card_under_test
    assert card.select_ap(AID.CARD_INFO) == OK
    assert card.select_ef(fid) == OK
    data, sw = card.read(0, 4)
    assert sw == 0x6982, f"EF {fid:04X} of the card-info AP answered {sw:04X} without the PIN"
    assert data == b""


def _tlvs(data: bytes) -> dict[bytes, bytes]:
    """Two-byte tags (FF10, FF20, DF22 …) with BER lengths; an independent reading of JPKI.md."""
    out: dict[bytes, bytes] = {}
    i = 0
    while i + 3 <= len(data):
        tag, length, i = data[i : i + 2], data[i + 2], i + 3
        if length & 0x80:
            size = length & 0x7F
            length, i = int.from_bytes(data[i : i + size], "big"), i + size
        out[tag] = data[i : i + length]
        i += length
    return out


@pytest.mark.requirement("JPKI-CINFO-003")
def test_card_info_contents(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    if not card.target.emulated:
        pytest.skip("a real card's My Number and address would end up in the traces")
    assert card.verify(CardInfoFile.PIN, card.pin, AID.CARD_INFO) == OK
    assert card.select_ef(CardInfoFile.MY_NUMBER) == OK
    data, sw = card.read(0, 256)
    assert sw == OK
    assert data[:3] == b"\xff\x10\x0c", f"EF 0001 starts {data[:3].hex()}"
    assert re.fullmatch(rb"\d{12}", data[3:15]), "12 ASCII digits"
    assert card.select_ef(CardInfoFile.BASIC_INFO) == OK
    data, sw = card.read(0, 256)
    assert sw == OK
    outer = _tlvs(data)
    assert b"\xff\x20" in outer, f"EF 0002 starts {data[:2].hex()}"
    inner = _tlvs(outer[b"\xff\x20"])
    assert set(inner) >= {b"\xdf\x22", b"\xdf\x23", b"\xdf\x24", b"\xdf\x25"}, sorted(inner)
    inner[b"\xdf\x22"].decode("utf-8")
    inner[b"\xdf\x23"].decode("utf-8")
    assert re.fullmatch(rb"\d{8}", inner[b"\xdf\x24"]), "birth date YYYYMMDD"
    assert inner[b"\xdf\x25"] in (b"1", b"2", b"9")
