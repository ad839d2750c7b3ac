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
"""

from __future__ import annotations

from card_emulator.faults import CardLike

from .base import CardRemovedError, NoCardError, ReaderNotFoundError, Transport, TransportError
from .inproc import InProcessTransport
from .pcsc import PcscTransport, list_readers, pcsc_available, wait_for_card, wait_for_removal
from .vpcd import VpcdListenerTransport
from .wired import SocketTransport, VpcdPcscTransport, vpcd_reader_name

__all__ = [
    "TRANSPORT_SPECS",
    "CardRemovedError",
    "InProcessTransport",
    "NoCardError",
    "PcscTransport",
    "ReaderNotFoundError",
    "SocketTransport",
    "Transport",
    "TransportError",
    "VpcdListenerTransport",
    "VpcdPcscTransport",
    "list_readers",
    "open_transport",
    "pcsc_available",
    "vpcd_reader_name",
    "wait_for_card",
    "wait_for_removal",
]

TRANSPORT_SPECS = ("inproc", "socket", "vpcd[:PORT]", "pcsc[:READER]", "listen[:HOST:PORT]")
_NEEDS_CARD = ("inproc", "socket", "vpcd")


def open_transport(spec: str, card: CardLike | None = None) -> Transport:
    """Build the transport a spec names (see the table above); not yet connected."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in _NEEDS_CARD and card is None:
        raise ValueError(f"transport {kind!r} drives an emulated card: give the card")
    if kind == "inproc":
        assert card is not None
        return InProcessTransport(card)
    if kind == "socket":
        assert card is not None
        return SocketTransport(card)
    if kind == "vpcd":
        assert card is not None
        return VpcdPcscTransport(card, port=int(arg) if arg else None)
    if kind == "pcsc":
        return PcscTransport(arg or None)
    if kind in ("listen", "phone"):
        from card_emulator.vicc import parse_host_port

        host, port = parse_host_port(arg or "127.0.0.1:35963", 35963)
        return VpcdListenerTransport(host, port)
    raise ValueError(f"unknown transport {spec!r}; use one of: {', '.join(TRANSPORT_SPECS)}")
