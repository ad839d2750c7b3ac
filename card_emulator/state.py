"""What an emulated card holds, and how it lives on disk.

A card is one JSON file: keys (PKCS#8 PEM), certificates (DER, base64), the holder's data and
the PIN counters. Every write goes to a temporary file in the same folder, is fsynced, then
renamed over the old one, so a process killed mid-write leaves the old card or the new one,
never a torn one. While a card is "in a reader" (open for writing) it holds an exclusive lock,
so a second process cannot unblock it behind the reader's back.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mynahil.files import write_atomically

from .pin import AUTH_PIN, BIRTH_PIN, CARD_INFO_PIN, MATCH_A, MATCH_B, SIGN_PASSWORD, Pin, PinPolicy

__all__ = [
    "FORMAT",
    "CardBusy",
    "CardFile",
    "CardFormatError",
    "CardState",
    "Holder",
    "KeyCredential",
    "MemoryStore",
    "PinSlot",
    "Sex",
    "SignedFiles",
    "StateStore",
    "default_security_code",
    "load_card",
    "match_b_value",
    "printed_pin_values",
    "printed_pins",
    "save_card",
]

FORMAT = "mynahil-card/1"


class CardFormatError(ValueError):
    """A card file that cannot be read as a card; the message names the file and the field."""


class CardBusy(RuntimeError):
    """The card file is locked by another process (it is attached to a reader)."""


class Sex(StrEnum):
    """Codes as the card-info AP stores them (DF25)."""

    MALE = "1"
    FEMALE = "2"
    NOT_STATED = "9"


class PinSlot(StrEnum):
    """The PINs of a My Number card, by the applet that owns them.

    The first three are set by the holder; the others (照合番号A/B, the birth-date PIN) take
    their reference data from the card face (see :func:`printed_pin_values`).
    """

    AUTH = "auth"
    SIGN = "sign"
    CARD_INFO = "info"
    INFO_A = "info_a"
    INFO_B = "info_b"
    FACE_BIRTH = "face_birth"
    FACE_A = "face_a"
    FACE_B = "face_b"

    @property
    def policy(self) -> PinPolicy:
        return _POLICIES[self]

    @property
    def printed(self) -> bool:
        """True for the PINs whose value is printed on the card (not set by the holder)."""
        return self not in (PinSlot.AUTH, PinSlot.SIGN, PinSlot.CARD_INFO)


_POLICIES = {
    PinSlot.AUTH: AUTH_PIN,
    PinSlot.SIGN: SIGN_PASSWORD,
    PinSlot.CARD_INFO: CARD_INFO_PIN,
    PinSlot.INFO_A: MATCH_A,
    PinSlot.INFO_B: MATCH_B,
    PinSlot.FACE_BIRTH: BIRTH_PIN,
    PinSlot.FACE_A: MATCH_A,
    PinSlot.FACE_B: MATCH_B,
}


@dataclass(frozen=True, slots=True)
class Holder:
    """The personal data printed on the card and kept in the card-info AP."""

    name: str
    address: str
    birth_date: date
    sex: Sex
    my_number: str


@dataclass(frozen=True, slots=True)
class KeyCredential:
    """A key pair with its certificate and the certificate of the CA that issued it."""

    private_key: rsa.RSAPrivateKey
    certificate: bytes
    ca_certificate: bytes


def default_security_code(holder: Holder) -> str:
    """The security code a card file written before the field existed gets: four digits taken
    from SHA-256 of the My Number (a documented default, stable for that card)."""
    digest = hashlib.sha256(holder.my_number.encode("ascii")).digest()
    return f"{int.from_bytes(digest[:4], 'big') % 10000:04d}"


def match_b_value(holder: Holder, card_expires: date, security_code: str) -> str:
    """照合番号B: birth YYMMDD + the card's expiry year + its 4-digit security code."""
    return f"{holder.birth_date:%y%m%d}{card_expires.year:04d}{security_code}"


def printed_pin_values(
    holder: Holder, card_expires: date, security_code: str
) -> dict[PinSlot, str]:
    """The reference values of the PINs printed on the card face (one place for the rule)."""
    a = holder.my_number
    b = match_b_value(holder, card_expires, security_code)
    return {
        PinSlot.INFO_A: a,
        PinSlot.INFO_B: b,
        PinSlot.FACE_BIRTH: f"{holder.birth_date:%y%m%d}",
        PinSlot.FACE_A: a,
        PinSlot.FACE_B: b,
    }


def printed_pins(holder: Holder, card_expires: date, security_code: str) -> dict[PinSlot, Pin]:
    """Fresh PINs (all tries) for :func:`printed_pin_values`."""
    values = printed_pin_values(holder, card_expires, security_code)
    return {slot: Pin.printed(slot.policy, value) for slot, value in values.items()}


