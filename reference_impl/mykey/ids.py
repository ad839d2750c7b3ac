"""MyKey IDs: 8 characters from an alphabet a person cannot misread.

The alphabet drops 0/O, 1/I/L and U/V look-alikes. IDs are case-insensitive on input
(normalised to upper case) and may be typed with spaces or hyphens, which are ignored.
"""

from __future__ import annotations

import random
import secrets

__all__ = ["ALPHABET", "LENGTH", "InvalidMyKeyId", "generate_mykey_id", "parse_mykey_id"]

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
LENGTH = 8


class InvalidMyKeyId(ValueError):
    """Text that cannot be a MyKey ID; the message says why."""


def parse_mykey_id(text: str) -> str:
    """The canonical form of a MyKey ID a person typed, or :class:`InvalidMyKeyId`."""
    candidate = "".join(ch for ch in text.upper() if ch not in " -")
    if len(candidate) != LENGTH:
        raise InvalidMyKeyId(f"a MyKey ID has {LENGTH} characters, got {len(candidate)}")
    bad = sorted({ch for ch in candidate if ch not in ALPHABET})
    if bad:
        raise InvalidMyKeyId(
            f"a MyKey ID uses only {ALPHABET} (no 0, O, 1, I, L, U or V); "
            f"{''.join(bad)!r} cannot appear"
        )
    return candidate


def generate_mykey_id(choice: random.Random | None = None) -> str:
    """A random ID (about 39 bits); uniqueness is the store's job."""
    rng = choice or secrets.SystemRandom()
    # One draw for the whole ID, read as LENGTH base-29 digits: from SystemRandom a draw is a
    # system call, and one per character was a measurable part of an issuance.
    number = rng.randrange(len(ALPHABET) ** LENGTH)
    characters = []
    for _ in range(LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        characters.append(ALPHABET[digit])
    return "".join(characters)
