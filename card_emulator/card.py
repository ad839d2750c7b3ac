"""The emulated My Number card: APDU in, response APDU out.

The card keeps the security state of one session (selected application and EF, verified
PINs) in memory and everything that must survive a power cycle (PIN counters and reference
data) in its :class:`~mynahil.card_emulator.state.StateStore`. Any byte string gets a status word;
nothing a reader sends can raise out of :meth:`EmulatedCard.transmit`.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from mynahil.apdu import CommandApdu, MalformedApdu, StatusWord, tries_left_sw
from mynahil.carddata import CvCertificate, encode_ap_info
from mynahil.jpki import (
    AID,
    JPKI_INTERNAL_FILES,
    TOKEN_INFO,
    BasicInfo,
    CardFaceFile,
    CardInfoFile,
    JpkiFile,
    encode_basic_info,
    encode_my_number,
)

from .atr import atr_for_profile
from .filesystem import Application, BinaryFile, ElementaryFile, InternalFile, KeyFile, PinFile
from .pin import VerifyOutcome
from .state import CardState, Holder, KeyCredential, MemoryStore, PinSlot, StateStore

__all__ = ["DEFINED_STATUS_WORDS", "EmulatedCard", "build_applications", "card_info_files"]

_SW_OK = b"\x90\x00"
_RSA_2048_MAX_INPUT = 256 - 11  # PKCS#1 v1.5 type 1 needs 11 bytes of padding

# The status words this card can answer with; the property tests hold it to this set.
DEFINED_STATUS_WORDS: frozenset[int] = frozenset(
    {int(sw) for sw in StatusWord if sw != StatusWord.VERIFY_FAILED}
    | {tries_left_sw(n) for n in range(16)}
)


def _sw(code: int) -> bytes:
    return code.to_bytes(2, "big")


def _presence_flags(state: CardState) -> bytes:
    # Choice: byte 0 for the authentication certificate, byte 1 for the signing one
    # (8F present, 00 absent); the one published trace shows 8F 8F 00 with both present.
    return bytes((0x8F if state.auth else 0, 0x8F if state.sign else 0, 0))


def _credential_files(
    cred: KeyCredential | None,
    cert: int,
    ca: int,
    key: int,
    slot: PinSlot,
    read_pins: tuple[PinSlot, ...],
) -> list[ElementaryFile]:
    if cred is None:
        return []
    return [
        BinaryFile.protected(cert, cred.certificate, *read_pins),
        BinaryFile(ca, cred.ca_certificate),
        KeyFile(key, cred.private_key, slot),
    ]


def card_info_files(holder: Holder, *, offsets: bool = True) -> tuple[bytes, bytes]:
    """EF 0001 and EF 0002 of the card-info AP: what the card serves and J-LIS signs."""
    h = holder
    basic = BasicInfo(h.name, h.address, h.birth_date.strftime("%Y%m%d"), h.sex.value)
    return encode_my_number(h.my_number), encode_basic_info(basic, offsets=offsets)


_INFO_PINS = (PinSlot.CARD_INFO, PinSlot.INFO_A, PinSlot.INFO_B)


def _card_info_ap(state: CardState) -> Application:
    ef1, ef2 = card_info_files(state.holder)
    signed = state.signed
    data_key = CvCertificate.parse(signed.certificate).public_key if signed else None
    files: list[ElementaryFile] = [
        PinFile(CardInfoFile.PIN, PinSlot.CARD_INFO),
        PinFile(CardInfoFile.PIN_A, PinSlot.INFO_A),
        PinFile(CardInfoFile.PIN_B, PinSlot.INFO_B),
        BinaryFile.protected(CardInfoFile.MY_NUMBER, ef1, *_INFO_PINS),
        BinaryFile.protected(CardInfoFile.BASIC_INFO, ef2, *_INFO_PINS),
        BinaryFile(CardInfoFile.AP_INFO, encode_ap_info(AID.CARD_INFO.value, data_key)),
    ]
    if signed is not None:  # a card file from before J-LIS signed the data has neither
        files += [
            BinaryFile.protected(CardInfoFile.SIGNATURE, signed.info_signature, *_INFO_PINS),
            BinaryFile(CardInfoFile.CERTIFICATE, signed.certificate),
        ]
    return Application.of(AID.CARD_INFO, *files)


def _municipality(address: str) -> str:
    """The city part of an address (up to its first 市, 区, 町 or 村), for the AP info."""
    for i, ch in enumerate(address):
        if ch in "市区町村" and i >= 3:
            return address[: i + 1]
    return address


def _card_face_ap(state: CardState) -> Application:
    signed = state.signed
    data_key = CvCertificate.parse(signed.certificate).public_key if signed else None
    info = encode_ap_info(
        AID.CARD_FACE.value, data_key, b"\x01", _municipality(state.holder.address).encode()
    )
    files: list[ElementaryFile] = [
        PinFile(CardFaceFile.PIN_BIRTH, PinSlot.FACE_BIRTH),
        PinFile(CardFaceFile.PIN_B, PinSlot.FACE_B),
        PinFile(CardFaceFile.PIN_A, PinSlot.FACE_A),
        BinaryFile(CardFaceFile.AP_INFO, info),
    ]
    if signed is not None:
        a, b, birth = PinSlot.FACE_A, PinSlot.FACE_B, PinSlot.FACE_BIRTH
        files += [
            BinaryFile.protected(CardFaceFile.BIRTH, signed.face_birth, birth, a, b),
            BinaryFile.protected(CardFaceFile.ENTRIES, signed.face_entries, a, b),
            BinaryFile.protected(CardFaceFile.MY_NUMBER, signed.face_my_number, a),
            BinaryFile(CardFaceFile.CERTIFICATE, signed.certificate),
        ]
    return Application.of(AID.CARD_FACE, *files)


def build_applications(state: CardState) -> dict[bytes, Application]:
    """The applications and files of a card holding ``state``."""
    jpki = Application.of(
        AID.JPKI,
        BinaryFile(JpkiFile.TOKEN_INFO, TOKEN_INFO),
        BinaryFile(JpkiFile.PRESENCE, _presence_flags(state)),
        PinFile(JpkiFile.AUTH_PIN, PinSlot.AUTH),
        PinFile(JpkiFile.SIGN_PIN, PinSlot.SIGN),
        *(InternalFile(fid) for fid in JPKI_INTERNAL_FILES),
        *_credential_files(
            state.auth,
            JpkiFile.AUTH_CERT,
            JpkiFile.AUTH_CA_CERT,
            JpkiFile.AUTH_KEY,
            PinSlot.AUTH,
            (),
        ),
        *_credential_files(
            state.sign,
            JpkiFile.SIGN_CERT,
            JpkiFile.SIGN_CA_CERT,
            JpkiFile.SIGN_KEY,
            PinSlot.SIGN,
            (PinSlot.SIGN,),
        ),
    )
    # The resident-registry and common APs answer SELECT; their files are out of scope.
    others = [Application.of(aid) for aid in (AID.RESIDENT_REGISTRY, AID.COMMON)]
    apps = (jpki, _card_info_ap(state), _card_face_ap(state), *others)
    return {app.aid.value: app for app in apps}


_DIGEST_INFO_PREFIXES: dict[bytes, hashes.HashAlgorithm] = {
    bytes.fromhex("3021300906052b0e03021a05000414"): hashes.SHA1(),
    bytes.fromhex("302d300d06096086480165030402040500041c"): hashes.SHA224(),
    bytes.fromhex("3031300d060960864801650304020105000420"): hashes.SHA256(),
    bytes.fromhex("3041300d060960864801650304020205000430"): hashes.SHA384(),
    bytes.fromhex("3051300d060960864801650304020305000440"): hashes.SHA512(),
}


def pkcs1_v15_sign_raw(key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """RSA with PKCS#1 v1.5 type-1 padding over ``message`` as given, as the card does.

    A DigestInfo of a known hash goes through OpenSSL; anything else is padded here and
    exponentiated with the CRT values (slower, and only what odd clients send).
    """
    for prefix, algorithm in _DIGEST_INFO_PREFIXES.items():
        if message.startswith(prefix) and len(message) == len(prefix) + algorithm.digest_size:
            return key.sign(message[len(prefix) :], padding.PKCS1v15(), utils.Prehashed(algorithm))
    numbers = key.private_numbers()
    k = (key.key_size + 7) // 8
    block = b"\x00\x01" + b"\xff" * (k - 3 - len(message)) + b"\x00" + message
    m = int.from_bytes(block, "big")
    s1 = pow(m, numbers.dmp1, numbers.p)
    s2 = pow(m, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (s1 - s2)) % numbers.p
    return (s2 + h * numbers.q).to_bytes(k, "big")


class EmulatedCard:
    """A My Number card in software.

    :param state: what the card holds (see :func:`mynahil.card_emulator.state.load_card`).
    :param store: where PIN counters go when they change; a :class:`CardFile` makes them
        survive the process, the default :class:`MemoryStore` forgets them.
    """

    def __init__(self, state: CardState, store: StateStore | None = None) -> None:
        self._state = state
        self._store: StateStore = store if store is not None else MemoryStore()
        self._apps = build_applications(state)
        self.atr = atr_for_profile(state.atr_profile)
        self._app: Application | None = None
        self._ef: ElementaryFile | None = None
        self._verified: set[PinSlot] = set()
        self._handlers: dict[tuple[int, int], Callable[[CommandApdu], bytes]] = {
            (0x00, 0xA4): self._select,
            (0x00, 0xB0): self._read_binary,
            (0x00, 0x20): self._verify,
            (0x00, 0x24): self._change_reference_data,
            (0x80, 0x2A): self._sign,
        }

    @property
    def state(self) -> CardState:
        return self._state

    # --- power -----------------------------------------------------------------------------

    def reset(self) -> bytes:
        """Warm or cold reset: the session's security state is gone; counters are not."""
        self._app = None
        self._ef = None
        self._verified.clear()
        return self.atr

    power_up = reset
    power_down = reset

    # Names of virtualsmartcard's SmartcardOS, so the card also runs inside its VirtualICC.
    def getATR(self) -> bytes:  # noqa: N802
        return self.atr

    def powerUp(self) -> None:  # noqa: N802
        self.reset()

    def powerDown(self) -> None:  # noqa: N802
        self.reset()

    def execute(self, msg: bytes) -> bytes:
        return self.transmit(msg)

    # --- dispatch --------------------------------------------------------------------------

    def transmit(self, raw: bytes) -> bytes:
        """One command APDU in, one response APDU out; never raises for any input."""
        try:
            apdu = CommandApdu.parse(raw)
        except MalformedApdu as exc:
            return _sw(exc.sw)
        handler = self._handlers.get((apdu.cla, apdu.ins))
        if handler is not None:
            return handler(apdu)
        return _sw(self._class_or_instruction_error(apdu))

    @staticmethod
    def _class_or_instruction_error(apdu: CommandApdu) -> int:
        cla, ins = apdu.cla, apdu.ins
        if cla == 0xFF or 0x10 <= cla < 0x40 or (cla & 0x80 and cla != 0x80):
            return StatusWord.CLA_NOT_SUPPORTED
        if cla & 0xC0 == 0x40 or cla & 0x03:
            return StatusWord.LOGICAL_CHANNEL_NOT_SUPPORTED
        if cla & 0x0C:
            return (
                StatusWord.SECURE_MESSAGING_NOT_SUPPORTED
                if ins == 0xA4
                else StatusWord.SM_DATA_MISSING
            )
        if cla == 0x80 or ins == 0x2A:
            # Choice: the signature exists only as 80 2A; nothing else uses class 80.
            return StatusWord.INS_NOT_SUPPORTED if cla == 0x80 else StatusWord.CLA_NOT_SUPPORTED
        return StatusWord.INS_NOT_SUPPORTED

    # --- SELECT ----------------------------------------------------------------------------

    def _select(self, apdu: CommandApdu) -> bytes:
        if apdu.p2 not in (0x00, 0x0C):
            return _sw(StatusWord.INCORRECT_P1P2)
        if apdu.p1 == 0x04:
            if not 1 <= len(apdu.data) <= 16:
                return _sw(StatusWord.WRONG_LENGTH)
            app = self._apps.get(apdu.data)
            if app is None:
                return _sw(StatusWord.FILE_NOT_FOUND)
            self._app, self._ef = app, None
            self._verified.clear()  # security state is per application selection
            return _SW_OK
        if apdu.p1 == 0x02:
            if len(apdu.data) != 2:
                return _sw(StatusWord.WRONG_LENGTH)
            ef = self._app.files.get(int.from_bytes(apdu.data, "big")) if self._app else None
            if ef is None:
                return _sw(StatusWord.FILE_NOT_FOUND)
            self._ef = ef
            return _SW_OK
        if apdu.p1 == 0x00:
            if apdu.data not in (b"", b"\x3f\x00"):
                return _sw(StatusWord.FILE_NOT_FOUND)
            self._app, self._ef = None, None
            self._verified.clear()
            return _SW_OK
        return _sw(StatusWord.INCORRECT_P1P2)

    # --- READ BINARY -----------------------------------------------------------------------

    def _short_ef(self, sfi_byte: int) -> ElementaryFile | int:
        """The EF a short EF identifier (``80 | SFI``) names in the current AP, or the status
        word to answer. Choice: SFIs 1 to 30 name the EF whose FID is 00xx, in the current AP
        only; 0 and 31 (and bits 6-7 set) are 6A86; no AP, or no such EF, 6A82."""
        sfi = sfi_byte & 0x7F
        if not 1 <= sfi <= 30:
            return StatusWord.INCORRECT_P1P2
        ef = self._app.files.get(sfi) if self._app is not None else None
        if ef is None:
            return StatusWord.FILE_NOT_FOUND
        return ef

    def _read_binary(self, apdu: CommandApdu) -> bytes:
        if apdu.data or apdu.le == 0:
            return _sw(StatusWord.WRONG_LENGTH)
        if apdu.p1 & 0x80:
            # Short EF identifier (jsapdu's readEfBinaryFull): P2 is the offset, and the EF
            # becomes the current EF whatever the read's outcome.
            named = self._short_ef(apdu.p1)
            if isinstance(named, int):
                return _sw(named)
            self._ef = named
            offset = apdu.p2
        else:
            offset = apdu.p1p2
        ef = self._ef
        if not isinstance(ef, BinaryFile):
            return _sw(StatusWord.COMMAND_NOT_ALLOWED_NO_EF)
        if ef.read_pins and self._verified.isdisjoint(ef.read_pins):
            return _sw(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        if offset >= len(ef.content):
            return _sw(StatusWord.WRONG_OFFSET)
        return ef.content[offset : offset + apdu.le] + _SW_OK

    # --- PINs ------------------------------------------------------------------------------

    def _save_pin(self, slot: PinSlot, state: CardState) -> None:
        self._store.save(state)
        self._state = state

    def _pin_ef(self, p2: int) -> ElementaryFile | int | None:
        """The EF a VERIFY/CHANGE's P2 names: ``80`` the current EF, ``80 | SFI`` that EF of
        the current AP (it does not become current; choice); anything else 6A86."""
        if p2 == 0x80:
            return self._ef
        if p2 & 0x80:
            return self._short_ef(p2)
        return StatusWord.INCORRECT_P1P2

    def _verify(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x00:
            return _sw(StatusWord.INCORRECT_P1P2)
        ef = self._pin_ef(apdu.p2)
        if isinstance(ef, int):
            return _sw(ef)
        if not isinstance(ef, PinFile):
            return _sw(StatusWord.COMMAND_NOT_ALLOWED_NO_EF)
        pin = self._state.pins[ef.slot]
        if pin.blocked:
            return _sw(StatusWord.AUTH_METHOD_BLOCKED)
        if not apdu.data:
            if apdu.le:
                return _sw(StatusWord.WRONG_LENGTH)
            return _sw(tries_left_sw(pin.tries_left))  # retry-counter query
        # Persist the charged counter before comparing: a crash in between costs the try.
        self._save_pin(ef.slot, self._state.with_pin(ef.slot, pin.charged()))
        updated, outcome = pin.verify(apdu.data)
        if outcome is VerifyOutcome.ACCEPTED:
            self._save_pin(ef.slot, self._state.with_pin(ef.slot, updated))
            self._verified.add(ef.slot)
            return _SW_OK
        self._verified.discard(ef.slot)
        return _sw(tries_left_sw(updated.tries_left))

    def _change_reference_data(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x01:
            return _sw(StatusWord.INCORRECT_P1P2)
        ef = self._pin_ef(apdu.p2)
        if isinstance(ef, int):
            return _sw(ef)
        if not isinstance(ef, PinFile):
            return _sw(StatusWord.COMMAND_NOT_ALLOWED_NO_EF)
        if ef.slot.printed:
            # 照合番号A/B and the birth PIN are printed on the card: nothing can change them.
            return _sw(StatusWord.CONDITIONS_NOT_SATISFIED)
        pin = self._state.pins[ef.slot]
        if pin.blocked:
            return _sw(StatusWord.AUTH_METHOD_BLOCKED)
        if ef.slot not in self._verified:
            return _sw(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        try:
            text = apdu.data.decode("ascii")
            changed = pin.changed(text)
        except (UnicodeDecodeError, ValueError):
            return _sw(StatusWord.WRONG_DATA)
        self._save_pin(ef.slot, self._state.with_pin(ef.slot, changed))
        return _SW_OK

    # --- signature -------------------------------------------------------------------------

    def _sign(self, apdu: CommandApdu) -> bytes:
        if apdu.p1p2 != 0x0080:
            return _sw(StatusWord.INCORRECT_P1P2)
        ef = self._ef
        if not isinstance(ef, KeyFile):
            return _sw(StatusWord.COMMAND_NOT_ALLOWED_NO_EF)
        if ef.slot not in self._verified:
            return _sw(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        if not apdu.data or len(apdu.data) > _RSA_2048_MAX_INPUT or 0 < apdu.le < 256:
            return _sw(StatusWord.WRONG_LENGTH)
        return pkcs1_v15_sign_raw(ef.key, apdu.data) + _SW_OK
