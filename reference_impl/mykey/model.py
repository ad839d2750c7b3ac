"""What the MyKey platform keeps: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Challenge", "LoginMethod", "MyKeyRecord", "MyKeyStatus", "Purpose", "Session"]


class Purpose(StrEnum):
    """What a challenge may be used for; a challenge for one is foreign to the other."""

    ISSUE = "issue"
    LOGIN = "login"


class MyKeyStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"  # by the help desk (a leak): no login, no points, until restarted
    REVOKED = "revoked"


class LoginMethod(StrEnum):
    CARD = "card"
    PASSWORD = "password"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A single-use nonce the card signs to prove possession."""

    challenge_id: str
    nonce: bytes
    purpose: Purpose
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MyKeyRecord:
    """One MyKey ID and its state. ``record_id`` is the store's key and never changes."""

    record_id: int
    mykey_id: str
    status: MyKeyStatus
    created_at: datetime
    password_hash: str | None = None
    password_failures: int = 0
    locked_until: datetime | None = None
    revoked_at: datetime | None = None
    person_id: int | None = None  # the person (J-LIS's person reference) whose ID this is


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in holder. Only the SHA-256 of the token is stored."""

    token_hash: str
    record_id: int
    method: LoginMethod
    created_at: datetime
    expires_at: datetime
