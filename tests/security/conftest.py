"""Fixtures for the security tests: an emulated card behind the real vpcd/vicc socket, and
the tally of fuzz cases each run writes to ``reports/``."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mynahil.card_emulator import DEFINED_STATUS_WORDS, CardState, EmulatedCard, SocketTransport
from mynahil.transports import TransportError

REPORTS = Path(__file__).resolve().parents[2] / "reports"
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
ANSWER_DEADLINE = 2.0
"""Seconds the card has to answer one APDU on the socket; longer is a hang."""


def status_word(response: bytes) -> int:
    assert len(response) >= 2, f"a response without a status word: {response.hex()}"
    return int.from_bytes(response[-2:], "big")


class SwappableCard:
    """The card in the reader, replaced by a fresh one between fuzz cases.

    The wire (socket, vicc thread) stays; each case starts from a brand-new
    :class:`EmulatedCard` built from the same frozen state, so no case inherits another's
    PIN counters or selection.
    """

    def __init__(self, state: CardState) -> None:
        self.state = state
        self.current = EmulatedCard(state)
        self._lock = threading.Lock()

    @property
    def atr(self) -> bytes:
        return self.current.atr

    def transmit(self, raw: bytes) -> bytes:
        with self._lock:
            return self.current.transmit(raw)

    def reset(self) -> bytes:
        with self._lock:
            return self.current.reset()

    def fresh(self) -> None:
        with self._lock:
            self.current = EmulatedCard(self.state)


class FuzzWire:
    """A card on the vpcd socket, with a deadline on every answer and a tally of APDUs."""

    def __init__(self, state: CardState) -> None:
        self.card = SwappableCard(state)
        self.transport = SocketTransport(self.card)
        # The listener's socket timeout is the hang detector: a card that does not answer
        # within the deadline raises TransportError instead of blocking the test.
        self.transport.listener.io_timeout = ANSWER_DEADLINE
        self.sent = 0
        self.status_words: Counter[int] = Counter()
        self.slowest = 0.0

    def __enter__(self) -> FuzzWire:
        self.transport.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.transport.disconnect()

    def new_card(self) -> None:
        """A fresh card in the same reader (and a reset, as a reinsertion would do)."""
        self.card.fresh()
        self.transport.reset()

    def send(self, apdu: bytes) -> bytes:
        """One APDU; fails the test on a hang, an undefined status word or data on an error."""
        start = time.perf_counter()
        try:
            response = self.transport.transmit(apdu)
        except TransportError as exc:
            pytest.fail(f"no answer to {apdu[:32].hex()}… ({len(apdu)} bytes): {exc}")
        elapsed = time.perf_counter() - start
        self.slowest = max(self.slowest, elapsed)
        assert elapsed < ANSWER_DEADLINE, f"{apdu[:32].hex()}: answered after {elapsed:.2f} s"
        sw = status_word(response)
        self.sent += 1
        self.status_words[sw] += 1
        assert sw in DEFINED_STATUS_WORDS, f"{apdu[:64].hex()} → undefined {sw:04X}"
        if sw != 0x9000:
            assert len(response) == 2, f"{apdu[:64].hex()} → {sw:04X} with data"
        return response

    def assert_alive(self) -> None:
        """The card's thread still serves, and a known-good SELECT still works."""
        assert self.transport.attachment.connected.is_set(), "the card left the reader"
        threads = {t.name for t in threading.enumerate()}
        assert f"vicc-{self.transport.listener.port}" in threads, "the card's thread died"
        self.card.fresh()
        self.transport.reset()
        assert self.transport.transmit(SELECT_JPKI) == b"\x90\x00"


class FuzzTally:
    """Cases run per test, written to ``reports/fuzz-apdu.json`` at the end of the session."""

    def __init__(self) -> None:
        self.apdus: dict[str, int] = {}
        self.status_words: Counter[int] = Counter()
        self.slowest = 0.0

    def add(self, test: str, wire: FuzzWire) -> None:
        self.apdus[test] = self.apdus.get(test, 0) + wire.sent
        self.status_words.update(wire.status_words)
        self.slowest = max(self.slowest, wire.slowest)

    @property
    def total(self) -> int:
        return sum(self.apdus.values())


@pytest.fixture(scope="session")
def fuzz_tally() -> Iterator[FuzzTally]:
    tally = FuzzTally()
    yield tally
    if not tally.apdus:
        return
    REPORTS.mkdir(exist_ok=True)
    figures = {
        "apdus": tally.total,
        "per_test": tally.apdus,
        "status_words": {f"{sw:04X}": n for sw, n in sorted(tally.status_words.items())},
        "slowest_answer_ms": round(tally.slowest * 1000, 3),
        "deadline_ms": ANSWER_DEADLINE * 1000,
    }
    (REPORTS / "fuzz-apdu.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfuzzed APDUs over the vpcd socket: {tally.total:,} (reports/fuzz-apdu.json)")


@pytest.fixture
def fuzz_wire(
    card_state: CardState, fuzz_tally: FuzzTally, request: pytest.FixtureRequest
) -> Iterator[FuzzWire]:
    """This test's own card behind the socket; checked alive and counted afterwards."""
    with FuzzWire(card_state) as wire:
        yield wire
        wire.assert_alive()
        fuzz_tally.add(request.node.name, wire)
