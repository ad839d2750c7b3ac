"""Signed requests between the platform and operators (both directions), Ed25519.

A request carries four headers: who signs (``X-Mynahil-Signer``), when (``X-Mynahil-Timestamp``,
Unix seconds), a fresh ``X-Mynahil-Nonce`` and ``X-Mynahil-Signature`` (base64) over::

    METHOD \\n PATH?QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

The contract for other languages, byte by byte, is docs/operator-signing.md; its test vectors
(docs/operator-signing-vectors.json) are checked against this module by
tests/reference_impl/points/test_signing_vectors.py.

The receiver refuses an unsigned, wrongly signed or stale request (outside ``max_skew``) here,
and a replayed one by remembering nonces for as long as a timestamp stays fresh (the store
does that, inside the request's transaction).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import PointsError

__all__ = [
    "MAX_SKEW",
    "SIGNATURE_HEADERS",
    "SignedRequest",
    "Signer",
    "check_signature",
    "public_key_bytes",
    "string_to_sign",
]

SIGNER: Final = "X-Mynahil-Signer"
TIMESTAMP: Final = "X-Mynahil-Timestamp"
NONCE: Final = "X-Mynahil-Nonce"
SIGNATURE: Final = "X-Mynahil-Signature"
SIGNATURE_HEADERS: Final = (SIGNER, TIMESTAMP, NONCE, SIGNATURE)
MAX_SKEW: Final = timedelta(minutes=5)
# Digits only: the header's text is signed as sent, so a lenient parse ("+17…", "1_7…") would
# let two spellings of one instant verify and leave other languages guessing.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Visible ASCII: HTTP carries header bytes, and anything else signs differently per decoder.
_NONCE = re.compile(r"[\x21-\x7e]{8,64}")


def string_to_sign(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The bytes Ed25519 signs (docs/operator-signing.md): five lines joined by LF, UTF-8."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), target, timestamp, nonce, digest)).encode("utf-8")


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs outgoing requests as ``name``."""

    name: str
    key: Ed25519PrivateKey

    def headers(
        self,
        method: str,
        target: str,
        body: bytes,
        *,
        now: datetime | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """The four headers; ``nonce`` is fresh unless given (test vectors give one)."""
        timestamp = str(int((now or datetime.now(UTC)).timestamp()))
        nonce = secrets.token_urlsafe(18) if nonce is None else nonce
        signature = self.key.sign(string_to_sign(method, target, timestamp, nonce, body))
        return {
            SIGNER: self.name,
            TIMESTAMP: timestamp,
            NONCE: nonce,
            SIGNATURE: base64.b64encode(signature).decode("ascii"),
        }


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request whose signature and freshness checked out; the nonce is still to be spent."""

    signer: str
    nonce: str
    signed_at: datetime


def signer_of(headers: Mapping[str, str]) -> str:
    """The claimed signer, or a refusal for an unsigned request."""
    missing = [h for h in SIGNATURE_HEADERS if not headers.get(h)]
    if missing:
        raise PointsError(
            "request_unsigned", f"operator requests must be signed: missing {', '.join(missing)}"
        )
    signer = headers[SIGNER]
    if len(signer) > 64 or not signer.isprintable():
        # Never a registered operator, and a NUL would not even reach PostgreSQL's text.
        raise PointsError(
            "request_unsigned", f"{SIGNER} must be an operator ID: 1 to 64 printable characters"
        )
    return signer


def check_signature(
    public_key: bytes,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    max_skew: timedelta = MAX_SKEW,
) -> SignedRequest:
    """Verify signature and timestamp (not the nonce: see the module docstring)."""
    signer = signer_of(headers)
    timestamp, nonce = headers[TIMESTAMP], headers[NONCE]
    if not _NONCE.fullmatch(nonce):
        raise PointsError(
            "request_unsigned",
            f"{NONCE} must be 8 to 64 visible ASCII characters (0x21 to 0x7E)",
        )
    if not _TIMESTAMP.fullmatch(timestamp):
        raise PointsError(
            "request_unsigned", f"{TIMESTAMP} must be Unix seconds in decimal digits (1 to 12)"
        )
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if abs(now - signed_at) > max_skew:
        raise PointsError(
            "request_stale",
            f"the request was signed at {signed_at.isoformat()}, more than "
            f"{int(max_skew.total_seconds())} s from the platform's clock",
        )
    try:
        signature = base64.b64decode(headers[SIGNATURE], validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, string_to_sign(method, target, timestamp, nonce, body)
        )
    except (binascii.Error, ValueError, InvalidSignature):
        raise PointsError(
            "request_signature_invalid", f"the request's signature is not {signer}'s"
        ) from None
    return SignedRequest(signer, nonce, signed_at)
