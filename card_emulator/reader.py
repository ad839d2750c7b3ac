"""An emulated card in a reader in this process: the Card API over it, connected.

Demos, load drivers, harnesses and tests all want "this card, ready for commands"; this is
the one place that puts the emulated card behind the in-process wire and the Card API.
"""

from __future__ import annotations

from mynahil.card import MyNumberCard
from mynahil.transports import InProcessTransport
from mynahil.transports.base import CardLike

from .card import EmulatedCard
from .state import CardState, StateStore

__all__ = ["emulated_reader"]


def emulated_reader(card: CardState | CardLike, store: StateStore | None = None) -> MyNumberCard:
    """The Card API over ``card`` in an in-process reader, connected (ATR read).

    ``card`` is a card state (emulated here; ``store`` keeps its counters, e.g. a
    :class:`~mynahil.card_emulator.state.CardFile`) or anything already card-like (a faulty field,
    a timed or defective wrapper)."""
    if isinstance(card, CardState):
        card = EmulatedCard(card, store)
    elif store is not None:
        raise ValueError("a store goes with a card state, not with a card-like wrapper")
    wire = InProcessTransport(card)
    wire.connect()
    return MyNumberCard(wire)
