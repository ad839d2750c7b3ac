"""The card's ISO 7816-4 file system: applications (DFs selected by name) holding EFs.

Four kinds of EF: transparent files that READ BINARY can read (some only after one of a set of
PINs), PIN files that VERIFY and CHANGE REFERENCE DATA act on, key files that the signature
command uses, and internal files (EFs public clients name but whose contents no public source
describes). Key, PIN and internal files are never readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from mynahil.jpki import AID

from .state import PinSlot

__all__ = ["Application", "BinaryFile", "ElementaryFile", "InternalFile", "KeyFile", "PinFile"]


@dataclass(frozen=True, slots=True)
class BinaryFile:
    """A transparent EF; reading it needs one of ``read_pins`` verified (none: free)."""

    fid: int
    content: bytes
    read_pins: frozenset[PinSlot] = frozenset()

    @classmethod
    def protected(cls, fid: int, content: bytes, *pins: PinSlot) -> BinaryFile:
        return cls(fid, content, frozenset(pins))


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


@dataclass(frozen=True, slots=True)
class InternalFile:
    """An EF that exists (SELECT answers 9000) but that no command reads or uses."""

    fid: int


ElementaryFile = BinaryFile | PinFile | KeyFile | InternalFile


@dataclass(frozen=True, slots=True)
class Application:
    """A DF selected by its AID."""

    aid: AID
    files: dict[int, ElementaryFile] = field(default_factory=dict)

    @classmethod
    def of(cls, aid: AID, *files: ElementaryFile) -> Application:
        return cls(aid, {f.fid: f for f in files})
