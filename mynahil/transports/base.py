"""The one interface every wire to a card implements.

A transport moves bytes: it knows nothing of JPKI. The Card API (:mod:`mynahil.card`) sits on
top, so the same tests drive the in-process card, a card behind pcscd, a real reader and a
phone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Protocol

__all__ = [
    "CardLike",
    "CardPulled",
    "CardRemovedError",
    "NoCardError",
    "ReaderNotFoundError",
    "Transport",
    "TransportError",
]


class CardLike(Protocol):
    """What a wire needs of a card: the emulated card, a faulty field around it, a relay."""

    @property
    def atr(self) -> bytes: ...

    def transmit(self, raw: bytes) -> bytes: ...

    def reset(self) -> bytes: ...


class CardPulled(Exception):
    """The card left the field: the APDU got no answer (a transport reports CardRemovedError)."""


class TransportError(Exception):
    """The wire failed: nothing can be said about what the card did."""


class CardRemovedError(TransportError):
    """The card left the field or the reader (or the phone moved) during a session."""


class NoCardError(TransportError):
    """No card arrived within the time allowed."""


class ReaderNotFoundError(TransportError):
    """No reader of that name (the message lists the ones there are)."""


class Transport(ABC):
    """``connect`` (returns the ATR), ``transmit`` APDUs, ``disconnect``."""

    name: str = "transport"

    @abstractmethod
    def connect(self) -> bytes:
        """Power the card up (waiting for it if need be) and return its ATR."""

    @abstractmethod
    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU, return the response APDU (data + SW1 SW2)."""

    @abstractmethod
    def disconnect(self) -> None:
        """Release the card; safe to call twice."""

    @property
    @abstractmethod
    def atr(self) -> bytes:
        """The ATR seen at the last connect."""

    def reset(self) -> bytes:
        """Warm reset: the card forgets verified PINs and selections. Returns the ATR."""
        self.disconnect()
        return self.connect()

    def __enter__(self) -> Transport:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
