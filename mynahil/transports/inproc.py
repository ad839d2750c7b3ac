"""The card in this process: no wire at all, the fastest way to drive it."""

from __future__ import annotations

from .base import CardLike, CardPulled, CardRemovedError, Transport, TransportError

__all__ = ["InProcessTransport"]


class InProcessTransport(Transport):
    """Calls the card's ``transmit`` directly; a pulled card surfaces as CardRemovedError."""

    name = "inproc"

    def __init__(self, card: CardLike) -> None:
        self.card = card
        self._atr = b""
        self._connected = False

    def connect(self) -> bytes:
        self._atr = self.card.reset()
        self._connected = True
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        if not self._connected:
            raise TransportError("not connected: call connect() first")
        try:
            return self.card.transmit(apdu)
        except CardPulled as exc:
            self._connected = False
            raise CardRemovedError(str(exc)) from None

    def disconnect(self) -> None:
        self._connected = False

    @property
    def atr(self) -> bytes:
        return self._atr
