"""PIN reference data and retry counters: the one place the PIN rules live.

Pure: a :class:`Pin` is an immutable value and every operation returns a new one, so the
card can persist the decremented counter *before* it compares (a crash between the two
can never hand an attacker a free guess).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from enum import Enum
from typing import Final

__all__ = [
    "AUTH_PIN",
    "BIRTH_PIN",
    "CARD_INFO_PIN",
    "DEFAULT_PASSWORD",
    "DEFAULT_PIN",
    "MATCH_A",
    "MATCH_B",
    "SIGN_PASSWORD",
    "Pin",
    "PinPolicy",
    "VerifyOutcome",
]


@dataclass(frozen=True, slots=True)
class PinPolicy:
    """What a PIN may look like and how many wrong tries block it."""

    name: str
    min_length: int
    max_length: int
    alphabet: str
    max_tries: int

    def problem(self, candidate: str) -> str | None:
        """Why ``candidate`` cannot be this PIN, or None when it can."""
        if not self.min_length <= len(candidate) <= self.max_length:
            if self.min_length == self.max_length:
                return f"the {self.name} is exactly {self.min_length} characters"
            return f"the {self.name} is {self.min_length} to {self.max_length} characters"
        bad = sorted({c for c in candidate if c not in self.alphabet})
        if bad:
            return f"the {self.name} may not contain {''.join(bad)!r}"
        return None


DIGITS = "0123456789"
AUTH_PIN = PinPolicy("user-authentication PIN", 4, 4, DIGITS, 3)
#: The PINs and the signing password of every card issued for demos, tests, load runs and
#: benchmarks (and the command line's default): never a real card's.
DEFAULT_PIN: Final = "1234"
DEFAULT_PASSWORD: Final = "ABC123"

SIGN_PASSWORD = PinPolicy("signing password", 6, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + DIGITS, 5)
CARD_INFO_PIN = PinPolicy("card-info PIN", 4, 4, DIGITS, 3)
# The alternatives to the card-info PIN (JPKI.md, jsapdu's KENHOJO_AP_EF/KENKAKU_AP_EF). Their
# reference data is printed on the card, so the holder cannot change it. Choice: 10 tries each
# (no public source gives the count), each its own counter.
MATCH_A = PinPolicy("照合番号A", 12, 12, DIGITS, 10)  # the My Number
MATCH_B = PinPolicy("照合番号B", 14, 14, DIGITS, 10)  # birth YYMMDD, expiry year, code
BIRTH_PIN = PinPolicy("birth-date PIN", 6, 6, DIGITS, 10)  # birth YYMMDD


class VerifyOutcome(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    BLOCKED = "blocked"


def _digest(salt: bytes, value: bytes) -> bytes:
    # A salted hash keeps the PIN out of the card file in clear; with 10^4 possible PINs it is
    # no defence against someone holding the file, and is not meant to be.
    return hashlib.sha256(salt + value).digest()


@dataclass(frozen=True, slots=True)
class Pin:
    """A PIN's reference data and its retry counter."""

    policy: PinPolicy
    salt: bytes
    digest: bytes
    tries_left: int

    @classmethod
    def create(cls, policy: PinPolicy, value: str) -> Pin:
        problem = policy.problem(value)
        if problem:
            raise ValueError(problem)
        salt = secrets.token_bytes(16)
        return cls(policy, salt, _digest(salt, value.encode("ascii")), policy.max_tries)

    @classmethod
    def printed(cls, policy: PinPolicy, value: str) -> Pin:
        """Reference data taken from the card face (not checked against the policy: the card
        compares whatever was printed)."""
        salt = secrets.token_bytes(16)
        return cls(policy, salt, _digest(salt, value.encode("utf-8")), policy.max_tries)

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0

    def matches(self, candidate: bytes) -> bool:
        return hmac.compare_digest(_digest(self.salt, candidate), self.digest)

    def charged(self) -> Pin:
        """The state to persist before comparing: one try fewer."""
        return replace(self, tries_left=max(0, self.tries_left - 1))

    def verify(self, candidate: bytes) -> tuple[Pin, VerifyOutcome]:
        """Compare ``candidate``; a correct one restores every try, a wrong one costs one.

        Anything that is not the PIN costs a try, whatever its length or characters: the card
        compares reference data and gives no hint about the format.
        """
        if self.blocked:
            return self, VerifyOutcome.BLOCKED
        if self.matches(candidate):
            return replace(self, tries_left=self.policy.max_tries), VerifyOutcome.ACCEPTED
        return self.charged(), VerifyOutcome.REJECTED

    def changed(self, new_value: str) -> Pin:
        """New reference data (CHANGE REFERENCE DATA); raises ValueError if it breaks policy."""
        fresh = Pin.create(self.policy, new_value)
        return replace(fresh, tries_left=self.policy.max_tries)

    def unblocked(self, new_value: str | None = None) -> Pin:
        """What the municipal window does: all tries back, optionally a new PIN."""
        if new_value is not None:
            return self.changed(new_value)
        return replace(self, tries_left=self.policy.max_tries)
