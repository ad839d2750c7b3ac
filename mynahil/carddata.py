"""The J-LIS-signed data of the card-info and card-face APs: formats, and the relying party's
check that the data came from a genuine card.

Layouts follow the public clients (jsapdu's ``schema.ts``, myna's ``text.rs``/``visual.rs``):
- card-info EF 0003: ``FF30 { DF31 hash of EF 0001, DF32 hash of EF 0002, DF33 signature }``,
  DF31 over the whole EF 0001, DF32 over EF 0002 from its first field to the end (jsapdu's
  ``calculateMyNumberHash`` and ``calculateBasicFourHash``);
- EF 0004 of both APs: a card-verifiable certificate ``7F21 { 5F4E issuer(16) subject(16)
  public key, 5F37 signature }``, the public key as two TLVs, exponent first;
- card-face EF 0001 ``FF10 { DF11 birth, DF12 public key, DF13 signature }``, EF 0002
  ``FF20 { DF21 offsets, DF22 birth, DF23 sex, DF24 public key, DF25 name PNG, DF26 address PNG,
  DF27 photo JPEG 2000, DF28 signature, DF29 expiry, DF2A security code PNG }``, EF 0005
  ``FF40 { DF41 My Number PNG, DF42 public key, DF43 signature }``.

Choices where no public source says (README, "facts and choices"): hashes are SHA-256;
signatures are RSA PKCS#1 v1.5 with SHA-256; DF33 signs DF31's value then DF32's; each card-face
signature signs the encoded TLVs of its EF other than DF21 and itself, in order; the public-key
TLVs are ``82`` exponent and ``81`` modulus (ISO 7816-8 tags); a key ID is the first 16 bytes of
SHA-256 over the key's DER SubjectPublicKeyInfo; the CV certificate's signature (by the J-LIS
root) is over the value of 5F4E.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .jpki import _read_tlvs, _tlv, decode_offsets, encode_with_offsets

__all__ = [
    "CardDataInvalid",
    "CvCertificate",
    "FaceEntries",
    "Signer",
    "basic_info_hashed_part",
    "decode_face_entries",
    "decode_public_key",
    "encode_ap_info",
    "encode_face_birth",
    "encode_face_entries",
    "encode_face_my_number",
    "encode_info_signature",
    "encode_public_key",
    "key_id",
    "verify_certificate",
    "verify_face",
    "verify_info",
]

Signer = Callable[[bytes], bytes]
"""Signs a message (RSA PKCS#1 v1.5, SHA-256): the J-LIS card-data key, held by the CA."""

_PSS_FREE = padding.PKCS1v15()


class CardDataInvalid(ValueError):
    """The card's data does not verify: the message says which file and why."""


def key_id(public_key: rsa.RSAPublicKey) -> bytes:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()[:16]


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def encode_public_key(public_key: rsa.RSAPublicKey) -> bytes:
    numbers = public_key.public_numbers()
    return _tlv(b"\x82", _int_bytes(numbers.e)) + _tlv(b"\x81", _int_bytes(numbers.n))


def decode_public_key(raw: bytes) -> rsa.RSAPublicKey:
    """Two TLVs, exponent then modulus (the order jsapdu's ``decodePublicKey`` reads)."""
    try:
        fields = list(_read_tlvs(raw).values())
        e, n = (int.from_bytes(v, "big") for v in fields)
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise CardDataInvalid(f"the public key does not decode ({exc})") from None


def _verify(public_key: rsa.RSAPublicKey, signature: bytes, message: bytes, what: str) -> None:
    try:
        public_key.verify(signature, message, _PSS_FREE, hashes.SHA256())
    except InvalidSignature:
        raise CardDataInvalid(f"{what}: the signature does not verify") from None


def _field(tlvs: dict[bytes, bytes], tag: bytes, where: str) -> bytes:
    value = tlvs.get(tag)
    if value is None:
        raise CardDataInvalid(f"{where} lacks tag {tag.hex().upper()}")
    return value


def _tlvs(data: bytes, where: str) -> dict[bytes, bytes]:
    try:
        return _read_tlvs(data)
    except ValueError as exc:
        raise CardDataInvalid(f"{where} is not TLV-encoded ({exc})") from None


# --- the card-data certificate (EF 0004) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class CvCertificate:
    """A card-verifiable certificate: who issued it, whose key it certifies, the key."""

    issuer: bytes
    subject: bytes
    public_key_raw: bytes
    signature: bytes

    @property
    def body(self) -> bytes:
        return self.issuer + self.subject + self.public_key_raw

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return decode_public_key(self.public_key_raw)

    def encode(self) -> bytes:
        return _tlv(b"\x7f\x21", _tlv(b"\x5f\x4e", self.body) + _tlv(b"\x5f\x37", self.signature))

    @classmethod
    def issue(cls, root_key: rsa.RSAPrivateKey, public_key: rsa.RSAPublicKey) -> CvCertificate:
        """``public_key`` certified by ``root_key`` (PKCS#1 v1.5 is deterministic, so the same
        keys always give the same certificate)."""
        unsigned = cls(key_id(root_key.public_key()), key_id(public_key), encode_public_key(
            public_key), b"")  # fmt: skip
        signature = root_key.sign(unsigned.body, _PSS_FREE, hashes.SHA256())
        return cls(unsigned.issuer, unsigned.subject, unsigned.public_key_raw, signature)

    @classmethod
    def parse(cls, data: bytes) -> CvCertificate:
        outer = _field(_tlvs(data, "EF 0004"), b"\x7f\x21", "EF 0004")
        inner = _tlvs(outer, "EF 0004")
        body = _field(inner, b"\x5f\x4e", "EF 0004")
        if len(body) <= 32:
            raise CardDataInvalid("EF 0004's 5F4E is too short for two IDs and a key")
        return cls(body[:16], body[16:32], body[32:], _field(inner, b"\x5f\x37", "EF 0004"))


def verify_certificate(ef0004: bytes, root: x509.Certificate) -> rsa.RSAPublicKey:
    """The card-data key EF 0004 certifies, once its signature by ``root`` checks out."""
    cert = CvCertificate.parse(ef0004)
    root_key = root.public_key()
    if not isinstance(root_key, rsa.RSAPublicKey):
        raise CardDataInvalid("the J-LIS root does not hold an RSA key")
    if cert.issuer != key_id(root_key):
        raise CardDataInvalid("EF 0004 was not issued by this J-LIS root (issuer ID differs)")
    _verify(root_key, cert.signature, cert.body, "EF 0004 (the intermediate certificate)")
    key = cert.public_key
    if key_id(key) != cert.subject:
        raise CardDataInvalid("EF 0004's subject ID does not name its key")
    return key


# --- card-info AP ----------------------------------------------------------------------------


def _offsets(value: bytes, where: str) -> list[int]:
    try:
        return decode_offsets(value)
    except ValueError as exc:
        raise CardDataInvalid(f"{where}: {exc}") from None


def check_offsets(ef: bytes, outer_tag: bytes, where: str) -> list[int]:
    """DF21's offsets, once each is checked to be the position of the next field's tag in the
    EF (DF21 is outside every hash and signature, so the relying party checks it this way)."""
    outer = _field(_tlvs(ef, where), outer_tag, where)
    inner = _tlvs(outer, where)
    offsets = _offsets(_field(inner, b"\xdf\x21", where), where)
    start = ef.index(outer)
    position = start + len(_tlv(b"\xdf\x21", inner[b"\xdf\x21"]))
    actual = []
    for tag, value in list(inner.items())[1:]:
        actual.append(position)
        position += len(_tlv(tag, value))
    if next(iter(inner)) != b"\xdf\x21" or offsets != actual:
        raise CardDataInvalid(f"{where}: DF21's offsets do not point at the fields that follow")
    return offsets


def basic_info_hashed_part(ef0002: bytes) -> bytes:
    """What DF32 hashes: EF 0002 from its first field (DF21's first offset) to the end of the
    FF20 TLV, the header and DF21 left out (as jsapdu's ``calculateBasicFourHash`` takes it).
    EF 0001 is hashed whole (``calculateMyNumberHash``)."""
    outer = _field(_tlvs(ef0002, "EF 0002"), b"\xff\x20", "EF 0002")
    offsets = check_offsets(ef0002, b"\xff\x20", "EF 0002")
    if not offsets:
        raise CardDataInvalid("EF 0002's DF21 lists no field")
    end = ef0002.index(outer) + len(outer)
    return ef0002[offsets[0] : end]


def encode_info_signature(ef0001: bytes, ef0002: bytes, sign: Signer) -> bytes:
    """EF 0003 of the card-info AP for the given EF 0001 and EF 0002 contents."""
    h1 = hashlib.sha256(ef0001).digest()
    h2 = hashlib.sha256(basic_info_hashed_part(ef0002)).digest()
    return _tlv(
        b"\xff\x30",
        _tlv(b"\xdf\x31", h1) + _tlv(b"\xdf\x32", h2) + _tlv(b"\xdf\x33", sign(h1 + h2)),
    )


def verify_info(
    ef0001: bytes, ef0002: bytes, ef0003: bytes, ef0004: bytes, root: x509.Certificate
) -> None:
    """The relying party's check: the hashes in EF 0003 match EF 0001 and 0002, its signature
    verifies with the key of EF 0004, and EF 0004 chains to ``root``. Raises
    :class:`CardDataInvalid` naming what fails."""
    key = verify_certificate(ef0004, root)
    proof = _tlvs(_field(_tlvs(ef0003, "EF 0003"), b"\xff\x30", "EF 0003"), "EF 0003")
    h1 = _field(proof, b"\xdf\x31", "EF 0003")
    h2 = _field(proof, b"\xdf\x32", "EF 0003")
    if h1 != hashlib.sha256(ef0001).digest():
        raise CardDataInvalid("EF 0001 (My Number) does not match its hash in EF 0003")
    if h2 != hashlib.sha256(basic_info_hashed_part(ef0002)).digest():
        raise CardDataInvalid("EF 0002 (name, address, birth, sex) does not match its hash")
    _verify(key, _field(proof, b"\xdf\x33", "EF 0003"), h1 + h2, "EF 0003")


def encode_ap_info(aid: bytes, data_key: rsa.RSAPublicKey | None, *extra: bytes) -> bytes:
    """AP basic info (card-info EF 0005, card-face EF 0003): ``E0 { 80 AP ID, 81 public-key ID,
    82…: extra }`` (myna reads the first TLVs inside as the AP ID and the public-key ID)."""
    inner = _tlv(b"\x80", aid[-4:]) + _tlv(b"\x81", key_id(data_key) if data_key else b"")
    for i, value in enumerate(extra):
        inner += _tlv(bytes((0x82 + i,)), value)
    return _tlv(b"\xe0", inner)


# --- card-face AP ----------------------------------------------------------------------------


def _signed_ef(
    outer: bytes, fields: list[tuple[bytes, bytes]], sig_tag: bytes, sign: Signer
) -> bytes:
    message = b"".join(_tlv(t, v) for t, v in fields)
    return _tlv(outer, message + _tlv(sig_tag, sign(message)))


def encode_face_birth(birth: str, public_key_raw: bytes, sign: Signer) -> bytes:
    fields = [(b"\xdf\x11", birth.encode("ascii")), (b"\xdf\x12", public_key_raw)]
    return _signed_ef(b"\xff\x10", fields, b"\xdf\x13", sign)


def encode_face_my_number(png: bytes, public_key_raw: bytes, sign: Signer) -> bytes:
    fields = [(b"\xdf\x41", png), (b"\xdf\x42", public_key_raw)]
    return _signed_ef(b"\xff\x40", fields, b"\xdf\x43", sign)


@dataclass(frozen=True, slots=True)
class FaceEntries:
    """The card face as EF 0002 of the card-face AP holds it."""

    birth: str  # YYYYMMDD
    sex: str  # "1", "2" or "9"
    public_key_raw: bytes
    name_png: bytes
    address_png: bytes
    photo_jp2: bytes
    expiry: str  # YYYYMMDD
    security_code_png: bytes
    signature: bytes = b""

    def _fields(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"\xdf\x22", self.birth.encode("ascii")),
            (b"\xdf\x23", self.sex.encode("ascii")),
            (b"\xdf\x24", self.public_key_raw),
            (b"\xdf\x25", self.name_png),
            (b"\xdf\x26", self.address_png),
            (b"\xdf\x27", self.photo_jp2),
            (b"\xdf\x29", self.expiry.encode("ascii")),
            (b"\xdf\x2a", self.security_code_png),
        ]

    @property
    def signed_message(self) -> bytes:
        return b"".join(_tlv(t, v) for t, v in self._fields())


