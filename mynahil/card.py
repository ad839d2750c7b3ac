"""The Card API: what a reader application asks of a My Number card, over any transport.

Every card answer that is not success becomes a typed :class:`CardError`, so callers (the
reference client, the conformance suite) can tell a wrong PIN from a blocked one from a card
without certificates, and tell the person what to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

from cryptography import x509

from .apdu import CommandApdu, MalformedApdu, ResponseApdu, StatusWord, describe_sw
from .carddata import FaceEntries, decode_face_entries, tlv_header_length, verify_face, verify_info
from .jpki import (
    AID,
    BasicInfo,
    CardFaceFile,
    CardInfoFile,
    JpkiFile,
    _read_tlvs,
    decode_basic_info,
    decode_my_number,
)
from .transports.base import Transport, TransportError

__all__ = [
    "SHA256_DIGEST_INFO_PREFIX",
    "CardError",
    "CardFace",
    "CardInfo",
    "CertificateNotReadable",
    "MyNumberCard",
    "NoCertificate",
    "Pin",
    "PinBlocked",
    "PinRequired",
    "UnexpectedStatus",
    "WrongPin",
    "digest_info_sha256",
]

SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
_CHUNK = 256  # the most a short READ BINARY returns


def digest_info_sha256(message: bytes) -> bytes:
    """DER DigestInfo of SHA-256(message): what the card's signature command takes."""
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()


class Pin(Enum):
    """The card's PINs: where each lives and how many tries it has."""

    AUTH = (AID.JPKI, JpkiFile.AUTH_PIN, 3, "user-authentication PIN")
    SIGN = (AID.JPKI, JpkiFile.SIGN_PIN, 5, "signing password")
    CARD_INFO = (AID.CARD_INFO, CardInfoFile.PIN, 3, "card-info PIN")
    CARD_INFO_A = (AID.CARD_INFO, CardInfoFile.PIN_A, 10, "card-info 照合番号A (My Number)")
    CARD_INFO_B = (AID.CARD_INFO, CardInfoFile.PIN_B, 10, "card-info 照合番号B")
    FACE_BIRTH = (AID.CARD_FACE, CardFaceFile.PIN_BIRTH, 10, "card-face birth-date PIN")
    FACE_A = (AID.CARD_FACE, CardFaceFile.PIN_A, 10, "card-face 照合番号A (My Number)")
    FACE_B = (AID.CARD_FACE, CardFaceFile.PIN_B, 10, "card-face 照合番号B")

    def __init__(self, aid: AID, fid: int, max_tries: int, label: str) -> None:
        self.aid = aid
        self.fid = fid
        self.max_tries = max_tries
        self.label = label


class CardError(Exception):
    """The card refused a command; :attr:`sw` is its status word."""

    def __init__(self, sw: int, message: str | None = None) -> None:
        self.sw = sw
        super().__init__(message or f"card answered {describe_sw(sw)}")


class WrongPin(CardError):
    def __init__(self, sw: int, pin: Pin) -> None:
        self.tries_left = sw & 0x0F
        self.pin = pin
        super().__init__(sw, f"wrong {pin.label}: {self.tries_left} tries left")


class PinBlocked(CardError):
    def __init__(self, pin: Pin) -> None:
        self.pin = pin
        super().__init__(
            StatusWord.AUTH_METHOD_BLOCKED,
            f"the {pin.label} is blocked; only a municipal window can reset it",
        )


class PinRequired(CardError):
    """6982: the command needs a PIN that has not been verified in this session."""


class NoCertificate(CardError):
    """The card holds no such certificate (the holder declined it at issuance)."""


class CertificateNotReadable(CardError):
    """The certificate file answered, but not with a DER certificate."""


class UnexpectedStatus(CardError):
    """A status word the command does not define."""


