"""The holder's page password: policy and storage (scrypt, never in clear)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["check_password_policy", "hash_password", "password_matches"]

MIN_LENGTH = 8
MAX_LENGTH = 64
_N, _R, _P = 2**14, 8, 1  # ~16 MiB and a few tens of ms per check: slows guessing offline
_DUMMY = "scrypt$16384$8$1$" + "A" * 22 + "$" + "A" * 43


def check_password_policy(password: str, mykey_id: str) -> str | None:
    """Why this cannot be a page password, or None."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return f"the password has {MIN_LENGTH} to {MAX_LENGTH} characters"
    if not (any(c.isalpha() for c in password) and any(c.isdigit() for c in password)):
        return "the password mixes letters and digits"
    if mykey_id.lower() in password.lower():
        return "the password may not contain the MyKey ID"
    return None


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(_derive(password, salt, _N, _R, _P))}"


def password_matches(stored: str | None, password: str) -> bool:
    """Constant-time check; with no stored hash it does the same work and says no."""
    scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown password scheme {scheme!r}")
    derived = _derive(password, _unb64(salt), int(n), int(r), int(p))
    return stored is not None and hmac.compare_digest(derived, _unb64(digest))
