"""The card end of the vpcd/vicc wire: put an emulated card into a (virtual) reader.

:class:`ViccAttachment` connects to a vpcd — pcscd's ``vsmartcard-vpcd`` driver, or the
harness's own :class:`~mynahil.transports.vpcd.VpcdListenerTransport` — and serves the card
until the connection closes or :meth:`stop` is called. Closing the socket is how a card
leaves the reader; connecting again is an insertion.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

from mynahil.transports.base import CardLike, CardPulled
from mynahil.vpcd_protocol import Control, recv_frame, send_frame, tune_socket

__all__ = ["AttachmentStats", "ViccAttachment"]

log = logging.getLogger(__name__)


class AttachmentStats:
    def __init__(self) -> None:
        self.apdus = 0
        self.controls = 0
        self.connections = 0
        self.removals = 0


class ViccAttachment:
    """Serve ``card`` to the vpcd at ``host:port``.

    :param reinsert_after: after the card leaves the field (a fault), come back after this
        many seconds as a new insertion; None leaves it out.
    :param connect_timeout: how long to keep trying to reach the vpcd at start.
    """

    def __init__(
        self,
        card: CardLike,
        host: str,
        port: int,
        *,
        reinsert_after: float | None = None,
        connect_timeout: float = 10.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.card = card
        self.host, self.port = host, port
        self.reinsert_after = reinsert_after
        self.connect_timeout = connect_timeout
        self.stats = AttachmentStats()
        self._on_event = on_event or (lambda message: log.info("%s", message))
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> ViccAttachment:
        """Serve in a background thread; returns once connected (or raises)."""
        self._stop.clear()
        sock = self._connect()
        self._thread = threading.Thread(
            target=self._serve_loop, args=(sock,), name=f"vicc-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until the vpcd closes the connection or :meth:`stop`."""
        self._stop.clear()
        self._serve_loop(self._connect())

    def stop(self) -> None:
        """Take the card out of the reader."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> ViccAttachment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the wire --------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2.0)
                break
            except OSError as exc:
                if time.monotonic() >= deadline or self._stop.is_set():
                    raise ConnectionError(
                        f"cannot reach a vpcd at {self.host}:{self.port} ({exc.strerror or exc}); "
                        "is pcscd running with vsmartcard-vpcd, or a harness listening?"
                    ) from None
                time.sleep(0.1)
        sock.settimeout(None)
        tune_socket(sock)
        self._sock = sock
        self.stats.connections += 1
        self.connected.set()
        self._on_event(f"card inserted into the vpcd at {self.host}:{self.port}")
        return sock

    def _reconnect(self) -> socket.socket | None:
        if self._stop.is_set():
            return None
        try:
            return self._connect()
        except ConnectionError as exc:
            self._on_event(str(exc))
            return None

    def _serve_loop(self, first: socket.socket) -> None:
        sock: socket.socket | None = first
        try:
            while sock is not None and not self._stop.is_set():
                frames_before = self.stats.apdus + self.stats.controls
                if self._serve(sock):
                    if self.stats.apdus + self.stats.controls != frames_before:
                        break  # the vpcd went away
                    # vpcd drops a connection it accepted while still cleaning up after the
                    # previous card (a fast re-insertion): knock again.
                    self._stop.wait(0.2)
                else:
                    # The card left the field and the socket is closed; come back if asked to.
                    if self.reinsert_after is None or self._stop.wait(self.reinsert_after):
                        break
                    reinsert = getattr(self.card, "reinsert", None)
                    if callable(reinsert):
                        reinsert()
                sock = self._reconnect()
        finally:
            self.connected.clear()
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _serve(self, sock: socket.socket) -> bool:
        """Serve frames until EOF (True: the vpcd closed) or a card removal (False)."""
        card = self.card
        while True:
            try:
                frame = recv_frame(sock)
            except OSError:
                return True
            if frame is None:
                self._on_event("the vpcd closed the connection")
                return True
            if len(frame) == 1:
                self.stats.controls += 1
                code = frame[0]
                if code == Control.GET_ATR:
                    send_frame(sock, card.atr)
                elif code in (Control.POWER_ON, Control.POWER_OFF, Control.RESET):
                    card.reset()
                else:
                    log.warning("ignoring unknown vpcd control %d", code)
                continue
            self.stats.apdus += 1
            try:
                response = card.transmit(frame)
            except CardPulled as exc:
                self.stats.removals += 1
                self._on_event(f"card removed: {exc}")
                sock.close()
                self._sock = None
                return False
            try:
                send_frame(sock, response)
            except OSError:
                return True
