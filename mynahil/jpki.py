"""The My Number card's applications and files, as both the card and its readers know them.

Facts from JPKI.md; the few choices where no public source says what the real card does are
marked "choice" and listed in the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "AID",
    "BasicInfo",
    "CardInfoFile",
    "JpkiFile",
    "decode_basic_info",
    "decode_my_number",
    "encode_basic_info",
    "encode_my_number",
    "my_number_check_digit",
    "valid_my_number",
]


class AID(bytes, Enum):
    """Application identifiers, selected by DF name (``00 A4 04 0C``)."""

    JPKI = bytes.fromhex("D392F000260100000001")
    CARD_INFO = bytes.fromhex("D3921000310001010408")
    CARD_FACE = bytes.fromhex("D3921000310001010402")
    RESIDENT_REGISTRY = bytes.fromhex("D3921000310001010401")
    COMMON = bytes.fromhex("D3921000310001010100")


class JpkiFile(int, Enum):
    """Elementary files of the JPKI AP."""

    SIGN_CERT = 0x0001
    SIGN_CA_CERT = 0x0002
    TOKEN_INFO = 0x0006
    PRESENCE = 0x0008
    AUTH_CERT = 0x000A
    AUTH_CA_CERT = 0x000B
    AUTH_KEY = 0x0017
    AUTH_PIN = 0x0018
    SIGN_KEY = 0x001A
    SIGN_PIN = 0x001B


class CardInfoFile(int, Enum):
    """Elementary files of the card-info input-support AP."""

    MY_NUMBER = 0x0001
    BASIC_INFO = 0x0002
    PIN = 0x0011


TOKEN_LABEL = b"JPKIAPICCTOKEN2"
TOKEN_INFO = TOKEN_LABEL.ljust(32, b" ")


def my_number_check_digit(first_eleven: str) -> int:
    """The 12th digit of a My Number (the Cabinet Office ordinance's check-digit formula)."""
    if len(first_eleven) != 11 or not first_eleven.isdigit():
        raise ValueError("a My Number has 11 digits before its check digit")
    total = 0
    for n in range(1, 12):
        p = int(first_eleven[11 - n])  # n-th digit counted from the right
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def valid_my_number(number: str) -> bool:
    return (
        len(number) == 12
        and number.isascii()
        and number.isdigit()
        and my_number_check_digit(number[:11]) == int(number[11])
    )


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    return bytes((0x82,)) + n.to_bytes(2, "big")


def _tlv(tag: bytes, value: bytes) -> bytes:
    return tag + _ber_length(len(value)) + value


def _read_tlvs(data: bytes) -> dict[bytes, bytes]:
    """Parse a flat run of TLVs with one- or two-byte tags (two when the first is xF or DF)."""
    out: dict[bytes, bytes] = {}
    i = 0
    while i < len(data):
        tag_len = 2 if data[i] & 0x1F == 0x1F else 1
        tag = data[i : i + tag_len]
        i += tag_len
        if i >= len(data):
            raise ValueError("TLV ends inside its length")
        length = data[i]
        i += 1
        if length & 0x80:
            size = length & 0x7F
            if size not in (1, 2) or i + size > len(data):
                raise ValueError("bad TLV length")
            length = int.from_bytes(data[i : i + size], "big")
            i += size
        if i + length > len(data):
            raise ValueError("TLV value runs past the end")
        out[bytes(tag)] = bytes(data[i : i + length])
        i += length
    return out


def encode_my_number(number: str) -> bytes:
    """EF 0001 of the card-info AP: ``FF 10 0C`` and 12 ASCII digits."""
    return _tlv(b"\xff\x10", number.encode("ascii"))


def decode_my_number(data: bytes) -> str:
    value = _read_tlvs(data).get(b"\xff\x10")
    if value is None:
        raise ValueError("no My Number TLV (FF10) in EF 0001")
    return value.decode("ascii")


@dataclass(frozen=True, slots=True)
class BasicInfo:
    """The four basic facts (基本4情報) as the card-info AP returns them."""

    name: str
    address: str
    birth_date: str  # YYYYMMDD as on the card
    sex: str  # "1", "2" or "9"


def encode_basic_info(info: BasicInfo) -> bytes:
    """EF 0002: ``FF 20`` wrapping DF22 name, DF23 address, DF24 birth date, DF25 sex."""
    inner = (
        _tlv(b"\xdf\x22", info.name.encode("utf-8"))
        + _tlv(b"\xdf\x23", info.address.encode("utf-8"))
        + _tlv(b"\xdf\x24", info.birth_date.encode("ascii"))
        + _tlv(b"\xdf\x25", info.sex.encode("ascii"))
    )
    return _tlv(b"\xff\x20", inner)


def decode_basic_info(data: bytes) -> BasicInfo:
    outer = _read_tlvs(data).get(b"\xff\x20")
    if outer is None:
        raise ValueError("no basic-info TLV (FF20) in EF 0002")
    fields = _read_tlvs(outer)
    try:
        return BasicInfo(
            name=fields[b"\xdf\x22"].decode("utf-8"),
            address=fields[b"\xdf\x23"].decode("utf-8"),
            birth_date=fields[b"\xdf\x24"].decode("ascii"),
            sex=fields[b"\xdf\x25"].decode("ascii"),
        )
    except KeyError as missing:
        raise ValueError(f"basic info lacks tag {missing.args[0].hex().upper()}") from None