@dataclass(frozen=True, slots=True)
class CardInfo:
    """What the card-info AP holds; ``files`` are its EFs as read (0001 to 0005 by FID; 0003
    and 0004 absent on a card without J-LIS-signed data)."""

    my_number: str
    basic: BasicInfo
    files: dict[int, bytes] | None = None

    def verify(self, root: x509.Certificate) -> None:
        """The relying party's check (:func:`mynahil.carddata.verify_info`): raises
        :class:`~mynahil.carddata.CardDataInvalid` unless EF 0003 signs EF 0001 and 0002 with
        the key of EF 0004, issued by ``root``."""
        from .carddata import CardDataInvalid

        files = self.files or {}
        missing = [f"{fid:04X}" for fid in (1, 2, 3, 4) if fid not in files]
        if missing:
            raise CardDataInvalid(f"the card-info AP holds no EF {', '.join(missing)}")
        verify_info(files[1], files[2], files[3], files[4], root)


@dataclass(frozen=True, slots=True)
class CardFace:
    """The card face as the card-face AP holds it (images as files: PNG, JPEG 2000)."""

    entries: FaceEntries
    birth_file: bytes | None
    entries_file: bytes
    my_number_file: bytes | None  # only after 照合番号A
    certificate: bytes

    @property
    def my_number_png(self) -> bytes | None:
        if self.my_number_file is None:
            return None
        return _read_tlvs(_read_tlvs(self.my_number_file)[b"\xff\x40"]).get(b"\xdf\x41")

    def verify(self, root: x509.Certificate) -> None:
        """Every EF read verifies with the key of EF 0004, issued by ``root``."""
        verify_face(self.birth_file, self.entries_file, self.my_number_file, self.certificate, root)