@dataclass(frozen=True, slots=True)
class SignedFiles:
    """What J-LIS wrote and signed onto the card at issuance (the card cannot make these).

    ``info_signature`` is EF 0003 of the card-info AP, ``certificate`` the card-data signing
    certificate (EF 0004 of both APs); the ``face_*`` fields are the card-face AP's EF 0001,
    0002 and 0005, images included.
    """

    info_signature: bytes
    certificate: bytes
    face_birth: bytes
    face_entries: bytes
    face_my_number: bytes


@dataclass(frozen=True, slots=True)
class CardState:
    """Everything an emulated card remembers between power cycles."""

    holder: Holder
    auth: KeyCredential | None
    sign: KeyCredential | None
    pins: dict[PinSlot, Pin]
    card_expires: date
    atr_profile: str = "contact"
    label: str = field(default="")
    security_code: str = ""  # the 4 digits printed on the card face; "" = default_security_code
    signed: SignedFiles | None = None

    def __post_init__(self) -> None:
        if not self.security_code:
            object.__setattr__(self, "security_code", default_security_code(self.holder))
        missing = [slot for slot in PinSlot if slot.printed and slot not in self.pins]
        if missing:
            fresh = printed_pins(self.holder, self.card_expires, self.security_code)
            object.__setattr__(self, "pins", {**self.pins, **{s: fresh[s] for s in missing}})

    def with_pin(self, slot: PinSlot, pin: Pin) -> CardState:
        return replace(self, pins={**self.pins, slot: pin})


class StateStore(Protocol):
    """Where a card keeps its state; ``save`` returns only once the state is durable."""

    def save(self, state: CardState) -> None: ...


class MemoryStore:
    """A card that forgets everything at exit (load tests, benchmarks)."""

    def __init__(self) -> None:
        self.saves = 0

    def save(self, state: CardState) -> None:
        self.saves += 1


class CardFile:
    """A card file opened for use: holds the lock and persists every state change."""

    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self.state = load_card(self.path)
        if lock:
            self._acquire()

    def _acquire(self) -> None:
        fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CardBusy(
                f"{self.path} is in use by another process (attached to a reader?); "
                "remove it from the reader first"
            ) from None
        self._lock_fd = fd

    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def save(self, state: CardState) -> None:
        save_card(state, self.path)
        self.state = state

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> CardFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- serialisation -------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _credential_to_json(cred: KeyCredential | None) -> dict[str, str] | None:
    if cred is None:
        return None
    pem = cred.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "private_key": pem.decode("ascii"),
        "certificate": _b64(cred.certificate),
        "ca_certificate": _b64(cred.ca_certificate),
    }


def _pin_to_json(pin: Pin) -> dict[str, Any]:
    return {"salt": pin.salt.hex(), "digest": pin.digest.hex(), "tries_left": pin.tries_left}


def to_json(state: CardState) -> dict[str, Any]:
    h = state.holder
    return {
        "format": FORMAT,
        "label": state.label,
        "atr_profile": state.atr_profile,
        "card_expires": state.card_expires.isoformat(),
        "holder": {
            "name": h.name,
            "address": h.address,
            "birth_date": h.birth_date.isoformat(),
            "sex": h.sex.value,
            "my_number": h.my_number,
        },
        "security_code": state.security_code,
        "auth": _credential_to_json(state.auth),
        "sign": _credential_to_json(state.sign),
        "pins": {slot.value: _pin_to_json(pin) for slot, pin in state.pins.items()},
        "signed": _signed_to_json(state.signed),
    }


_SIGNED_FIELDS = ("info_signature", "certificate", "face_birth", "face_entries", "face_my_number")


def _signed_to_json(signed: SignedFiles | None) -> dict[str, str] | None:
    if signed is None:
        return None
    return {name: _b64(getattr(signed, name)) for name in _SIGNED_FIELDS}


