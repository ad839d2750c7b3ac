"""Answer-to-reset profiles: how the card introduces itself on a contact or contactless reader."""

from __future__ import annotations

from functools import reduce

__all__ = ["ATR_PROFILES", "CONTACT_ATR", "atr_for_profile", "contactless_type_b_atr"]

CONTACT_ATR = bytes.fromhex("3BE000FF8131FE4514")
"""The contact ATR OpenSC's JPKI driver matches (T=1, no historical bytes)."""


def contactless_type_b_atr(
    application_data: bytes = b"\x00\x00\x00\x00",
    protocol_info: bytes = bytes.fromhex("008171"),
    mbli: int = 0,
) -> bytes:
    """The ATR a PC/SC reader builds from an ISO 14443 Type B ATQB (PC/SC part 3, 3.1.3.2.3.2).

    ``3B 88 80 01``, then the 4 application-data bytes and 3 protocol-info bytes of the ATQB,
    the MBLI of the ATTRIB answer in the high nibble of one byte, and the check byte TCK.
    """
    if len(application_data) != 4 or len(protocol_info) != 3 or not 0 <= mbli <= 0xF:
        raise ValueError("Type B ATR needs 4 application bytes, 3 protocol bytes, MBLI 0..15")
    body = bytes.fromhex("888001") + application_data + protocol_info + bytes((mbli << 4,))
    tck = reduce(lambda a, b: a ^ b, body, 0)
    return b"\x3b" + body + bytes((tck,))


ATR_PROFILES: dict[str, bytes] = {
    "contact": CONTACT_ATR,
    "contactless": contactless_type_b_atr(),
}


def atr_for_profile(name: str) -> bytes:
    try:
        return ATR_PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(ATR_PROFILES))
        raise ValueError(f"unknown ATR profile {name!r}; known: {known}") from None
