"""Every APDU a test exchanges, as JSON lines: the trace a vendor sends with a failure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from mynahil.transports import Transport

__all__ = ["RecordingTransport", "read_trace", "status_words"]


class RecordingTransport(Transport):
    """Wraps a transport; writes ``{"test", "t_ms", "command", "response", "sw"}`` per APDU.

    A command that raised (card removed) is written with ``"response": null`` and the
    exception's name in ``"error"``. Connects and resets are written as ``"event"`` lines
    (with the ATR) so a replay resets the card where the run did. A VERIFY carrying one of
    ``secrets`` (a real card's PIN) is written with its data masked as ``2A`` bytes and
    ``"redacted": "pin"``: traces travel, PINs must not.
    """

    def __init__(
        self, inner: Transport, out: IO[str], test: str, *, secrets: frozenset[bytes] = frozenset()
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._out = out
        self._test = test
        self._secrets = secrets
        self._start = time.perf_counter()
        self.count = 0
        self.status_words: list[int] = []

    def connect(self) -> bytes:
        atr = self.inner.connect()
        self._event("connect", atr)
        return atr

    def disconnect(self) -> None:
        self.inner.disconnect()

    def reset(self) -> bytes:
        atr = self.inner.reset()
        self._event("reset", atr)
        return atr

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def transmit(self, apdu: bytes) -> bytes:
        sent = time.perf_counter()
        try:
            response = self.inner.transmit(apdu)
        except Exception as exc:
            self._write(sent, apdu, None, type(exc).__name__)
            raise
        self._write(sent, apdu, response, None)
        return response

    def _event(self, event: str, atr: bytes) -> None:
        entry = {
            "test": self._test,
            "t_ms": round((time.perf_counter() - self._start) * 1000, 3),
            "event": event,
            "atr": atr.hex().upper(),
            "command": None,
        }
        self._out.write(json.dumps(entry) + "\n")
        self._out.flush()

    def _write(
        self, sent: float, command: bytes, response: bytes | None, error: str | None
    ) -> None:
        self.count += 1
        sw = response[-2:].hex().upper() if response is not None and len(response) >= 2 else None
        if sw is not None:
            self.status_words.append(int(sw, 16))
        entry: dict[str, Any] = {
            "test": self._test,
            "t_ms": round((sent - self._start) * 1000, 3),
            "command": command.hex(),
            "response": response.hex() if response is not None else None,
            "sw": sw,
            "error": error,
        }
        if command[1:2] == b"\x20" and len(command) > 5 and command[5:] in self._secrets:
            entry["command"] = (command[:5] + b"*" * (len(command) - 5)).hex()
            entry["redacted"] = "pin"
        self._out.write(json.dumps(entry) + "\n")
        self._out.flush()


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def status_words(path: Path) -> list[int]:
    """The status words a trace saw, in order."""
    return [int(e["sw"], 16) for e in read_trace(path) if e.get("sw")]
