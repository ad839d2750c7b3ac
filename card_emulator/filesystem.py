"""The card's ISO 7816-4 file system: applications (DFs selected by name) holding EFs.

Three kinds of EF, as on the My Number card: transparent files that READ BINARY can read
(some only after a PIN), PIN files that VERIFY and CHANGE REFERENCE DATA act on, and key files
that the signature command uses. Key and PIN files are never readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from mynahil.jpki import AID

from .state import PinSlot

__all__ = ["Application", "BinaryFile", "ElementaryFile", "KeyFile", "PinFile"]


@dataclass(frozen=True, slots=True)
class BinaryFile:
    """A transparent EF; ``read_pin`` is the PIN that must be verified to read it, if any."""

    fid: int
    content: bytes
    read_pin: PinSlot | None = None


@dataclass(frozen=True, slots=True)
class PinFile:
    fid: int
    slot: PinSlot


@dataclass(frozen=True, slots=True)
class KeyFile:
    """A private key EF; signing with it needs ``slot`` verified."""

    fid: int
    key: rsa.RSAPrivateKey
    slot: PinSlot


ElementaryFile = BinaryFile | PinFile | KeyFile


@dataclass(frozen=True, slots=True)
class Application:
    """A DF selected by its AID."""

    aid: AID
    files: dict[int, ElementaryFile] = field(default_factory=dict)

    @classmethod
    def of(cls, aid: AID, *files: ElementaryFile) -> Application:
        return cls(aid, {f.fid: f for f in files})
