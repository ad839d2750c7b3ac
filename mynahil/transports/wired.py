"""An emulated card put on a real wire, and the harness on the other end, as one transport.

These exist so that the same test or demo can say "this card, over that wire" and get the
whole stack — the vicc client, the TCP framing, and for ``vpcd`` pcscd and pyscard — between
the Card API and the card.
"""

from __future__ import annotations

from card_emulator.faults import CardLike
from card_emulator.vicc import ViccAttachment
from mynahil.vpcd_protocol import VPCD_DEFAULT_PORT

from .base import Transport, TransportError
from .pcsc import PcscTransport, list_readers, wait_for_removal
from .vpcd import VpcdListenerTransport

__all__ = ["SocketTransport", "VpcdPcscTransport", "vpcd_reader_name"]

# How long a card another process left in the vpcd reader may take to go (pcscd notices a
# detached vicc within a poll or two).
HELD_READER_WAIT_S = 2.0


def vpcd_reader_name(port: int = VPCD_DEFAULT_PORT) -> str:
    """pcscd names vpcd's readers "Virtual PCD 00 00", "Virtual PCD 00 01", … by port."""
    return f"Virtual PCD 00 {port - VPCD_DEFAULT_PORT:02X}"


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
