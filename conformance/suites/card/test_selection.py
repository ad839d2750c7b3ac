"""Application and file selection (JPKI.md: Applications)."""

from __future__ import annotations

import pytest

from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import AID, CardInfoFile, JpkiFile


@pytest.mark.requirement("JPKI-SEL-001")
def test_jpki_ap_selects(card_under_test: CardUnderTest) -> None:
    assert card_under_test.select_ap(AID.JPKI) == OK


@pytest.mark.requirement("JPKI-SEL-002")
def test_unknown_aid_is_6a82(card_under_test: CardUnderTest) -> None:
    sw = card_under_test.select_ap(bytes.fromhex("D392F000260100000099"))
    assert sw == 0x6A82, f"an unknown AID answered {sw:04X}"


@pytest.mark.requirement("JPKI-SEL-003")
@pytest.mark.parametrize(
    "aid", [AID.CARD_INFO, AID.CARD_FACE, AID.RESIDENT_REGISTRY, AID.COMMON], ids=lambda a: a.name
)
def test_the_other_applications_select(card_under_test: CardUnderTest, aid: AID) -> None:
    assert card_under_test.select_ap(aid) == OK


@pytest.mark.requirement("JPKI-SEL-004")
def test_select_ef_finds_files_of_the_ap_only(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.select_ap(AID.JPKI) == OK
    for fid in (JpkiFile.AUTH_CERT, JpkiFile.AUTH_CA_CERT, JpkiFile.TOKEN_INFO, JpkiFile.AUTH_PIN):
        assert card.select_ef(fid) == OK, f"EF {fid:04X} of the JPKI AP"
    assert card.select_ef(0x1234) == 0x6A82
    assert card.select_ap(AID.CARD_INFO) == OK
    assert card.select_ef(CardInfoFile.PIN) == OK
    assert card.select_ef(JpkiFile.AUTH_CERT) == 0x6A82, "000A is not a file of the card-info AP"


@pytest.mark.requirement("JPKI-SEL-005")
@pytest.mark.parametrize("cla", [0x01, 0x02, 0x03, 0x40, 0x4F], ids=lambda c: f"CLA{c:02X}")
def test_other_logical_channels_are_refused(card_under_test: CardUnderTest, cla: int) -> None:
    sw = card_under_test.send(bytes([cla, 0xA4, 0x04, 0x0C, 0x0A]) + AID.JPKI.value)[1]
    channel = cla & 0x03 if cla < 0x40 else 4 + (cla & 0x0F)
    assert sw == 0x6881, f"SELECT on logical channel {channel} answered {sw:04X}"


@pytest.mark.requirement("JPKI-SEL-006")
def test_secure_messaging_is_refused(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.send(bytes([0x0C, 0xA4, 0x04, 0x0C, 0x0A]) + AID.JPKI.value)[1] == 0x6882
    assert card.select_ap() == OK
    assert card.send("0CB0000004")[1] == 0x69FC
