"""PIN semantics (JPKI.md: PINs; SPEC.md: The card and its PIN).

Tests marked ``destructive`` send wrong PINs or change the PIN: they run on emulated cards,
and on a real one only with ``--allow-destructive`` and an emulated ATR. The others never send
a PIN but the one given (the PIN guard refuses anything else on a real card).
"""

from __future__ import annotations

import pytest

from mynahil.conformance.plugin import OK, CardUnderTest
from mynahil.jpki import AID, JpkiFile

AUTH, SIGN = JpkiFile.AUTH_PIN, JpkiFile.SIGN_PIN
# A counter short of its tries fails the requirement: a card that loses tries on its own cannot
# be told from one a wrong entry hit, and the suite spends none of the remaining ones.
_NOT_FULL = (
    " (a fresh or correctly reset one shows all; after a wrong entry, enter the right one once "
    "with the card's own software and run again)"
)


@pytest.mark.requirement("JPKI-PIN-001")
def test_empty_verify_reports_tries(card_under_test: CardUnderTest) -> None:
    sw = card_under_test.verify(AUTH, None)
    assert sw & 0xFFF0 == 0x63C0, f"the retry query answered {sw:04X}"
    assert sw == 0x63C3, f"the auth PIN shows {sw & 0x0F} of 3 tries{_NOT_FULL}"


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-002", "SPEC-CARD-001")
def test_wrong_pin_counts_down_and_the_right_one_resets(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    before = card.verify(AUTH, None) & 0x0F
    assert card.verify(AUTH, card.wrong_pin()) == 0x63C0 | (before - 1)
    assert card.verify(AUTH, None) == 0x63C0 | (before - 1), "the query must not cost a try"
    assert card.verify(AUTH, card.pin) == OK
    assert card.verify(AUTH, None) == 0x63C3, "a correct PIN must reset the counter to 3"


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-002", "SPEC-CARD-001")
@pytest.mark.parametrize("bad", ["123", "12345"])
def test_a_wrong_length_pin_costs_a_try(card_under_test: CardUnderTest, bad: str) -> None:
    card = card_under_test
    sw = card.verify(AUTH, bad)
    assert sw != OK, f"the card took {bad!r} as the PIN"
    after = card.verify(AUTH, None)
    assert after == 0x63C2, f"after the PIN {bad!r} ({sw:04X}) the counter answers {after:04X}"
    assert card.verify(AUTH, card.pin) == OK


@pytest.mark.destructive(locks=True)  # through a reader: run last, it locks the card
@pytest.mark.requirement("JPKI-PIN-003", "SPEC-CARD-001")
def test_third_wrong_pin_blocks_for_good(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    wrong = card.wrong_pin()
    assert card.verify(AUTH, wrong) == 0x63C2
    assert card.verify(AUTH, wrong) == 0x63C1
    assert card.verify(AUTH, wrong) == 0x63C0, "the last try answers 63C0"
    assert card.verify(AUTH, card.pin) == 0x6984, "after lockout even the right PIN is 6984"
    assert card.verify(AUTH, None) == 0x6984, "after lockout the query is 6984"
    card.power_cycle()
    assert card.verify(AUTH, card.pin) == 0x6984, "a power cycle must not unlock the PIN"


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-004")
def test_counter_survives_power_cycle_and_reselect(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    assert card.verify(AUTH, card.wrong_pin()) == 0x63C2
    card.power_cycle()
    assert card.verify(AUTH, None) == 0x63C2, "a power cycle gave the try back"
    assert card.select_ap() == OK
    assert card.verify(AUTH, None) == 0x63C2, "reselecting the AP gave the try back"
    assert card.verify(AUTH, card.wrong_pin()) == 0x63C1
    assert card.select_ap(AID.CARD_INFO) == OK
    assert card.verify(AUTH, None) == 0x63C1, "selecting another AP gave the try back"
    assert card.verify(AUTH, card.pin) == OK  # leave it unlocked


@pytest.mark.requirement("JPKI-PIN-005")
def test_signing_password_has_five_tries(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    sw = card.verify(SIGN, None)
    assert sw & 0xFFF0 == 0x63C0, f"the signing password's retry query answered {sw:04X}"
    assert sw == 0x63C5, f"the signing password shows {sw & 0x0F} of 5 tries{_NOT_FULL}"
    if not card.sign_password:
        pytest.skip("give --sign-password to verify a real card's signing password")
    assert card.verify(SIGN, card.sign_password) == OK


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-005")
def test_wrong_signing_password_counts_from_five(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    if not card.sign_password:
        pytest.skip("give --sign-password: the test puts the counter back with it")
    assert card.verify(SIGN, "WRONG0") == 0x63C4
    assert card.verify(SIGN, card.sign_password) == OK
    assert card.verify(SIGN, None) == 0x63C5


def _change(card: CardUnderTest, new: str) -> int:
    data = new.encode("ascii")
    return card.send(bytes([0x00, 0x24, 0x01, 0x80, len(data)]) + data)[1]


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-006")
def test_change_reference_data(card_under_test: CardUnderTest) -> None:
    card = card_under_test
    new = "5678" if card.pin != "5678" else "8765"
    assert card.verify(AUTH, None) & 0xFFF0 == 0x63C0
    assert _change(card, new) == 0x6982, "CHANGE REFERENCE DATA before VERIFY must be refused"
    assert card.verify(AUTH, card.pin) == OK
    assert _change(card, new) == OK
    assert card.verify(AUTH, new) == OK, "the new PIN does not work"
    assert card.verify(AUTH, card.pin) == 0x63C2, "the old PIN still works"
    assert card.verify(AUTH, new) == OK
    assert _change(card, card.pin) == OK  # put it back


@pytest.mark.destructive
@pytest.mark.requirement("JPKI-PIN-007", "SPEC-CARD-001")
@pytest.mark.parametrize("bad", ["12345", "123", "12a4", "    "])
def test_the_auth_pin_stays_four_digits(card_under_test: CardUnderTest, bad: str) -> None:
    card = card_under_test
    assert card.verify(AUTH, card.pin) == OK
    sw = _change(card, bad)
    assert sw != OK, f"the card took {bad!r} as its PIN"
    assert card.verify(AUTH, card.pin) == OK, "a refused change must leave the PIN as it was"
