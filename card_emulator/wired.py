"""An emulated card put on a real wire, and the harness on the other end, as one transport.

These exist so that the same test or demo can say "this card, over that wire" and get the
whole stack — the vicc client (a thread here), the TCP framing, and for ``vpcd`` pcscd and
pyscard — between the Card API and the card. They live on the card's side: the core's
transports (:mod:`mynahil.transports`) know only the wire contract, never the emulator.
"""

from __future__ import annotations

from mynahil.transports import (
    PcscTransport,
    Transport,
    TransportError,
    VpcdListenerTransport,
    list_readers,
    wait_for_removal,
)
from mynahil.transports import open_transport as open_core_transport
from mynahil.transports.base import CardLike
from mynahil.vpcd_protocol import VPCD_DEFAULT_PORT, vpcd_reader_name

from .vicc import ViccAttachment

__all__ = ["SocketTransport", "VpcdPcscTransport", "open_transport"]

# How long a card another process left in the vpcd reader may take to go (pcscd notices a
# detached vicc within a poll or two).
HELD_READER_WAIT_S = 2.0


def open_transport(spec: str, card: CardLike | None = None) -> Transport:
    """Build the transport any spec names (``mynahil.transports``' table), not yet connected:
    ``socket`` and ``vpcd[:PORT]`` put ``card`` on that wire here, the rest are the core's."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("socket", "vpcd"):
        if card is None:
            raise ValueError(f"transport {kind!r} drives an emulated card: give the card")
        if kind == "socket":
            return SocketTransport(card)
        return VpcdPcscTransport(card, port=int(arg) if arg else None)
    return open_core_transport(spec, card)


class SocketTransport(Transport):
    """The card behind the vpcd/vicc TCP wire on loopback, without pcscd."""

    def __init__(self, card: CardLike) -> None:
        self.listener = VpcdListenerTransport("127.0.0.1", 0, wait_seconds=10)
        self.name = f"socket:{self.listener.port}"
        self.attachment = ViccAttachment(card, "127.0.0.1", self.listener.port)
        self._attached = False

    def connect(self) -> bytes:
        if not self._attached:
            self.attachment.start()
            self._attached = True
        return self.listener.connect()

    def transmit(self, apdu: bytes) -> bytes:
        return self.listener.transmit(apdu)

    def reset(self) -> bytes:
        return self.listener.reset()

    def disconnect(self) -> None:
        self.listener.close()
        self.attachment.stop()
        self._attached = False

    @property
    def atr(self) -> bytes:
        return self.listener.atr


class VpcdPcscTransport(Transport):
    """The card attached to pcscd's vpcd driver, driven through PC/SC: the full stack."""

    def __init__(
        self, card: CardLike, port: int | None = None, *, wait_seconds: float = 10
    ) -> None:
        self.port = port or VPCD_DEFAULT_PORT
        self.attachment = ViccAttachment(card, "127.0.0.1", self.port)
        self.pcsc = PcscTransport(vpcd_reader_name(self.port), wait_seconds=wait_seconds)
        self.name = f"vpcd:{self.port}"

    def connect(self) -> bytes:
        if not self.attachment.connected.is_set():
            self._refuse_a_held_reader()
            self.attachment.start()
        return self.pcsc.connect()

    def _refuse_a_held_reader(self) -> None:
        """pcscd's vpcd serves one card per port, and a second vicc is queued unseen: with
        another process's card in the reader, this transport would talk to *that* card."""
        reader = vpcd_reader_name(self.port)
        if reader in list_readers() and not wait_for_removal(reader, timeout=HELD_READER_WAIT_S):
            raise TransportError(
                f"{reader!r} already holds a card: another process has attached one to the vpcd "
                f"at 127.0.0.1:{self.port} (`mynahil card attach`, another test run?). Stop it, "
                "or use another vpcd port"
            )

    def transmit(self, apdu: bytes) -> bytes:
        return self.pcsc.transmit(apdu)

    def reset(self) -> bytes:
        return self.pcsc.reset()

    def disconnect(self) -> None:
        self.pcsc.disconnect()
        self.attachment.stop()
        # Let pcscd see the card go before anyone inserts the next one: otherwise its stale
        # "present" state hands the next connection a dead card.
        wait_for_removal(self.pcsc.reader)

    @property
    def atr(self) -> bytes:
        return self.pcsc.atr
