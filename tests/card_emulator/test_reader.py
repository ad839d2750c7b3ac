"""The emulated card in an in-process reader (``mynahil.card_emulator.emulated_reader``): what every
demo, harness, benchmark and test that wants "this card, ready" calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from mynahil.card import Pin, WrongPin
from mynahil.card_emulator import (
    CardFile,
    CardState,
    EmulatedCard,
    FaultProfile,
    FaultyCard,
    PinSlot,
    emulated_reader,
    load_card,
)


def test_a_card_state_is_ready_for_commands(card_state: CardState) -> None:
    reader = emulated_reader(card_state)
    assert reader.transport.atr  # connected: the ATR was read
    assert card_state.auth is not None
    assert reader.read_auth_certificate() == card_state.auth.certificate


def test_a_stored_card_keeps_its_counters(card_path: Path) -> None:
    """SPEC.md: a wrong PIN costs a try, and the counter is the card's, kept across readers."""
    with CardFile(card_path) as stored, pytest.raises(WrongPin):
        emulated_reader(stored.state, stored).verify(Pin.AUTH, "0000")
    assert load_card(card_path).pins[PinSlot.AUTH].tries_left == 2


def test_a_card_like_wrapper_goes_in_as_it_is(card_state: CardState) -> None:
    field = FaultyCard(EmulatedCard(card_state), FaultProfile(seed=1))
    assert emulated_reader(field).tries_left(Pin.AUTH) == 3


def test_a_store_belongs_to_a_card_state(card_state: CardState, card_path: Path) -> None:
    with CardFile(card_path) as stored, pytest.raises(ValueError, match="card state"):
        emulated_reader(EmulatedCard(card_state), stored)
