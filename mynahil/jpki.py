"""The My Number card's applications and files, as both the card and its readers know them.

Facts from JPKI.md; the few choices where no public source says what the real card does are
marked "choice" and listed in the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "AID",
    "JPKI_INTERNAL_FILES",
    "BasicInfo",
    "CardFaceFile",
    "CardInfoFile",
    "JpkiFile",
    "decode_basic_info",
    "decode_my_number",
    "decode_offsets",
    "encode_basic_info",
    "encode_my_number",
    "encode_with_offsets",
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


class _FileId(int, Enum):
    """A file identifier: formats as the number it is (``f"{fid:04X}"`` gives ``000A``)."""

    def __format__(self, spec: str) -> str:
        return int.__format__(int(self), spec) if spec else super().__format__(spec)


class JpkiFile(_FileId):
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


# EFs of the JPKI AP that public client constants name (jsapdu's JPKI_AP_EF) but whose contents
# no public source describes. Choice: the card holds them as internal EFs (SELECT 9000, never
# readable: 6986), like the key and PIN EFs they sit beside.
JPKI_INTERNAL_FILES: tuple[int, ...] = (0x0005, 0x0009, 0x0010, 0x0016, 0x0019, 0x001C, 0x001E)


class CardInfoFile(_FileId):
    """Elementary files of the card-info input-support AP (券面事項入力補助AP)."""

    MY_NUMBER = 0x0001
    BASIC_INFO = 0x0002
    SIGNATURE = 0x0003
    CERTIFICATE = 0x0004
    AP_INFO = 0x0005
    PIN = 0x0011
    PIN_A = 0x0014  # 照合番号A: the 12-digit My Number
    PIN_B = 0x0015  # 照合番号B: birth YYMMDD + expiry year + security code


class CardFaceFile(_FileId):
    """Elementary files of the card-face AP (券面事項確認AP; jsapdu's KENKAKU_AP_EF)."""

    BIRTH = 0x0001
    ENTRIES = 0x0002
    AP_INFO = 0x0003
    CERTIFICATE = 0x0004
    MY_NUMBER = 0x0005
    PIN_BIRTH = 0x0011
    PIN_B = 0x0012
    PIN_A = 0x0013


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
        while i < len(data) and data[i] == 0x00:
            i += 1  # ISO 7816-4 padding between and after TLVs
    return out


MY_NUMBER_EF_SIZE = 17
"""EF 0001's size: myna reads 17 bytes of it (a shorter file would answer its second read
6B00). Choice: the TLV then ISO 7816-4 padding bytes ``00``."""


def encode_my_number(number: str) -> bytes:
    """EF 0001 of the card-info AP: ``FF 10 0C`` and 12 ASCII digits, padded to 17 bytes."""
    return _tlv(b"\xff\x10", number.encode("ascii")).ljust(MY_NUMBER_EF_SIZE, b"\x00")


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


def encode_with_offsets(outer: bytes, fields: list[tuple[bytes, bytes]]) -> bytes:
    """``outer`` wrapping a ``DF21`` offsets header, then ``fields`` (tag, value) in order.

    DF21 holds one big-endian 16-bit number per field: the position in the EF of that field's
    tag byte (jsapdu slices the whole EF by these offsets; myna skips DF21 as the first inner
    TLV). The positions depend on the header's own size, so it is laid out first.
    """
    encoded = [_tlv(tag, value) for tag, value in fields]
    offsets_len = 2 * len(encoded)
    header_len = 2 + len(_ber_length(offsets_len)) + offsets_len
    inner_len = header_len + sum(len(e) for e in encoded)
    position = len(outer) + len(_ber_length(inner_len)) + header_len
    offsets = bytearray()
    for e in encoded:
        offsets += position.to_bytes(2, "big")
        position += len(e)
    return _tlv(outer, _tlv(b"\xdf\x21", bytes(offsets)) + b"".join(encoded))


def decode_offsets(value: bytes) -> list[int]:
    """The positions a ``DF21`` header lists."""
    if len(value) % 2:
        raise ValueError("a DF21 offsets header has an even number of bytes")
    return [int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2)]


def encode_basic_info(info: BasicInfo, *, offsets: bool = True) -> bytes:
    """EF 0002: ``FF 20`` wrapping DF21 offsets, DF22 name, DF23 address, DF24 birth date,
    DF25 sex (``offsets=False`` leaves DF21 out: the defect clients misread)."""
    fields = [
        (b"\xdf\x22", info.name.encode("utf-8")),
        (b"\xdf\x23", info.address.encode("utf-8")),
        (b"\xdf\x24", info.birth_date.encode("ascii")),
        (b"\xdf\x25", info.sex.encode("ascii")),
    ]
    if not offsets:
        return _tlv(b"\xff\x20", b"".join(_tlv(t, v) for t, v in fields))
    return encode_with_offsets(b"\xff\x20", fields)


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
