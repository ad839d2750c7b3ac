"""The APDU codec (ISO 7816-4 §5.1): cases 1-4, short and extended, strict on bad input."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given

from mynahil.apdu import CommandApdu, MalformedApdu, ResponseApdu, describe_sw

byte = st.integers(0, 255)


@st.composite
def commands(draw: st.DrawFn) -> CommandApdu:
    extended = draw(st.booleans())
    data = draw(st.binary(max_size=300 if extended else 255))
    le = draw(st.integers(0, 65536 if extended else 256))
    return CommandApdu(draw(byte), draw(byte), draw(byte), draw(byte), data, le, extended)


@given(commands())
def test_encode_then_parse_is_identity(command: CommandApdu) -> None:
    parsed = CommandApdu.parse(command.to_bytes())
    assert (parsed.cla, parsed.ins, parsed.p1, parsed.p2) == (
        command.cla,
        command.ins,
        command.p1,
        command.p2,
    )
    assert parsed.data == command.data
    assert parsed.le == command.le
    assert parsed.case == command.case


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_malformed_with_6700(raw: bytes) -> None:
    try:
        parsed = CommandApdu.parse(raw)
    except MalformedApdu as exc:
        status = exc.sw
    else:
        assert CommandApdu.parse(parsed.to_bytes()) == parsed
        return
    assert status == 0x6700


@pytest.mark.parametrize(
    ("raw", "case", "data", "le", "extended"),
    [
        ("00A40000", 1, "", 0, False),
        ("00B0000000", 2, "", 256, False),
        ("00B0000010", 2, "", 16, False),
        ("00A4020C020018", 3, "0018", 0, False),
        ("802A0080020102" + "00", 4, "0102", 256, False),
        ("00B00000000000", 2, "", 65536, True),
        ("00B00000000100", 2, "", 256, True),
        ("00A40400000002D392", 3, "D392", 0, True),
        ("802A008000000201020000", 4, "0102", 65536, True),
    ],
)
def test_cases(raw: str, case: int, data: str, le: int, extended: bool) -> None:
    apdu = CommandApdu.parse(bytes.fromhex(raw))
    assert (apdu.case, apdu.data.hex().upper(), apdu.le, apdu.extended) == (
        case,
        data,
        le,
        extended,
    )


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00",
        "00A400",
        "00A4040C05D392",
        "00A4040C02D3920000",
        "000000000000",
        "00A404000000",
        "00A4040000000301",
    ],
)
def test_malformed(raw: str) -> None:
    with pytest.raises(MalformedApdu):
        CommandApdu.parse(bytes.fromhex(raw))


def test_field_limits_are_enforced() -> None:
    with pytest.raises(ValueError, match="one byte"):
        CommandApdu(0x100, 0, 0, 0)
    with pytest.raises(ValueError, match="do not fit a short"):
        CommandApdu(0, 0, 0, 0, bytes(256))
    with pytest.raises(ValueError, match="Le 257"):
        CommandApdu(0, 0, 0, 0, le=257)


def test_responses_and_status_word_names() -> None:
    response = ResponseApdu.parse(bytes.fromhex("010263C2"))
    assert response.data == b"\x01\x02"
    assert response.sw == 0x63C2
    assert not response.ok
    assert describe_sw(0x63C2) == "63C2 verification failed, 2 tries left"
    assert describe_sw(0x6984) == "6984 auth method blocked"
    assert describe_sw(0x6123) == "6123 unknown status word"
    with pytest.raises(MalformedApdu):
        ResponseApdu.parse(b"\x90")
