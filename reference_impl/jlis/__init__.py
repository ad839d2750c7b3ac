"""The emulated J-LIS: its two certificate authorities, the validity rules, card issuance,
and the services relying parties use (status, CRL, OCSP, old→new linkage).

Pooled keys (:class:`KeyPool`) are shared between cards and meant for load tests only;
:class:`FreshKeys`, the default, gives every card its own.
"""

from __future__ import annotations

from . import lifecycle
from .ca import CAFolderError, JlisCA
from .issuance import default_applied_on, issue_card, random_holder, sign_card_data
from .keypool import FreshKeys, KeyPool, KeySource
from .registry import CardRecord, CertificateRegistry, JlisServices, ocsp_request_for
from .validity import (
    age_of_majority,
    age_on,
    card_expiry,
    certificate_not_after,
    is_minor,
    minor_for_the_card,
    nth_birthday_after,
    signing_certificate_allowed,
)

__all__ = [
    "CAFolderError",
    "CardRecord",
    "CertificateRegistry",
    "FreshKeys",
    "JlisCA",
    "JlisServices",
    "KeyPool",
    "KeySource",
    "age_of_majority",
    "age_on",
    "card_expiry",
    "certificate_not_after",
    "default_applied_on",
    "is_minor",
    "issue_card",
    "lifecycle",
    "minor_for_the_card",
    "nth_birthday_after",
    "ocsp_request_for",
    "random_holder",
    "sign_card_data",
    "signing_certificate_allowed",
]
