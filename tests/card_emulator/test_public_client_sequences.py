"""The exact command sequences public clients written against real My Number cards send,
replayed against the emulated card in process and through pcscd + vpcd (issue 14).

Sources, read for facts only: AokiApp/jsapdu (``packages/apdu-utils``: ``selectDf`` sends
``00 A4 04 0C``, ``verify(pin, {ef})`` sends ``00 20 00 80+ef``, ``readEfBinaryFull(sfi)`` sends
``00 B0 80|sfi 00`` with an extended Le of 65,536; ``packages/mynacard`` ``constants.ts``,
``schema.ts`` and the ``examples/mynacard`` kenhojo/kenkaku readers) and jpki/myna
(``src/reader.rs``: ``read_binary_all`` reads 7 bytes, takes the missing length from the BER
header and reads the rest from offset 7 in reads of at most 255 (Le 00 past that);
``src/text.rs``: ``basic_info`` selects 0005, ``mynumber`` reads 17 bytes of 0001, ``attrs``
skips the first inner TLV of 0002; ``src/visual.rs``: ``basic_info`` reads 0003,
``read_entries`` verifies EF 0013 with the My Number and skips DF21 and DF24).

Each client below is written here from those facts; the card is held to what they expect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509

from mynahil.card_emulator import CardState, EmulatedCard, open_transport
from mynahil.card_emulator.state import match_b_value
from mynahil.carddata import verify_face, verify_info
from mynahil.transports import Transport
from tests.support import PIN, CardFactory

KENHOJO = "D3921000310001010408"
KENKAKU = "D3921000310001010402"

WIRES = [
    pytest.param("inproc", id="inproc"),
    pytest.param("vpcd", id="pcscd-vpcd", marks=pytest.mark.pcsc),
]


class Wire:
    """Sends hex APDUs, keeps the log, fails on an unexpected status word."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.sent: list[str] = []

    def send(self, apdu: str, expect: str = "9000") -> bytes:
        command = bytes.fromhex(apdu.replace(" ", ""))
        self.sent.append(command.hex().upper())
        response = self.transport.transmit(command)
        sw = response[-2:].hex().upper()
        assert sw == expect, f"{apdu} answered {sw}, the client expects {expect}"
        return response[:-2]


# --- the BER reading both clients do ----------------------------------------------------------


def ber(data: bytes) -> tuple[int, bytes, bytes]:
    """One BER TLV: (tag, value, rest). Tags of one or more bytes, lengths short or long."""
    i = 1
    if data[0] & 0x1F == 0x1F:
        while data[i] & 0x80:
            i += 1
        i += 1
    tag = int.from_bytes(data[:i], "big")
    first = data[i]
    i += 1
    length = first
    if first & 0x80:
        size = first & 0x7F
        length = int.from_bytes(data[i : i + size], "big")
        i += size
    return tag, data[i : i + length], data[i + length :]


def missing_after(head: bytes) -> int:
    """What myna's BER parser reports as missing after the first 7 bytes of a file."""
    i = 2 if head[0] & 0x1F == 0x1F else 1
    first = head[i]
    size = first & 0x7F if first & 0x80 else 0
    length = int.from_bytes(head[i + 1 : i + 1 + size], "big") if size else first
    return max(0, i + 1 + size + length - len(head))


# --- myna ------------------------------------------------------------------------------------


def myna_read_binary(wire: Wire, pos: int, size: int) -> bytes:
    out = b""
    end = pos + size
    while pos < end:
        remaining = end - pos
        le = 0 if remaining > 0xFF else remaining
        data = wire.send(f"00B0{pos >> 8:02X}{pos & 0xFF:02X}{le:02X}")
        if not data:
            break
        out += data
        pos += len(data)
    return out


def myna_read_binary_all(wire: Wire) -> bytes:
    head = myna_read_binary(wire, 0, 7)
    return head + myna_read_binary(wire, 7, missing_after(head))


def myna_select_ef(wire: Wire, fid: str) -> None:
    wire.send(f"00A4020C02{fid}")


