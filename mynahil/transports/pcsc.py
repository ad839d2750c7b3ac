"""Any PC/SC reader through pyscard: a real reader, a phone acting as one, or pcscd's vpcd.

Uses pyscard's thin ``smartcard.scard`` layer (one SCardTransmit per APDU) rather than its
object layer, whose per-call bookkeeping costs more than the whole emulated card.
"""

from __future__ import annotations

import time
from typing import Any

from .base import CardRemovedError, NoCardError, ReaderNotFoundError, Transport, TransportError

__all__ = [
    "PcscTransport",
    "list_readers",
    "pcsc_available",
    "wait_for_card",
    "wait_for_removal",
]


def _scard() -> Any:
    try:
        from smartcard import scard
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise TransportError(
            "PC/SC needs pyscard: pip install 'mynahil[pcsc]' (it builds against libpcsclite-dev)"
        ) from exc
    return scard


def pcsc_available() -> bool:
    """True when pyscard imports and a PC/SC service answers."""
    try:
        scard = _scard()
    except TransportError:
        return False
    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        return False
    scard.SCardReleaseContext(ctx)
    return True


class _Context:
    def __init__(self) -> None:
        self.scard = _scard()
        rc, self.handle = self.scard.SCardEstablishContext(self.scard.SCARD_SCOPE_USER)
        self.check(rc, "cannot reach the PC/SC service (is pcscd running?)")

    def check(self, rc: int, what: str) -> None:
        if rc != self.scard.SCARD_S_SUCCESS:
            raise TransportError(f"{what}: {self.scard.SCardGetErrorMessage(rc).strip()}")

    def readers(self) -> list[str]:
        rc, names = self.scard.SCardListReaders(self.handle, [])
        if rc == self.scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        self.check(rc, "cannot list readers")
        return list(names)

    def release(self) -> None:
        self.scard.SCardReleaseContext(self.handle)


def list_readers() -> list[str]:
    ctx = _Context()
    try:
        return ctx.readers()
    finally:
        ctx.release()


def _pick_reader(names: list[str], wanted: str | None) -> str:
    if not names:
        raise ReaderNotFoundError("no PC/SC readers are connected")
    if wanted is None:
        return names[0]
    exact = [n for n in names if n == wanted]
    matches = exact or [n for n in names if wanted.lower() in n.lower()]
    if len(matches) != 1:
        listing = "; ".join(names)
        problem = "matches several readers" if matches else "matches no reader"
        raise ReaderNotFoundError(f"{wanted!r} {problem}; readers: {listing}")
    return matches[0]


def wait_for_card(reader: str | None = None, timeout: float = 10.0) -> str:
    """Block until a card is present in ``reader`` (SCardGetStatusChange, no polling)."""
    ctx = _Context()
    s = ctx.scard
    try:
        name = _pick_reader(ctx.readers(), reader)
        state = s.SCARD_STATE_UNAWARE
        remaining_ms = int(timeout * 1000)
        while True:
            rc, states = s.SCardGetStatusChange(ctx.handle, remaining_ms, [(name, state)])
            if rc == s.SCARD_E_TIMEOUT:
                raise NoCardError(f"no card in {name!r} within {timeout:g} s")
            ctx.check(rc, f"waiting for a card in {name!r}")
            _reader, event, _atr = states[0]
            if event & s.SCARD_STATE_PRESENT and not event & s.SCARD_STATE_MUTE:
                return str(name)
            state = event & ~s.SCARD_STATE_CHANGED
    finally:
        ctx.release()


def wait_for_removal(reader: str, timeout: float = 5.0) -> bool:
    """Block until ``reader`` is empty; False if a card is still there after ``timeout``."""
    ctx = _Context()
    s = ctx.scard
    try:
        state = s.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            rc, states = s.SCardGetStatusChange(ctx.handle, remaining_ms, [(reader, state)])
            if rc == s.SCARD_E_TIMEOUT:
                return False
            ctx.check(rc, f"watching {reader!r}")
            event = states[0][1]
            if event & s.SCARD_STATE_EMPTY:
                return True
            state = event & ~s.SCARD_STATE_CHANGED
    finally:
        ctx.release()


