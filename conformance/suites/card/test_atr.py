"""The ATR (JPKI.md: ATR and interface)."""

from __future__ import annotations

from functools import reduce

import pytest

from mynahil.conformance.plugin import CardUnderTest


@pytest.mark.requirement("JPKI-ATR-001")
def test_atr_is_the_expected_one(card_under_test: CardUnderTest) -> None:
    device = card_under_test.target.device
    if not device.expected_atr:
        pytest.skip(f"the device profile {device.name!r} accepts any ATR")
    atr = card_under_test.transport.atr
    assert device.atr_matches(atr), (
        f"ATR {atr.hex().upper()}, the profile expects {device.expected_atr}"
        + (f" under mask {device.atr_mask}" if device.atr_mask else "")
    )


@pytest.mark.requirement("JPKI-ATR-001")
def test_a_reset_keeps_the_atr(card_under_test: CardUnderTest) -> None:
    device = card_under_test.target.device
    if not device.expected_atr:
        pytest.skip(f"the device profile {device.name!r} accepts any ATR")
    atr = card_under_test.power_cycle()
    assert device.atr_matches(atr), (
        f"after a reset the ATR is {atr.hex().upper()}, the profile expects {device.expected_atr}"
    )


def _check_type_b(atr: bytes) -> None:
    assert atr[:4] == bytes.fromhex("3B888001"), f"ATR {atr.hex().upper()} is not 3B 88 80 01 …"
    assert len(atr) == 13, f"a Type B ATR has 13 bytes, this has {len(atr)}"
    assert reduce(lambda a, b: a ^ b, atr[1:], 0) == 0, "the check byte TCK is wrong"


@pytest.mark.requirement("JPKI-ATR-002")
def test_contactless_atr_is_type_b(card_under_test: CardUnderTest) -> None:
    if card_under_test.target.drives_emulated_card:
        card, _wire = card_under_test.another_emulated_card(interface="contactless")
        _check_type_b(card.atr)
        if card_under_test.target.device.contactless:
            _check_type_b(card_under_test.transport.atr)
        return
    if not card_under_test.target.device.contactless:
        pytest.skip("the device profile is a contact reader")
    _check_type_b(card_under_test.transport.atr)