def encode_face_entries(entries: FaceEntries, sign: Signer) -> bytes:
    signature = sign(entries.signed_message)
    fields = entries._fields()
    fields.insert(6, (b"\xdf\x28", signature))
    return encode_with_offsets(b"\xff\x20", fields)


def decode_face_entries(data: bytes) -> FaceEntries:
    inner = _tlvs(_field(_tlvs(data, "EF 0002"), b"\xff\x20", "EF 0002"), "EF 0002")
    offsets = _offsets(_field(inner, b"\xdf\x21", "EF 0002"), "EF 0002")
    if len(offsets) != 9:
        raise CardDataInvalid(f"EF 0002's DF21 lists {len(offsets)} fields, not 9")
    try:
        return FaceEntries(
            birth=_field(inner, b"\xdf\x22", "EF 0002").decode("ascii"),
            sex=_field(inner, b"\xdf\x23", "EF 0002").decode("ascii"),
            public_key_raw=_field(inner, b"\xdf\x24", "EF 0002"),
            name_png=_field(inner, b"\xdf\x25", "EF 0002"),
            address_png=_field(inner, b"\xdf\x26", "EF 0002"),
            photo_jp2=_field(inner, b"\xdf\x27", "EF 0002"),
            signature=_field(inner, b"\xdf\x28", "EF 0002"),
            expiry=_field(inner, b"\xdf\x29", "EF 0002").decode("ascii"),
            security_code_png=_field(inner, b"\xdf\x2a", "EF 0002"),
        )
    except UnicodeDecodeError:
        raise CardDataInvalid("EF 0002's birth, sex or expiry is not ASCII") from None