class MyNumberCard:
    """High-level commands over a connected :class:`Transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._selected: AID | None = None
        self.apdus_sent = 0

    # --- the raw exchange ------------------------------------------------------------------

    def exchange(self, command: CommandApdu) -> ResponseApdu:
        self.apdus_sent += 1
        raw = self.transport.transmit(command.to_bytes())
        try:
            return ResponseApdu.parse(raw)
        except MalformedApdu as exc:
            raise TransportError(f"the reader returned {raw.hex()}: {exc}") from None

    def _ok(self, command: CommandApdu, *, pin: Pin | None = None) -> bytes:
        response = self.exchange(command)
        if response.sw == StatusWord.OK:
            return response.data
        raise self._error(response.sw, pin)

    @staticmethod
    def _error(sw: int, pin: Pin | None) -> CardError:
        if sw & 0xFFF0 == 0x63C0 and pin is not None:
            return WrongPin(sw, pin)
        if sw == StatusWord.AUTH_METHOD_BLOCKED and pin is not None:
            return PinBlocked(pin)
        if sw == StatusWord.SECURITY_STATUS_NOT_SATISFIED:
            return PinRequired(sw, f"card answered {describe_sw(sw)}: verify the PIN first")
        return UnexpectedStatus(sw)

    # --- selection -------------------------------------------------------------------------

    def select_application(self, aid: AID) -> None:
        """SELECT by DF name; clears the card's verified PINs."""
        self._ok(CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid.value))
        self._selected = aid

    def _ensure(self, aid: AID) -> None:
        if self._selected is not aid:
            self.select_application(aid)

    def select_file(self, fid: int) -> None:
        self._ok(CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")))

    def forget_selection(self) -> None:
        """After a reset the card has nothing selected; make the next call select again."""
        self._selected = None

    # --- reading ---------------------------------------------------------------------------

    def read_binary(self, offset: int, length: int) -> bytes:
        if not 0 <= offset <= 0x7FFF:
            raise ValueError("READ BINARY offsets are 0..32767")
        return self._ok(CommandApdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=length))

    def read_current_file(self, *, to_the_end: bool = False) -> bytes:
        """All of the selected EF: a DER object's length from its header, else until short.
        ``to_the_end`` ignores the header and reads until the card has no more bytes (what a
        hash over the whole EF needs: EF 0001 of the card-info AP is padded)."""
        head = self.read_binary(0, 4)
        total = None if to_the_end else _der_total_length(head)
        if not to_the_end and total is None and head[:1] in (b"\xff", b"\x7f", b"\xe0"):
            total = tlv_header_length(head)  # the card-info and card-face APs' TLV files
        out = bytearray(head)
        while total is None or len(out) < total:
            want = _CHUNK if total is None else min(_CHUNK, total - len(out))
            response = self.exchange(
                CommandApdu(0x00, 0xB0, len(out) >> 8, len(out) & 0xFF, le=want)
            )
            if response.sw == StatusWord.WRONG_OFFSET and total is None:
                break  # the file ended exactly on a chunk boundary
            if response.sw != StatusWord.OK:
                raise self._error(response.sw, None)
            out += response.data
            if total is None and len(response.data) < want:
                break
            if not response.data:
                raise UnexpectedStatus(response.sw, "READ BINARY returned no data before the end")
        return bytes(out)

    def read_file(self, aid: AID, fid: int, *, extended: bool = False) -> bytes:
        """A whole EF of ``aid``. ``extended``: one READ BINARY by short EF identifier with an
        extended Le of 65,536 (jsapdu's readEfBinaryFull) instead of SELECT and short reads."""
        self._ensure(aid)
        if extended and 1 <= fid <= 30:
            return self._ok(CommandApdu(0x00, 0xB0, 0x80 | fid, 0x00, le=65536, extended=True))
        self.select_file(fid)
        return self.read_current_file()

    def _read_certificate(self, fid: JpkiFile) -> bytes:
        self._ensure(AID.JPKI)
        try:
            self.select_file(fid)
        except UnexpectedStatus as exc:
            if exc.sw == StatusWord.FILE_NOT_FOUND:
                raise NoCertificate(
                    exc.sw,
                    "the card holds no electronic certificate (declined at issuance); "
                    "a municipal window can issue one",
                ) from None
            raise
        der = self.read_current_file()
        if not der.startswith(b"\x30"):
            raise CertificateNotReadable(StatusWord.OK, f"EF {fid:04X} does not hold a certificate")
        return der

    def read_auth_certificate(self) -> bytes:
        """The user-authentication certificate (DER); readable without a PIN."""
        return self._read_certificate(JpkiFile.AUTH_CERT)

    def read_auth_ca_certificate(self) -> bytes:
        return self._read_certificate(JpkiFile.AUTH_CA_CERT)

    def read_sign_certificate(self) -> bytes:
        """The signing certificate: needs :meth:`verify` of the signing password first."""
        return self._read_certificate(JpkiFile.SIGN_CERT)

    def read_sign_ca_certificate(self) -> bytes:
        return self._read_certificate(JpkiFile.SIGN_CA_CERT)

    def read_token_info(self) -> bytes:
        return self.read_file(AID.JPKI, JpkiFile.TOKEN_INFO)

    # --- PINs ------------------------------------------------------------------------------

    def tries_left(self, pin: Pin) -> int:
        """VERIFY with no data: 63Cx tells the tries left; raises PinBlocked at 0."""
        self._ensure(pin.aid)
        self.select_file(pin.fid)
        response = self.exchange(CommandApdu(0x00, 0x20, 0x00, 0x80))
        if response.sw & 0xFFF0 == 0x63C0:
            return response.sw & 0x0F
        if response.sw == StatusWord.OK:
            return pin.max_tries  # some cards answer 9000 when already verified
        raise self._error(response.sw, pin)

    def verify(self, pin: Pin, value: str) -> None:
        """VERIFY; raises :class:`WrongPin` (with tries left) or :class:`PinBlocked`."""
        self._ensure(pin.aid)
        self.select_file(pin.fid)
        self._ok(CommandApdu(0x00, 0x20, 0x00, 0x80, value.encode("ascii")), pin=pin)

    def change_pin(self, pin: Pin, current: str, new: str) -> None:
        self.verify(pin, current)
        self._ok(CommandApdu(0x00, 0x24, 0x01, 0x80, new.encode("ascii")), pin=pin)

    # --- signature -------------------------------------------------------------------------

    def sign(self, pin: Pin, digest_info: bytes) -> bytes:
        """The card's RSA-2048 PKCS#1 v1.5 signature over a DigestInfo (PIN verified first)."""
        if pin is Pin.CARD_INFO:
            raise ValueError("the card-info AP holds no key")
        self._ensure(AID.JPKI)
        key = JpkiFile.AUTH_KEY if pin is Pin.AUTH else JpkiFile.SIGN_KEY
        try:
            self.select_file(key)
        except UnexpectedStatus as exc:
            if exc.sw == StatusWord.FILE_NOT_FOUND:
                raise NoCertificate(
                    exc.sw, "the card holds no key: no certificate was issued"
                ) from None
            raise
        return self._ok(CommandApdu(0x80, 0x2A, 0x00, 0x80, digest_info, le=256))

    def authenticate(self, pin: str, challenge: bytes) -> tuple[bytes, bytes]:
        """What a MyKey client does: the auth certificate and a signature over ``challenge``.

        Reads the certificate first (no PIN), so a card without one fails before a try is spent.
        """
        certificate = self.read_auth_certificate()
        self.verify(Pin.AUTH, pin)
        return certificate, self.sign(Pin.AUTH, digest_info_sha256(challenge))

    # --- card-info input-support AP --------------------------------------------------------

    def read_card_info(
        self, pin: str, *, with_pin: Pin = Pin.CARD_INFO, signed: bool = False
    ) -> CardInfo:
        """My Number and the four basic facts, behind the card-info PIN or one of its
        alternatives (``with_pin``: :attr:`Pin.CARD_INFO_A` or :attr:`Pin.CARD_INFO_B`).
        ``signed`` also reads EF 0003-0005, for :meth:`CardInfo.verify`."""
        if with_pin.aid is not AID.CARD_INFO:
            raise ValueError(f"{with_pin.label} is not a PIN of the card-info AP")
        self.verify(with_pin, pin)
        files: dict[int, bytes] = {}
        self.select_file(CardInfoFile.MY_NUMBER)
        files[1] = self.read_current_file(to_the_end=True)
        self.select_file(CardInfoFile.BASIC_INFO)
        files[2] = self.read_current_file()
        if signed:
            for fid in (CardInfoFile.SIGNATURE, CardInfoFile.CERTIFICATE, CardInfoFile.AP_INFO):
                data = self._read_if_present(fid)
                if data is not None:
                    files[int(fid)] = data
        return CardInfo(decode_my_number(files[1]), decode_basic_info(files[2]), files)

    def _read_if_present(self, fid: int) -> bytes | None:
        try:
            self.select_file(fid)
        except UnexpectedStatus as exc:
            if exc.sw == StatusWord.FILE_NOT_FOUND:
                return None
            raise
        return self.read_current_file()

    # --- card-face AP ------------------------------------------------------------------------

    def read_card_face(
        self, pin: str, *, with_pin: Pin = Pin.FACE_A, extended: bool = False
    ) -> CardFace:
        """The card face behind 照合番号A (all of it, the My Number EF included) or 照合番号B
        (all but the My Number); ``extended``: one whole-file READ BINARY a file (short EF
        identifier, extended Le) instead of SELECT and 256-byte reads."""
        if with_pin not in (Pin.FACE_A, Pin.FACE_B):
            raise ValueError("the card face opens with 照合番号A or 照合番号B (Pin.FACE_A/FACE_B)")
        self.verify(with_pin, pin)

        def read(fid: CardFaceFile) -> bytes:
            return self.read_file(AID.CARD_FACE, fid, extended=extended)

        certificate = read(CardFaceFile.CERTIFICATE)
        birth = read(CardFaceFile.BIRTH)
        entries = read(CardFaceFile.ENTRIES)
        my_number = read(CardFaceFile.MY_NUMBER) if with_pin is Pin.FACE_A else None
        return CardFace(decode_face_entries(entries), birth, entries, my_number, certificate)


def _der_total_length(head: bytes) -> int | None:
    """Total length of a DER TLV from its first bytes, or None if it is not one."""
    if len(head) < 2 or head[0] != 0x30:
        return None
    first = head[1]
    if first < 0x80:
        return 2 + first
    size = first & 0x7F
    if size not in (1, 2) or len(head) < 2 + size:
        return None
    return 2 + size + int.from_bytes(head[2 : 2 + size], "big")