class PcscTransport(Transport):
    """One card in one PC/SC reader, shared mode, T=0 or T=1."""

    def __init__(self, reader: str | None = None, *, wait_seconds: float = 10.0) -> None:
        self.wanted = reader
        self.wait_seconds = wait_seconds
        self.reader = reader or "(first reader)"
        self.name = f"pcsc:{self.reader}"
        self._ctx: _Context | None = None
        self._card: Any = None
        self._protocol: Any = None
        self._atr = b""

    def connect(self) -> bytes:
        if self._ctx is None:
            self._ctx = _Context()
        ctx, s = self._ctx, self._ctx.scard
        self.reader = wait_for_card(self.wanted, self.wait_seconds)
        self.name = f"pcsc:{self.reader}"
        rc, card, protocol = s.SCardConnect(
            ctx.handle, self.reader, s.SCARD_SHARE_SHARED, s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1
        )
        self._raise_for(rc, f"cannot connect to the card in {self.reader!r}")
        self._card, self._protocol = card, protocol
        rc, _name, _state, _proto, atr = s.SCardStatus(card)
        self._raise_for(rc, "cannot read the ATR")
        self._atr = bytes(atr)
        return self._atr

    def _raise_for(self, rc: int, what: str) -> None:
        assert self._ctx is not None
        s = self._ctx.scard
        if rc == s.SCARD_S_SUCCESS:
            return
        message = f"{what}: {s.SCardGetErrorMessage(rc).strip()}"
        if rc in (s.SCARD_W_REMOVED_CARD, s.SCARD_E_NO_SMARTCARD, s.SCARD_W_UNPOWERED_CARD):
            self._card = None
            raise CardRemovedError(message)
        raise TransportError(message)

    def transmit(self, apdu: bytes) -> bytes:
        if self._card is None or self._ctx is None:
            raise TransportError("not connected: call connect() first")
        s = self._ctx.scard
        rc, response = s.SCardTransmit(self._card, self._protocol, list(apdu))
        if rc != s.SCARD_S_SUCCESS:
            self._raise_for(rc, f"transmit to {self.reader!r} failed")
        if len(response) < 2:
            # vpcd answers an APDU to a card that has just gone with nothing at all; pcscd
            # notices the removal at its next poll.
            if self._left_reader(within_ms=1500):
                self._card = None
                raise CardRemovedError(f"the card left {self.reader!r} during the command")
            raise TransportError(f"{self.reader!r} returned no status word")
        return bytes(response)

    def _left_reader(self, within_ms: int) -> bool:
        assert self._ctx is not None
        s = self._ctx.scard
        state = s.SCARD_STATE_PRESENT
        rc, states = s.SCardGetStatusChange(self._ctx.handle, within_ms, [(self.reader, state)])
        return bool(rc == s.SCARD_S_SUCCESS and states[0][1] & s.SCARD_STATE_EMPTY)

    def reset(self) -> bytes:
        if self._card is None or self._ctx is None:
            return self.connect()
        s = self._ctx.scard
        rc, self._protocol = s.SCardReconnect(
            self._card,
            s.SCARD_SHARE_SHARED,
            s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1,
            s.SCARD_RESET_CARD,
        )
        self._raise_for(rc, "reset failed")
        # the card may answer the reset with another ATR than at connect: report what pcscd saw
        rc, _name, _state, _proto, atr = s.SCardStatus(self._card)
        self._raise_for(rc, "cannot read the ATR after the reset")
        self._atr = bytes(atr)
        return self._atr

    def disconnect(self) -> None:
        if self._ctx is None:
            return
        s = self._ctx.scard
        if self._card is not None:
            s.SCardDisconnect(self._card, s.SCARD_RESET_CARD)
            self._card = None
        self._ctx.release()
        self._ctx = None

    @property
    def atr(self) -> bytes:
        return self._atr
