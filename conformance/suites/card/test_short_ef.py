"""Short EF identifiers and whole-file reads (JPKI.md: JPKI AP files, short EF identifiers),
in the exact forms jsapdu's apdu-utils sends; and the JPKI AP's other EFs."""

from __future__ import annotations

import pytest

from mynahil.card import digest_info_sha256
from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import JPKI_INTERNAL_FILES, JpkiFile


def _auth_certificate(card: CardUnderTest) -> bytes:
    assert card.select_ap() == OK
    return card.api.read_auth_certificate()


@pytest.mark.requirement("JPKI-SFI-001")
def test_read_binary_by_short_ef_identifier(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    whole = _auth_certificate(card)
    assert card.select_ap() == OK  # nothing current
    data, sw = card.send("00B08A0004")  # jsapdu readBinary(0, 4, {shortEfId: 0x0A})
    assert sw == OK, f"READ BINARY by SFI 0A answered {sw:04X}"
    assert data == whole[:4]
    data, sw = card.send("00B08A8010")  # P2 is the offset
    assert (data, sw) == (whole[0x80:0x90], OK), "P2 is the offset of a read by SFI"
    data, sw = card.send("00B0010010")  # the EF became current
    assert (data, sw) == (whole[0x100:0x110], OK), "a read by SFI must make the EF current"


@pytest.mark.requirement("JPKI-SFI-002")
def test_verify_by_short_ef_identifier(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    _, sw = card.send("00200098")  # retry query of EF 0018 by SFI, nothing selected
    assert sw & 0xFFF0 == 0x63C0, f"VERIFY P2=98 (retry query) answered {sw:04X}"
    if not card.pin:
        pytest.skip("give --pin to check a VERIFY by SFI with the PIN")
    value = card.pin.encode("ascii")
    _, sw = card.send(bytes((0x00, 0x20, 0x00, 0x98, len(value))) + value)
    assert sw == OK, f"VERIFY P2=98 with the PIN answered {sw:04X}"
    assert card.select_ef(JpkiFile.AUTH_KEY) == OK
    digest_info = digest_info_sha256(b"verified by SFI")
    signature, sw = card.send(
        bytes((0x80, 0x2A, 0x00, 0x80, len(digest_info))) + digest_info + b"\x00"
    )
    assert (len(signature), sw) == (256, OK), f"the key refused after VERIFY by SFI ({sw:04X})"


@pytest.mark.requirement("JPKI-READ-005")
def test_extended_le_reads_the_whole_file(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    whole = _auth_certificate(card)
    assert card.select_ap() == OK
    data, sw = card.send("00B08A0000" + "0000")  # jsapdu readEfBinaryFull(0x0A)
    assert sw == OK, f"00 B0 8A 00 00 00 00 answered {sw:04X}"
    assert data == whole, f"an extended Le of 65,536 returned {len(data)} of {len(whole)} bytes"


@pytest.mark.requirement("JPKI-FILE-007")
@pytest.mark.parametrize("fid", JPKI_INTERNAL_FILES, ids=[f"{f:04X}" for f in JPKI_INTERNAL_FILES])
def test_the_jpki_aps_other_efs(card_under_test: CardUnderTest, fid: int) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    assert card.select_ef(fid) == OK, f"EF {fid:04X} of the JPKI AP does not select"
    data, sw = card.read(0, 4)
    assert sw in (0x6982, 0x6986), f"EF {fid:04X} answered {sw:04X} to READ BINARY"
    assert data == b""
    assert fid not in (JpkiFile.AUTH_PIN, JpkiFile.SIGN_PIN)
