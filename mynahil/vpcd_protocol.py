"""The vpcd/vicc wire of the virtualsmartcard project, shared by both ends.

Each message is a 2-byte big-endian length and then the payload. A 1-byte payload is a
control (see :class:`Control`); anything longer is an APDU. Debian's vpcd writes the length
and the payload separately, so with Nagle's algorithm and delayed ACKs each exchange stalls
~44 ms: every socket here sets ``TCP_NODELAY``, and the receiving side re-arms
``TCP_QUICKACK`` (Linux clears it after each ACK) before every ``recv``.
"""

from __future__ import annotations

import socket
import struct
from enum import IntEnum

__all__ = [
    "VPCD_DEFAULT_PORT",
    "Control",
    "parse_host_port",
    "recv_frame",
    "send_frame",
    "tune_socket",
    "vpcd_reader_name",
]

VPCD_DEFAULT_PORT = 35963
"""pcscd's vpcd driver listens here for its first virtual reader; the second is on +1."""


def vpcd_reader_name(port: int = VPCD_DEFAULT_PORT) -> str:
    """pcscd names vpcd's readers "Virtual PCD 00 00", "Virtual PCD 00 01", … by port."""
    return f"Virtual PCD 00 {port - VPCD_DEFAULT_PORT:02X}"


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` or ``:PORT``; raises ValueError with a usable message."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number (HOST:PORT)") from None
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: the port must be between 1 and 65535")
    return host, port


_LENGTH = struct.Struct(">H")
_HAS_QUICKACK = hasattr(socket, "TCP_QUICKACK")
QUICKACK = True
"""Re-arm TCP_QUICKACK before each recv. Only the benchmark turns it off, to show the stall."""


class Control(IntEnum):
    POWER_OFF = 0
    POWER_ON = 1
    RESET = 2
    GET_ATR = 4


def tune_socket(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _quickack(sock)


def _quickack(sock: socket.socket) -> None:
    if _HAS_QUICKACK and QUICKACK:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def send_frame(sock: socket.socket, payload: bytes) -> None:
    """Length and payload in one write, so our side never causes the stall."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"a vpcd frame carries at most 65535 bytes, got {len(payload)}")
    sock.sendall(_LENGTH.pack(len(payload)) + payload)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        _quickack(sock)
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            if got == 0:
                return None
            raise ConnectionError(f"peer closed the connection inside a frame ({got}/{size} bytes)")
        got += n
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes | None:
    """The next payload, or None when the peer closed the connection between frames."""
    header = _recv_exactly(sock, 2)
    if header is None:
        return None
    (size,) = _LENGTH.unpack(header)
    if size == 0:
        return b""
    payload = _recv_exactly(sock, size)
    if payload is None:
        raise ConnectionError("peer closed the connection after a frame header")
    return payload
