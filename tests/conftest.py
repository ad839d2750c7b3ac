"""Fixtures shared by every test package: real cards issued by the real (emulated) J-LIS CA."""

from __future__ import annotations

from pathlib import Path

import pytest

from card_emulator import CardState, EmulatedCard, save_card
from tests.support import CardFactory, make_card_factory


@pytest.fixture(scope="session")
def card_factory(tmp_path_factory: pytest.TempPathFactory) -> CardFactory:
    """Builds card states from one session-wide CA and a small key pool (fast)."""
    return make_card_factory(tmp_path_factory.mktemp("jlis"))


@pytest.fixture
def card_state(card_factory: CardFactory) -> CardState:
    """A card with both certificates; PIN 1234, signing password ABC123."""
    return card_factory()


@pytest.fixture
def card(card_state: CardState) -> EmulatedCard:
    return EmulatedCard(card_state)


@pytest.fixture
def card_path(tmp_path: Path, card_state: CardState) -> Path:
    path = tmp_path / "card.json"
    save_card(card_state, path)
    return path
