"""ISO 7816-4 APDUs: the command codec both sides of the wire share, and the status words.

Parsing is strict: a byte string that is not a well-formed command APDU raises
:class:`MalformedApdu` carrying the status word a card answers with, so the card never
has to guess and never crashes on hostile input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "SHORT_MAX",
    "CommandApdu",
    "MalformedApdu",
    "ResponseApdu",
    "StatusWord",
    "describe_sw",
    "tries_left_sw",
]

SHORT_MAX = 256
"""Largest Nc/Ne a short APDU can carry (Le ``00`` means 256)."""
EXTENDED_MAX = 65536


class StatusWord(IntEnum):
    """The status words the JPKI card and its readers use (JPKI.md, "Status words")."""

    OK = 0x9000
    VERIFY_FAILED = 0x63C0  # 63Cx: x tries left; use tries_left_sw()
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED_NO_EF = 0x6986
    SM_DATA_MISSING = 0x69FC
    WRONG_DATA = 0x6A80
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    WRONG_OFFSET = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    def __str__(self) -> str:
        return f"{self.value:04X} {self.name.replace('_', ' ').lower()}"


def tries_left_sw(tries: int) -> int:
    """``63Cx``: the answer to a failed VERIFY or a retry query, x = tries left (0..15)."""
    if not 0 <= tries <= 0xF:
        raise ValueError(f"tries must be 0..15, got {tries}")
    return 0x63C0 | tries


def describe_sw(sw: int) -> str:
    """A human-readable name for any status word, known or not."""
    if sw & 0xFFF0 == 0x63C0:
        return f"{sw:04X} verification failed, {sw & 0xF} tries left"
    try:
        return str(StatusWord(sw))
    except ValueError:
        return f"{sw:04X} unknown status word"


class MalformedApdu(ValueError):
    """Bytes that are not a command APDU; :attr:`sw` is what a card answers."""

    def __init__(self, message: str, sw: int = StatusWord.WRONG_LENGTH) -> None:
        super().__init__(message)
        self.sw = sw


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU (ISO 7816-4 §5.1), cases 1 to 4, short or extended.

    ``le`` is Ne, the number of bytes expected: 0 means no Le field; a short Le of ``00``
    decodes to 256 and an extended ``0000`` to 65536.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int = 0
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must be one byte, got {value}")
        limit = EXTENDED_MAX if self.extended else SHORT_MAX
        if len(self.data) > (EXTENDED_MAX - 1 if self.extended else SHORT_MAX - 1):
            raise ValueError(f"{len(self.data)} data bytes do not fit a {self._kind()} APDU")
        if not 0 <= self.le <= limit:
            raise ValueError(f"Le {self.le} does not fit a {self._kind()} APDU")

    def _kind(self) -> str:
        return "extended" if self.extended else "short"

    @property
    def case(self) -> int:
        """ISO 7816-3 case: 1 no data no Le, 2 Le only, 3 data only, 4 both."""
        return 1 + (1 if self.le else 0) + (2 if self.data else 0)

    @property
    def p1p2(self) -> int:
        return (self.p1 << 8) | self.p2

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode a command APDU, raising :class:`MalformedApdu` with the card's answer."""
        n = len(raw)
        if n < 4:
            raise MalformedApdu(f"an APDU has at least 4 header bytes, got {n}")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        if n == 4:
            return cls(cla, ins, p1, p2)
        b4 = raw[4]
        if n == 5:
            return cls(cla, ins, p1, p2, le=b4 or SHORT_MAX)
        if b4 != 0:
            # Short case 3 or 4: Lc is one non-zero byte.
            if n == 5 + b4:
                return cls(cla, ins, p1, p2, data=bytes(raw[5:]))
            if n == 6 + b4:
                return cls(cla, ins, p1, p2, data=bytes(raw[5:-1]), le=raw[-1] or SHORT_MAX)
            raise MalformedApdu(f"Lc {b4} does not match the {n - 5} bytes that follow the header")
        # b4 == 0 with more bytes behind it: an extended length field.
        if n < 7:
            raise MalformedApdu(f"an extended length needs 3 bytes, got {n - 4}")
        if n == 7:
            ne = (raw[5] << 8) | raw[6]
            return cls(cla, ins, p1, p2, le=ne or EXTENDED_MAX, extended=True)
        nc = (raw[5] << 8) | raw[6]
        if nc == 0:
            raise MalformedApdu("an extended Lc of 0000 is not allowed")
        if n == 7 + nc:
            return cls(cla, ins, p1, p2, data=bytes(raw[7:]), extended=True)
        if n == 9 + nc:
            ne = (raw[-2] << 8) | raw[-1]
            return cls(
                cla, ins, p1, p2, data=bytes(raw[7:-2]), le=ne or EXTENDED_MAX, extended=True
            )
        raise MalformedApdu(f"extended Lc {nc} does not match the {n - 7} bytes that follow it")

    def to_bytes(self) -> bytes:
        """Encode; short unless :attr:`extended`."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.extended:
            # One 00 marks extended lengths; it is not repeated before Le in case 4.
            body = b"\x00"
            if self.data:
                body += len(self.data).to_bytes(2, "big") + self.data
            if self.le:
                body += (self.le % EXTENDED_MAX).to_bytes(2, "big")
            return header + body if len(body) > 1 else header
        body = b""
        if self.data:
            body += bytes((len(self.data),)) + self.data
        if self.le:
            body += bytes((self.le % SHORT_MAX,))
        return header + body


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: data then SW1 SW2."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise MalformedApdu(f"a response APDU has at least 2 status bytes, got {len(raw)}")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @property
    def ok(self) -> bool:
        return self.sw == StatusWord.OK
