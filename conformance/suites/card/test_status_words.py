"""Status words (JPKI.md: Status words)."""

from __future__ import annotations

import pytest

from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import JpkiFile

# JPKI.md's list, and the two ISO 7816-4 errors the emulator documents for cases it leaves open.
LISTED = {0x9000, 0x6984, 0x6982, 0x6A82, 0x6A86, 0x6700, 0x6985, 0x6B00, 0x6D00, 0x6E00,
          0x6881, 0x6882, 0x69FC} | {0x63C0 | n for n in range(16)} | {0x6986, 0x6A80}  # fmt: skip


@pytest.mark.requirement("JPKI-SW-001")
def test_unknown_instruction_and_class(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    assert card.send("00FE000000")[1] == 0x6D00, "unknown INS"
    assert card.send("00CA000000")[1] == 0x6D00, "GET DATA is not offered"
    assert card.send("D0A4040C00")[1] == 0x6E00, "unknown CLA"


# Only well-formed APDUs (4 bytes or more): a reader may not pass anything shorter at all.
ODD_COMMANDS = [
    "00A4040C00",  # SELECT with no AID
    "00A4040C11" + "00" * 17,  # an AID too long
    "00A4070C0A" + "D392F000260100000001",  # SELECT with a P1 nobody uses
    "00A4020C0100",  # a one-byte FID
    "00B0800004",  # short EF identifier
    "00B00000",  # READ BINARY without Le
    "0020008100",  # VERIFY to a PIN reference that does not exist
    "80CA000000",  # class 80, unknown instruction
    "FFCA000000",  # the PC/SC pseudo-APDU, sent to the card
]


@pytest.mark.requirement("JPKI-SW-002")
@pytest.mark.parametrize("command", ODD_COMMANDS)
def test_odd_commands_get_listed_status_words(card_under_test: CardUnderTest, command: str) -> None:
    card = card_under_test
    assert card.select_ap() == OK
    assert card.select_ef(JpkiFile.AUTH_CERT) == OK
    data, sw = card.send(command)
    assert sw in LISTED, f"{command} answered {sw:04X}, not a status word JPKI.md lists"
    assert sw == OK or data == b"", f"{command} answered data with an error"
