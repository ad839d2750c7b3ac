"""Wires to a card, all behind :class:`Transport`.

=================  =========================================================================
spec               what it is
=================  =========================================================================
``inproc``         the emulated card in this process (fastest; the default)
``socket``         the emulated card over the vpcd/vicc TCP wire on loopback, no pcscd
``vpcd[:PORT]``    the emulated card attached to pcscd's vpcd driver, driven through PC/SC
``pcsc[:READER]``  any PC/SC reader (name or unique part of it); a real card or a phone-reader
``listen[:H:P]``   wait for a card or a phone (vsmartcard Remote Smart Card Reader) to connect
=================  =========================================================================

The core knows the wire contract (:mod:`.base`: a :class:`~.base.CardLike` and the
transports), never the emulator: ``socket`` and ``vpcd`` put an emulated card on a wire with
a vicc thread, so they are opened on the card's side, by ``mynahil.card_emulator.open_transport``
(which opens every spec here as well).
"""

from __future__ import annotations

from mynahil.vpcd_protocol import VPCD_DEFAULT_PORT, parse_host_port, vpcd_reader_name

from .base import (
    CardLike,
    CardPulled,
    CardRemovedError,
    NoCardError,
    ReaderNotFoundError,
    Transport,
    TransportError,
)
from .inproc import InProcessTransport
from .pcsc import PcscTransport, list_readers, pcsc_available, wait_for_card, wait_for_removal
from .vpcd import VpcdListenerTransport

__all__ = [
    "TRANSPORT_SPECS",
    "CardLike",
    "CardPulled",
    "CardRemovedError",
    "InProcessTransport",
    "NoCardError",
    "PcscTransport",
    "ReaderNotFoundError",
    "Transport",
    "TransportError",
    "VpcdListenerTransport",
    "list_readers",
    "open_transport",
    "pcsc_available",
    "vpcd_reader_name",
    "wait_for_card",
    "wait_for_removal",
]

TRANSPORT_SPECS = ("inproc", "socket", "vpcd[:PORT]", "pcsc[:READER]", "listen[:HOST:PORT]")


def open_transport(spec: str, card: CardLike | None = None) -> Transport:
    """Build the transport a spec names (see the table above); not yet connected.

    ``inproc``, ``pcsc`` and ``listen`` only: ``socket`` and ``vpcd`` need the emulator's
    vicc end, so ``mynahil.card_emulator.open_transport`` opens those (and these)."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("inproc", "socket", "vpcd") and card is None:
        raise ValueError(f"transport {kind!r} drives an emulated card: give the card")
    if kind == "inproc":
        assert card is not None
        return InProcessTransport(card)
    if kind in ("socket", "vpcd"):
        raise ValueError(
            f"transport {kind!r} puts an emulated card on a wire: open it with "
            "mynahil.card_emulator.open_transport"
        )
    if kind == "pcsc":
        return PcscTransport(arg or None)
    if kind in ("listen", "phone"):
        host, port = parse_host_port(arg or f"127.0.0.1:{VPCD_DEFAULT_PORT}", VPCD_DEFAULT_PORT)
        return VpcdListenerTransport(host, port)
    raise ValueError(f"unknown transport {spec!r}; use one of: {', '.join(TRANSPORT_SPECS)}")