def myna_verify(wire: Wire, value: str) -> None:
    data = value.encode("ascii")
    wire.send(f"00200080{len(data):02X}{data.hex()}")


# --- jsapdu ----------------------------------------------------------------------------------


def jsapdu_select_df(wire: Wire, aid: str) -> None:
    wire.send(f"00A4040C{len(aid) // 2:02X}{aid}")


def jsapdu_verify(wire: Wire, value: str, ef: int) -> None:
    data = value.encode("ascii")
    wire.send(f"002000{0x80 + ef:02X}{len(data):02X}{data.hex()}")


def jsapdu_read_ef_binary_full(wire: Wire, sfi: int) -> bytes:
    return wire.send(f"00B0{0x80 | sfi:02X}00000000")


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def wire_spec(request: pytest.FixtureRequest) -> str:
    spec: str = request.param
    if spec == "vpcd":
        request.getfixturevalue("pcsc_stack")
    return spec


@pytest.fixture
def wire(wire_spec: str, card_state: CardState) -> Iterator[Wire]:
    transport = open_transport(wire_spec, EmulatedCard(card_state))
    transport.connect()
    yield Wire(transport)
    transport.disconnect()


@pytest.fixture
def root(card_factory: CardFactory) -> x509.Certificate:
    return x509.load_der_x509_certificate(card_factory.ca.auth_ca_certificate)


# --- the sequences ---------------------------------------------------------------------------


@pytest.mark.parametrize("wire_spec", WIRES, indirect=True)
def test_myna_text_ap(wire: Wire, card_state: CardState) -> None:
    """myna's ``basic_info``, ``mynumber`` and ``attrs`` on the card-info AP."""
    h = card_state.holder
    wire.send(f"00A4040C0A{KENHOJO}")
    myna_select_ef(wire, "0005")
    _tag, payload, _ = ber(myna_read_binary_all(wire))
    _t, apid, rest = ber(payload)
    _t, pubkey_id, _ = ber(rest)
    assert apid
    assert len(pubkey_id) == 16
    myna_select_ef(wire, "0011")
    myna_verify(wire, PIN)
    myna_select_ef(wire, "0001")
    _tag, number, _ = ber(myna_read_binary(wire, 0, 17))
    assert number.decode() == h.my_number
    myna_select_ef(wire, "0011")
    myna_verify(wire, PIN)
    myna_select_ef(wire, "0002")
    _tag, payload, _ = ber(myna_read_binary_all(wire))
    _skipped, _v, rest = ber(payload)  # myna skips the first inner TLV: DF21
    fields = []
    for _ in range(4):
        _t, value, rest = ber(rest)
        fields.append(value.decode("utf-8"))
    assert fields == [h.name, h.address, f"{h.birth_date:%Y%m%d}", h.sex.value]


@pytest.mark.parametrize("wire_spec", WIRES, indirect=True)
def test_myna_visual_ap(wire: Wire, card_state: CardState) -> None:
    """myna's ``basic_info`` and ``read_entries`` on the card-face AP."""
    h = card_state.holder
    wire.send(f"00A4040C0A{KENKAKU}")
    myna_select_ef(wire, "0003")
    _tag, payload, _ = ber(myna_read_binary_all(wire))
    _t, ident, rest = ber(payload)
    _t, _skipped, rest = ber(rest)
    _t, version, rest = ber(rest)
    _t, city, _ = ber(rest)
    assert len(ident) == 4
    assert version == b"\x01"
    assert h.address.startswith(city.decode("utf-8"))
    myna_select_ef(wire, "0013")
    myna_verify(wire, h.my_number)
    myna_select_ef(wire, "0002")
    whole = myna_read_binary_all(wire)
    _tag, payload, _ = ber(whole)
    _t, _header, rest = ber(payload)  # DF21 skipped
    _t, birth, rest = ber(rest)
    _t, sex, rest = ber(rest)
    _t, _public_key, rest = ber(rest)
    _t, name, rest = ber(rest)
    _t, address, rest = ber(rest)
    _t, photo, _ = ber(rest)
    assert birth.decode() == f"{h.birth_date:%Y%m%d}"
    assert sex.decode() == h.sex.value
    assert name.startswith(b"\x89PNG")
    assert address.startswith(b"\x89PNG")
    assert photo[4:8] == b"jP  ", "a JPEG 2000 file (JP2 signature box)"
    reads = [a for a in wire.sent if a.startswith("00B0")]
    assert len(reads) > 40, "myna reads the face in short APDUs"


