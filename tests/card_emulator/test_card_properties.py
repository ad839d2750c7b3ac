"""Properties the card must keep for any input (JPKI.md "Status words", "PINs").

- Any byte string sent as an APDU gets a response ending in a status word from the card's
  defined set, and never an exception, whatever state the card is in.
- The PIN counters behave exactly like a small model under any sequence of VERIFYs, resets,
  re-selections, PIN changes and power cycles through the card file.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mynahil.apdu import CommandApdu
from mynahil.card_emulator import (
    DEFINED_STATUS_WORDS,
    CardFile,
    CardState,
    EmulatedCard,
    PinSlot,
    save_card,
)
from tests.support import PIN, examples

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_PIN = bytes.fromhex("00A4020C020018")
SELECT_AUTH_KEY = bytes.fromhex("00A4020C020017")
SELECT_CARD_INFO = bytes.fromhex("00A4040C0AD3921000310001010408")
VERIFY_QUERY = bytes.fromhex("00200080")


def verify(pin: bytes) -> bytes:
    return bytes((0x00, 0x20, 0x00, 0x80, len(pin))) + pin


def status_word(response: bytes) -> int:
    assert len(response) >= 2
    return int.from_bytes(response[-2:], "big")


interesting_apdus = st.one_of(
    st.binary(max_size=300),
    # Headers the card knows, with random bodies: reaches deep into each handler.
    st.builds(
        lambda cla, ins, p1, p2, body: bytes((cla, ins, p1, p2)) + body,
        st.sampled_from([0x00, 0x80, 0x0C, 0x01, 0x10, 0x40, 0xFF, 0x84]),
        st.sampled_from([0xA4, 0xB0, 0x20, 0x24, 0x2A, 0xB1, 0x84, 0xC0, 0x60, 0x90]),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=270),
    ),
    # Well-formed short and extended APDUs of every case.
    st.builds(
        lambda ins, p1, p2, data, le, ext: CommandApdu(0x00, ins, p1, p2, data, le, ext).to_bytes(),
        st.sampled_from([0xA4, 0xB0, 0x20, 0x24]),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=255),
        st.integers(0, 256),
        st.booleans(),
    ),
)

SESSION_PREFIXES = [
    [],
    [SELECT_JPKI],
    [SELECT_JPKI, SELECT_AUTH_PIN],
    [SELECT_JPKI, SELECT_AUTH_PIN, verify(PIN.encode()), SELECT_AUTH_KEY],
    [SELECT_CARD_INFO, bytes.fromhex("00A4020C020011"), verify(PIN.encode())],
]


@settings(
    max_examples=examples(400),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    prefix=st.sampled_from(SESSION_PREFIXES),
    apdus=st.lists(interesting_apdus, min_size=1, max_size=4),
)
def test_any_bytes_get_a_defined_status_word(
    card_state: CardState, prefix: list[bytes], apdus: list[bytes]
) -> None:
    card = EmulatedCard(card_state)
    for command in prefix:
        card.transmit(command)
    for raw in apdus:
        response = card.transmit(raw)
        assert status_word(response) in DEFINED_STATUS_WORDS, (raw.hex(), response.hex())
        if status_word(response) != 0x9000:
            assert len(response) == 2, "errors carry no data"


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(candidates=st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=6))
def test_guessing_never_gains_a_try(card_state: CardState, candidates: list[bytes]) -> None:
    """Whatever is tried, tries left never go up without the right PIN."""
    card = EmulatedCard(card_state)
    card.transmit(SELECT_JPKI)
    card.transmit(SELECT_AUTH_PIN)
    tries = 3
    for guess in candidates:
        response = card.transmit(verify(guess))
        sw = status_word(response)
        if guess == PIN.encode() and tries > 0:
            assert sw == 0x9000
            tries = 3
        elif tries == 0:
            assert sw == 0x6984
        else:
            tries -= 1
            assert sw == 0x63C0 | tries
        card.transmit(SELECT_JPKI)  # reselecting the AP must not restore anything
        card.transmit(SELECT_AUTH_PIN)
        query = status_word(card.transmit(VERIFY_QUERY))
        assert query == (0x6984 if tries == 0 else 0x63C0 | tries)


class PinCounterMachine(RuleBasedStateMachine):
    """The auth PIN against a model: tries left, blocked, verified, and the current value."""

    def __init__(self) -> None:
        super().__init__()
        self.folder: Path | None = None
        self.stored: CardFile | None = None
        self.card: EmulatedCard | None = None
        self.pin = PIN
        self.tries = 3
        self.verified = False

    @initialize(state=st.just(None))
    def issue(self, state: None) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="pin-machine-"))
        path = self.folder / "card.json"
        save_card(STATE_FOR_MACHINE[0], path)
        self._power_up(path)

    def _power_up(self, path: Path) -> None:
        self.stored = CardFile(path)
        self.card = EmulatedCard(self.stored.state, self.stored)
        self._select()

    def _select(self) -> None:
        assert self.card is not None
        assert self.card.transmit(SELECT_JPKI) == b"\x90\x00"
        assert self.card.transmit(SELECT_AUTH_PIN) == b"\x90\x00"
        self.verified = False

    def _send(self, raw: bytes) -> int:
        assert self.card is not None
        return status_word(self.card.transmit(raw))

    @rule()
    def verify_right(self) -> None:
        sw = self._send(verify(self.pin.encode()))
        if self.tries == 0:
            assert sw == 0x6984
        else:
            assert sw == 0x9000
            self.tries, self.verified = 3, True

    @rule(guess=st.text(alphabet="0123456789ABC", min_size=1, max_size=8))
    def verify_wrong(self, guess: str) -> None:
        if guess == self.pin:
            return
        sw = self._send(verify(guess.encode()))
        if self.tries == 0:
            assert sw == 0x6984
        else:
            self.tries -= 1
            self.verified = False
            assert sw == 0x63C0 | self.tries

    @rule()
    def query(self) -> None:
        assert self._send(VERIFY_QUERY) == (0x6984 if self.tries == 0 else 0x63C0 | self.tries)

    @rule()
    def reset(self) -> None:
        assert self.card is not None
        self.card.reset()
        self._select()

    @rule()
    def reselect(self) -> None:
        self._select()

    @precondition(lambda self: self.verified)
    @rule(new=st.text(alphabet="0123456789", min_size=4, max_size=4))
    def change(self, new: str) -> None:
        assert self._send(bytes((0x00, 0x24, 0x01, 0x80, 4)) + new.encode()) == 0x9000
        self.pin = new

    @precondition(lambda self: not self.verified)
    @rule()
    def change_without_verify(self) -> None:
        expected = 0x6984 if self.tries == 0 else 0x6982
        assert self._send(bytes.fromhex("002401800439393939")) == expected

    @rule()
    def power_cycle_through_the_file(self) -> None:
        assert self.stored is not None
        self.stored.close()
        self._power_up(self.stored.path)

    @invariant()
    def counter_in_file_matches(self) -> None:
        if self.stored is not None:
            assert self.stored.state.pins[PinSlot.AUTH].tries_left == self.tries

    def teardown(self) -> None:
        if self.stored is not None:
            self.stored.close()


STATE_FOR_MACHINE: list[CardState] = []


def test_pin_counters_follow_the_model(card_state: CardState) -> None:
    STATE_FOR_MACHINE[:] = [card_state]
    PinCounterMachine.TestCase.settings = settings(
        max_examples=examples(25), stateful_step_count=25, deadline=None
    )
    PinCounterMachine.TestCase().runTest()
