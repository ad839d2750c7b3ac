"""A reset through pcscd reports the ATR the card answered it with, not the one cached at
connect: JPKI-ATR-001's reset half sees a card that changes its ATR (issue 20.8)."""

from __future__ import annotations

import pytest

from mynahil.card_emulator import EmulatedCard, contactless_type_b_atr
from mynahil.card_emulator.state import CardState
from mynahil.conformance.targets import CardSlot, parse_target

pytestmark = pytest.mark.pcsc


class CountingCard(EmulatedCard):
    """Answers every reset, power-up and power-down with a new ATR (its count in the
    application bytes), so the test's own reset has an ATR no earlier one had, whatever pcscd
    did before the connect: power the card down and up again, or answer the connect with the
    ATR it cached from the card before (a CI run saw one or the other on every try, which a
    card that changes its ATR only once could not survive)."""

    def __init__(self, state: CardState) -> None:
        super().__init__(state)
        self.resets = 0

    def reset(self) -> bytes:
        self.resets += 1
        self.atr = contactless_type_b_atr(self.resets.to_bytes(4, "big"))
        return super().reset()

    power_up = reset
    power_down = reset


def test_a_reset_through_pcscd_reports_the_new_atr(pcsc_stack: None) -> None:
    target = parse_target("card:vpcd")
    fresh = target.emulated_card()
    assert isinstance(fresh, EmulatedCard)
    card = CountingCard(fresh.state)
    wire = target.open(None, slot=CardSlot(card))
    try:
        first = wire.connect()
        after = wire.reset()
        assert after != first, "the reset answered the ATR cached at connect"
        assert after == card.atr, (
            f"reset() answered {after.hex()}, the card {card.atr.hex()} after {card.resets} resets"
        )
        assert wire.atr == card.atr
    finally:
        wire.disconnect()
        close = getattr(wire, "close", None)
        if callable(close):
            close()
