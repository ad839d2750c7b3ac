"""The harness end of the vpcd/vicc wire: a listener that a card or a phone connects to.

This is what pcscd's vpcd driver does, without pcscd: a phone running vsmartcard's Remote
Smart Card Reader app (pointed at this machine) or ``mynahil card attach --vpcd HOST:PORT``
connects, and the harness drives the card directly.
"""

from __future__ import annotations

import errno
import socket

from mynahil.vpcd_protocol import VPCD_DEFAULT_PORT, Control, recv_frame, send_frame, tune_socket

from .base import CardRemovedError, NoCardError, Transport, TransportError

__all__ = ["VpcdListenerTransport"]


class VpcdListenerTransport(Transport):
    """Listen on ``host:port``; ``connect`` waits for a card (vicc) to connect and powers it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = VPCD_DEFAULT_PORT,
        *,
        wait_seconds: float = 30.0,
        io_timeout: float = 30.0,
    ) -> None:
        self.wait_seconds = wait_seconds
        self.io_timeout = io_timeout
        try:
            self._server = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            hint = (
                " (pcscd's vpcd driver listens on 35963 when it runs here: choose another port "
                "and point the phone's app at it)"
                if taken and port == VPCD_DEFAULT_PORT
                else ""
            )
            raise TransportError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
        self.host, self.port = self._server.getsockname()[:2]
        self.name = f"vpcd-listen:{self.host}:{self.port}"
        self._conn: socket.socket | None = None
        self._atr = b""

    def connect(self) -> bytes:
        if self._conn is None:
            self._server.settimeout(self.wait_seconds)
            try:
                conn, _peer = self._server.accept()
            except TimeoutError:
                raise NoCardError(
                    f"no card connected to {self.host}:{self.port} within {self.wait_seconds:g} s"
                ) from None
            tune_socket(conn)
            conn.settimeout(self.io_timeout)
            self._conn = conn
        self._control(Control.POWER_ON)
        self._atr = self._exchange(bytes((Control.GET_ATR,)))
        return self._atr

    def reset(self) -> bytes:
        self._control(Control.RESET)
        self._atr = self._exchange(bytes((Control.GET_ATR,)))
        return self._atr

    def _control(self, code: Control) -> None:
        conn = self._require()
        try:
            send_frame(conn, bytes((code,)))
        except OSError as exc:
            self._drop()
            raise CardRemovedError(f"card went away: {exc}") from None

    def _require(self) -> socket.socket:
        if self._conn is None:
            raise TransportError("not connected: call connect() first")
        return self._conn

    def _exchange(self, payload: bytes) -> bytes:
        conn = self._require()
        try:
            send_frame(conn, payload)
            answer = recv_frame(conn)
        except TimeoutError:
            self._drop()
            raise TransportError(f"the card did not answer within {self.io_timeout:g} s") from None
        except OSError as exc:
            self._drop()
            raise CardRemovedError(f"card went away: {exc}") from None
        if answer is None:
            self._drop()
            raise CardRemovedError("the card closed the connection (removed)")
        return answer

    def transmit(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            raise ValueError("a command APDU has at least 4 bytes")
        return self._exchange(apdu)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def disconnect(self) -> None:
        """Power the card off; it stays connected (in the reader) for the next ``connect``."""
        if self._conn is not None:
            try:
                send_frame(self._conn, bytes((Control.POWER_OFF,)))
            except OSError:
                self._drop()

    def close(self) -> None:
        """Let the card go and stop listening."""
        self.disconnect()
        self._drop()
        self._server.close()

    @property
    def atr(self) -> bytes:
        return self._atr
