"""Fuzzed APDUs at the emulated card over the vpcd/vicc socket (no pcscd).

JPKI.md "Status words": whatever arrives, the card answers, in time, with a status word from
its defined set, and an error carries no data. Here that holds on the real wire: the TCP
framing, the vicc thread and the card together, for

- structured cases from hypothesis: known headers with random bodies, declared lengths that
  lie, extended-length edge cases, and sequences across SELECT / VERIFY / READ BINARY /
  SIGN state;
- a seeded raw stream that reaches the 100,000 cases cheaply (``MYNAHIL_FUZZ_APDUS`` sets
  the count);
- frames shorter than a header and the largest frame the wire carries.

Every answer must come within 2 s (hang detection), and afterwards the card's thread still
serves and a known-good SELECT still answers ``9000``. Each test has its own card, and each
hypothesis case a fresh one, so a PIN blocked by fuzzing never reaches another test.
"""

from __future__ import annotations

import os
import random
import socket
import struct

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from mynahil.apdu import CommandApdu
from mynahil.card_emulator import DEFINED_STATUS_WORDS, CardState, EmulatedCard
from mynahil.card_emulator.vicc import ViccAttachment
from mynahil.jpki import AID, CardInfoFile, JpkiFile
from mynahil.vpcd_protocol import Control, recv_frame, send_frame, tune_socket
from tests.security.conftest import (
    ANSWER_DEADLINE,
    SELECT_JPKI,
    FuzzTally,
    FuzzWire,
    status_word,
)
from tests.support import TIMING_SENSITIVE, examples

pytestmark = TIMING_SENSITIVE

