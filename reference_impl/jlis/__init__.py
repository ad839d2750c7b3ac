"""The emulated J-LIS: its two certificate authorities, the validity rules, card issuance.

Pooled keys (:class:`KeyPool`) are shared between cards and meant for load tests only;
:class:`FreshKeys`, the default, gives every card its own.
"""

from __future__ import annotations

from .ca import CAFolderError, JlisCA
from .issuance import issue_card, random_holder
from .keypool import FreshKeys, KeyPool, KeySource
from .validity import (
    age_of_majority,
    age_on,
    card_expiry,
    certificate_not_after,
    is_minor,
    nth_birthday_after,
)

__all__ = [
    "CAFolderError",
    "FreshKeys",
    "JlisCA",
    "KeyPool",
    "KeySource",
    "age_of_majority",
    "age_on",
    "card_expiry",
    "certificate_not_after",
    "is_minor",
    "issue_card",
    "nth_birthday_after",
    "random_holder",
]