@pytest.mark.parametrize("wire_spec", WIRES, indirect=True)
def test_jsapdu_kenhojo_signature_and_certificate(
    wire: Wire, card_state: CardState, root: x509.Certificate
) -> None:
    """jsapdu's kenhojo examples: verify EF 0011 by SFI, whole-file reads by SFI."""
    jsapdu_select_df(wire, KENHOJO)
    jsapdu_verify(wire, PIN, 0x11)
    signature = jsapdu_read_ef_binary_full(wire, 0x03)
    tag, value, _ = ber(signature)
    assert tag == 0xFF30, f"EF 0003 is tagged {tag:X}"
    tags = []
    while value:
        t, _v, value = ber(value)
        tags.append(t)
    assert tags == [0xDF31, 0xDF32, 0xDF33]
    certificate = jsapdu_read_ef_binary_full(wire, 0x04)
    tag, value, _ = ber(certificate)
    assert tag == 0x7F21
    t1, contents, rest = ber(value)
    t2, _sig, _ = ber(rest)
    assert (t1, t2) == (0x5F4E, 0x5F37)
    _te, e, rest = ber(contents[32:])  # decodePublicKey: exponent, then modulus
    _tn, n, _ = ber(rest)
    assert int.from_bytes(e, "big") == 65537
    assert len(n) == 256
    verify_info(
        jsapdu_read_ef_binary_full(wire, 0x01), jsapdu_read_ef_binary_full(wire, 0x02),
        signature, certificate, root,
    )  # fmt: skip
    assert sum(a.startswith("00B0") for a in wire.sent) == 4, "one APDU a file"


@pytest.mark.parametrize("wire_spec", WIRES, indirect=True)
def test_jsapdu_kenkaku_read(wire: Wire, card_state: CardState, root: x509.Certificate) -> None:
    """jsapdu's kenkaku reader: PIN-A by SFI 13, EF 0002, 0004, 0005 by readEfBinaryFull, and
    the offsets it slices EF 0002 by."""
    h = card_state.holder
    jsapdu_select_df(wire, KENKAKU)
    jsapdu_verify(wire, h.my_number, 0x13)
    entries = jsapdu_read_ef_binary_full(wire, 0x02)
    certificate = jsapdu_read_ef_binary_full(wire, 0x04)
    my_number = jsapdu_read_ef_binary_full(wire, 0x05)
    tag, payload, _ = ber(entries)
    assert tag == 0xFF20
    _t, offsets_raw, _ = ber(payload)
    offsets = [int.from_bytes(offsets_raw[i : i + 2], "big") for i in range(0, len(offsets_raw), 2)]
    assert [entries[o] << 8 | entries[o + 1] for o in offsets] == list(range(0xDF22, 0xDF2B))
    tag, _v, _ = ber(my_number)
    assert tag == 0xFF40
    verify_face(None, entries, my_number, certificate, root)


@pytest.mark.parametrize("wire_spec", WIRES, indirect=True)
def test_jsapdu_pin_b_on_the_card_face(wire: Wire, card_state: CardState) -> None:
    """照合番号B (EF 0012 by SFI) as jsapdu's constants describe it: 14 digits."""
    b = match_b_value(card_state.holder, card_state.card_expires, card_state.security_code)
    jsapdu_select_df(wire, KENKAKU)
    wire.send("00200092", expect="63CA")
    jsapdu_verify(wire, b, 0x12)
    assert jsapdu_read_ef_binary_full(wire, 0x02)[:2] == b"\xff\x20"
    wire.send("00B08500000000", expect="6982")  # not the My Number (extended Le 65,536)
