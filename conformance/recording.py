"""Every APDU a test exchanges, as JSON lines: the trace a vendor sends with a failure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO

from mynahil.transports import Transport

__all__ = ["RecordingTransport"]


class RecordingTransport(Transport):
    """Wraps a transport; writes ``{"test", "t_ms", "command", "response", "sw"}`` per APDU."""

    def __init__(self, inner: Transport, out: IO[str], test: str) -> None:
        self.inner = inner
        self._out = out
        self._test = test
        self._start = time.perf_counter()
        self.count = 0

    def connect(self) -> bytes:
        return self.inner.connect()

    def disconnect(self) -> None:
        self.inner.disconnect()

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

    def _write(
        self, sent: float, command: bytes, response: bytes | None, error: str | None
    ) -> None:
        self.count += 1
        entry = {
            "test": self._test,
            "t_ms": round((sent - self._start) * 1000, 3),
            "command": command.hex(),
            "response": response.hex() if response is not None else None,
            "sw": response[-2:].hex().upper() if response and len(response) >= 2 else None,
            "error": error,
        }
        self._out.write(json.dumps(entry) + "\n")


def read_trace(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