class _Reader:
    """Pulls typed fields out of parsed JSON, naming the file and field in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> CardFormatError:
        return CardFormatError(f"{self.source}: {where}: {what}")

    def get(self, obj: Any, key: str, kind: type, where: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise self.fail(where, f"missing field {key!r}")
        value = obj[key]
        if not isinstance(value, kind):
            raise self.fail(
                f"{where}.{key}", f"expected {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def date(self, obj: Any, key: str, where: str) -> date:
        text = self.get(obj, key, str, where)
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(f"{where}.{key}", f"not a date: {text!r}") from None

    def credential(self, obj: Any, key: str) -> KeyCredential | None:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return None
        raw = self.get(obj, key, dict, "card")
        try:
            # OpenSSL's full RSA check costs ~40 ms a key, more than a whole card session;
            # the cheap arithmetic check below catches a damaged key all the same.
            key_obj = serialization.load_pem_private_key(
                self.get(raw, "private_key", str, key).encode("ascii"),
                password=None,
                unsafe_skip_rsa_key_validation=True,
            )
            cert = base64.b64decode(self.get(raw, "certificate", str, key), validate=True)
            ca = base64.b64decode(self.get(raw, "ca_certificate", str, key), validate=True)
        except (ValueError, TypeError) as exc:
            raise self.fail(key, f"unreadable key or certificate ({exc})") from None
        if not isinstance(key_obj, rsa.RSAPrivateKey):
            raise self.fail(f"{key}.private_key", "not an RSA key")
        numbers = key_obj.private_numbers()
        if (
            numbers.p * numbers.q != numbers.public_numbers.n
            or pow(2, numbers.d * numbers.public_numbers.e, numbers.public_numbers.n) != 2
        ):
            raise self.fail(f"{key}.private_key", "the key's numbers do not fit together (damaged)")
        return KeyCredential(key_obj, cert, ca)

    def pin(self, obj: Any, slot: PinSlot) -> Pin:
        where = f"pins.{slot.value}"
        raw = self.get(obj, slot.value, dict, "pins")
        tries = self.get(raw, "tries_left", int, where)
        if not 0 <= tries <= slot.policy.max_tries:
            raise self.fail(f"{where}.tries_left", f"must be 0..{slot.policy.max_tries}")
        try:
            salt = bytes.fromhex(self.get(raw, "salt", str, where))
            digest = bytes.fromhex(self.get(raw, "digest", str, where))
        except ValueError:
            raise self.fail(where, "salt and digest must be hex") from None
        return Pin(slot.policy, salt, digest, tries)

    def signed(self, obj: Any) -> SignedFiles | None:
        raw = obj.get("signed") if isinstance(obj, dict) else None
        if raw is None:
            return None  # a card file from before J-LIS signed its data: documented default
        values = {}
        for name in _SIGNED_FIELDS:
            try:
                values[name] = base64.b64decode(self.get(raw, name, str, "signed"), validate=True)
            except ValueError:
                raise self.fail(f"signed.{name}", "not base64") from None
        return SignedFiles(**values)

    def security_code(self, obj: Any) -> str:
        code = obj.get("security_code", "") if isinstance(obj, dict) else ""
        if not isinstance(code, str) or not (code == "" or (len(code) == 4 and code.isdigit())):
            raise self.fail("security_code", "must be 4 digits")
        return code


def from_json(data: Any, source: str = "card") -> CardState:
    r = _Reader(source)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise r.fail("format", f"not a {FORMAT} file")
    holder_raw = r.get(data, "holder", dict, "card")
    try:
        sex = Sex(r.get(holder_raw, "sex", str, "holder"))
    except ValueError:
        raise r.fail("holder.sex", "must be 1, 2 or 9") from None
    holder = Holder(
        name=r.get(holder_raw, "name", str, "holder"),
        address=r.get(holder_raw, "address", str, "holder"),
        birth_date=r.date(holder_raw, "birth_date", "holder"),
        sex=sex,
        my_number=r.get(holder_raw, "my_number", str, "holder"),
    )
    pins_raw = r.get(data, "pins", dict, "card")
    # The printed PINs came with this version; an older card file gets them fresh (all tries).
    pins = {
        slot: r.pin(pins_raw, slot)
        for slot in PinSlot
        if not slot.printed or slot.value in pins_raw
    }
    return CardState(
        holder=holder,
        auth=r.credential(data, "auth"),
        sign=r.credential(data, "sign"),
        pins=pins,
        card_expires=r.date(data, "card_expires", "card"),
        atr_profile=r.get(data, "atr_profile", str, "card"),
        label=str(data.get("label", "")),
        security_code=r.security_code(data),
        signed=r.signed(data),
    )


def load_card(path: Path) -> CardState:
    """Read a card file; raises :class:`CardFormatError` naming what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardFormatError(f"{path}: no such card file") from None
    except OSError as exc:
        raise CardFormatError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CardFormatError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    return from_json(data, str(path))


def save_card(state: CardState, path: Path) -> None:
    """Write atomically (see :func:`mynahil.files.write_atomically`)."""
    write_atomically(Path(path), json.dumps(to_json(state), ensure_ascii=False, indent=1).encode())


@contextlib.contextmanager
def opened_card(path: Path) -> Iterator[CardFile]:
    """A card file opened for use, locked for the duration."""
    card = CardFile(path)
    try:
        yield card
    finally:
        card.close()