RAW_STREAM_APDUS = int(os.environ.get("MYNAHIL_FUZZ_APDUS", "100000"))
NEW_CARD_EVERY = 2_000  # the stream changes cards now and then, so blocked PINs do not dominate
PIN = b"1234"
FUZZ = settings(
    max_examples=int(os.environ.get("MYNAHIL_FUZZ_EXAMPLES", examples(600))),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KNOWN_CLA = [0x00, 0x80, 0x0C, 0x01, 0x10, 0x40, 0xFF, 0x84, 0x90, 0x8C]
KNOWN_INS = [0xA4, 0xB0, 0x20, 0x24, 0x2A, 0xB1, 0x84, 0xC0, 0x60, 0x90, 0x88, 0x22, 0xCA]
EF_IDS = [int(f) for f in JpkiFile] + [int(f) for f in CardInfoFile] + [0x3F00, 0xFFFF]


def select_aid(aid: bytes) -> bytes:
    return bytes((0x00, 0xA4, 0x04, 0x0C, len(aid))) + aid


def select_ef(ef: int) -> bytes:
    return bytes((0x00, 0xA4, 0x02, 0x0C, 0x02)) + ef.to_bytes(2, "big")


def verify(pin: bytes) -> bytes:
    return bytes((0x00, 0x20, 0x00, 0x80, len(pin))) + pin


def read_binary(offset: int, le: int) -> bytes:
    return CommandApdu(0x00, 0xB0, offset >> 8 & 0x7F, offset & 0xFF, b"", le).to_bytes()


def sign(data: bytes) -> bytes:
    return CommandApdu(0x80, 0x2A, 0x00, 0x80, data, 256).to_bytes()


# --- structured cases ----------------------------------------------------------------------

bodies = st.binary(max_size=300)

lying_lengths = st.builds(
    # A header, a declared Lc, and a body whose length disagrees with it (short form).
    lambda cla, ins, p1, p2, lc, body, le: bytes((cla, ins, p1, p2, lc)) + body + le,
    st.sampled_from(KNOWN_CLA),
    st.sampled_from(KNOWN_INS),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    bodies,
    st.sampled_from([b"", b"\x00", b"\x00\x00", b"\xff"]),
)

extended_edges = st.builds(
    # Extended-length forms at their edges: Lc 0 / 1 / 65535, Le 0000 (65,536), 0001, FFFF,
    # a 3-byte Le alone, and bodies shorter or longer than declared.
    lambda header, lc, body, le: header + lc + body + le,
    st.builds(
        lambda cla, ins, p1, p2: bytes((cla, ins, p1, p2)),
        st.sampled_from([0x00, 0x80]),
        st.sampled_from([0xA4, 0xB0, 0x20, 0x24, 0x2A]),
        st.integers(0, 255),
        st.integers(0, 255),
    ),
    st.sampled_from(
        [b"", b"\x00", b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x01\x00", b"\x00\xff\xff"]
    ),
    st.one_of(st.binary(max_size=8), st.binary(min_size=250, max_size=1100)),
    st.sampled_from([b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\xff\xff", b"\x00\x00\x00"]),
)


@st.composite
def well_formed(draw: st.DrawFn) -> bytes:
    """A valid command APDU of any case, short or extended, data and Ne at their limits."""
    extended = draw(st.booleans())
    limit = 65536 if extended else 256
    data = draw(
        st.binary(max_size=300 if not extended else 1100).filter(lambda d: len(d) < 256 or extended)
    )
    le = draw(st.sampled_from([0, 1, limit - 1, limit]) | st.integers(0, limit))
    return CommandApdu(
        draw(st.sampled_from([0x00, 0x80])),
        draw(st.sampled_from([0xA4, 0xB0, 0x20, 0x24, 0x2A])),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        data,
        le,
        extended,
    ).to_bytes()


header_with_body = st.builds(
    lambda cla, ins, p1, p2, body: bytes((cla, ins, p1, p2)) + body,
    st.sampled_from(KNOWN_CLA),
    st.sampled_from(KNOWN_INS),
    st.integers(0, 255),
    st.integers(0, 255),
    bodies,
)

any_apdu = st.one_of(
    header_with_body, lying_lengths, extended_edges, well_formed(), st.binary(min_size=4)
)

# Steps that move the card between states, mixed with the fuzz: the card must stay sound
# whether an AP, an EF, a PIN or a key is selected, and whether a PIN was verified.
state_steps = st.one_of(
    st.sampled_from([select_aid(aid.value) for aid in AID]),
    st.builds(select_ef, st.sampled_from(EF_IDS)),
    st.builds(select_ef, st.integers(0, 0xFFFF)),
    st.just(verify(PIN)),
    st.builds(verify, st.binary(max_size=20)),
    st.just(bytes.fromhex("00200080")),  # tries left
    st.builds(read_binary, st.integers(0, 0x7FFF), st.integers(0, 256)),
    st.builds(sign, st.binary(max_size=300)),
    st.builds(
        lambda slot, new: bytes((0x00, 0x24, 0x01, 0x80, len(PIN) + len(new))) + PIN + new,
        st.just(0),
        st.binary(max_size=16),
    ),
    st.just(b"RESET"),  # not an APDU: a warm reset on the wire
)

session_prefixes = st.sampled_from(
    [
        [],
        [SELECT_JPKI],
        [SELECT_JPKI, select_ef(JpkiFile.AUTH_PIN)],
        [SELECT_JPKI, select_ef(JpkiFile.AUTH_PIN), verify(PIN), select_ef(JpkiFile.AUTH_KEY)],
        [SELECT_JPKI, select_ef(JpkiFile.AUTH_CERT)],
        [select_aid(AID.CARD_INFO.value), select_ef(CardInfoFile.PIN), verify(PIN)],
    ]
)


@FUZZ
@given(prefix=session_prefixes, apdus=st.lists(any_apdu, min_size=1, max_size=8))
def test_structured_apdus_get_defined_answers_in_time(
    fuzz_wire: FuzzWire, prefix: list[bytes], apdus: list[bytes]
) -> None:
    fuzz_wire.new_card()
    for command in prefix:
        fuzz_wire.send(command)
    for raw in apdus:
        fuzz_wire.send(raw)


@FUZZ
@given(steps=st.lists(st.one_of(state_steps, any_apdu), min_size=1, max_size=25))
def test_sequences_across_card_state(fuzz_wire: FuzzWire, steps: list[bytes]) -> None:
    fuzz_wire.new_card()
    for step in steps:
        if step == b"RESET":
            fuzz_wire.transport.reset()
        else:
            fuzz_wire.send(step)
    # Whatever happened, a reset brings the card back to a state that selects the JPKI AP.
    fuzz_wire.transport.reset()
    assert fuzz_wire.send(SELECT_JPKI) == b"\x90\x00"


# --- the raw stream --------------------------------------------------------------------------


STATE_STEPS = [
    *(select_aid(aid.value) for aid in AID),
    *(select_ef(ef) for ef in EF_IDS),
    verify(PIN),
    sign(bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)),
]


def raw_apdu(rng: random.Random) -> bytes:
    """One case of the stream: random bytes, consistent and lying lengths, short and extended,
    and now and then a step that moves the card to another AP, EF or security state."""
    roll = rng.random()
    cla, ins = rng.choice(KNOWN_CLA), rng.choice(KNOWN_INS)
    p1, p2 = rng.randint(0, 255), rng.randint(0, 255)
    if roll < 0.35:  # random bytes of any length
        return rng.randbytes(rng.choice((4, 5, 6, 7, rng.randint(4, 40), rng.randint(4, 300))))
    if roll < 0.70:  # a known header, a short body whose Lc is right, maybe an Le
        body = rng.randbytes(rng.randint(1, 255))
        le = rng.choice((b"", b"", bytes((rng.randint(0, 255),))))
        return bytes((cla, ins, p1, p2, len(body))) + body + le
    if roll < 0.80:  # a known header with no body: case 1 or case 2
        return bytes((cla, ins, p1, p2)) + rng.choice((b"", bytes((rng.randint(0, 255),))))
    if roll < 0.88:  # a short APDU whose Lc lies
        lc = rng.randint(1, 255)
        size = rng.choice((lc - 1, lc + 1, lc + 3, rng.randint(0, 260)))
        return bytes((cla, ins, p1, p2, lc)) + rng.randbytes(max(size, 0))
    if roll < 0.95:  # extended: Lc consistent or lying, a long body, a 2-byte Le or none
        lc = rng.randint(0, 1200)
        size = lc if rng.random() < 0.5 else rng.randint(0, 1200)
        le = rng.choice((b"", b"\x00\x00", rng.randbytes(2), rng.randbytes(3)))
        return bytes((cla, ins, p1, p2, 0)) + lc.to_bytes(2, "big") + rng.randbytes(size) + le
    return rng.choice(STATE_STEPS)


def test_a_seeded_raw_stream_gets_defined_answers_in_time(fuzz_wire: FuzzWire) -> None:
    rng = random.Random(20200901)
    for n in range(RAW_STREAM_APDUS):
        if n % NEW_CARD_EVERY == 0:
            fuzz_wire.new_card()
            if rng.random() < 0.5:  # half of the cards get a verified session first
                for command in (SELECT_JPKI, select_ef(JpkiFile.AUTH_PIN), verify(PIN)):
                    fuzz_wire.send(command)
        fuzz_wire.send(raw_apdu(rng))
    assert fuzz_wire.sent >= RAW_STREAM_APDUS


# --- frames the Transport API will not send ------------------------------------------------


def test_frames_shorter_than_a_header_and_the_largest_frame(
    card_state: CardState, fuzz_tally: FuzzTally
) -> None:
    """The harness refuses to send under 4 bytes, but a phone app or a broken vpcd could:
    the card's end of the wire must answer those too, and the largest frame (65,535 bytes)."""
    card = EmulatedCard(card_state)
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        attachment = ViccAttachment(card, "127.0.0.1", server.getsockname()[1])
        with attachment:
            conn, _ = server.accept()
            with conn:
                tune_socket(conn)
                conn.settimeout(ANSWER_DEADLINE)
                send_frame(conn, bytes((Control.POWER_ON,)))
                frames = [b"", b"\x00\x00", b"\x00\xa4\x04", b"\xff\xff\xff"]
                frames += [SELECT_JPKI[:4] + bytes(65_531), random.Random(1).randbytes(65_535)]
                frames += [b"\x00\xb0\x00\x00\x00" + struct.pack(">H", 0)]  # Le 65,536
                for frame in frames:
                    send_frame(conn, frame)
                    response = recv_frame(conn)
                    assert response is not None, f"the card hung up on {frame[:8].hex()}"
                    assert status_word(response) in DEFINED_STATUS_WORDS, frame[:8].hex()
                send_frame(conn, SELECT_JPKI)
                assert recv_frame(conn) == b"\x90\x00"
                assert attachment.connected.is_set()
    assert attachment.stats.apdus == len(frames) + 1