def _check_signed_ef(
    data: bytes, outer: bytes, sig_tag: bytes, key: rsa.RSAPublicKey, where: str
) -> None:
    value = _field(_tlvs(data, where), outer, where)
    tlvs = _tlvs(value, where)
    signature = _field(tlvs, sig_tag, where)
    signed = b"".join(_tlv(t, v) for t, v in tlvs.items() if t != sig_tag)
    _verify(key, signature, signed, where)


def verify_face(
    birth_ef: bytes | None,
    entries_ef: bytes,
    my_number_ef: bytes | None,
    ef0004: bytes,
    root: x509.Certificate,
) -> FaceEntries:
    """The relying party's check of the card face: each EF's signature verifies with the key of
    EF 0004, which chains to ``root``, and the public key each EF carries is that key."""
    key = verify_certificate(ef0004, root)
    raw = encode_public_key(key)
    entries = decode_face_entries(entries_ef)
    check_offsets(entries_ef, b"\xff\x20", "EF 0002 (the card face)")
    if entries.public_key_raw != raw:
        raise CardDataInvalid("EF 0002's DF24 is not the key EF 0004 certifies")
    _verify(key, entries.signature, entries.signed_message, "EF 0002 (the card face)")
    if birth_ef is not None:
        _check_signed_ef(birth_ef, b"\xff\x10", b"\xdf\x13", key, "EF 0001 (birth date)")
    if my_number_ef is not None:
        _check_signed_ef(my_number_ef, b"\xff\x40", b"\xdf\x43", key, "EF 0005 (My Number)")
    return entries


def tlv_header_length(data: bytes) -> int | None:
    """Total length of the BER TLV ``data`` starts with (tag, length, value), or None when the
    first bytes do not say yet (what myna's ``read_binary_all`` works out from 7 bytes)."""
    if not data:
        return None
    i = 2 if data[0] & 0x1F == 0x1F else 1
    if len(data) <= i:
        return None
    first = data[i]
    if first < 0x80:
        return i + 1 + first
    size = first & 0x7F
    if size not in (1, 2, 3) or len(data) < i + 1 + size:
        return None
    return i + 1 + size + int.from_bytes(data[i + 1 : i + 1 + size], "big")
