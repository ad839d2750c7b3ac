"""The MyKey platform's domain: IDs, challenges, issuance, login, change and revocation."""

from __future__ import annotations

from .errors import MyKeyError
from .ids import ALPHABET, InvalidMyKeyId, generate_mykey_id, parse_mykey_id
from .model import Challenge, LoginMethod, MyKeyRecord, MyKeyStatus, Purpose, Session
from .ports import (
    CertificateAuthority,
    CertificateStatus,
    Conflict,
    HolderFacts,
    Store,
    UnitOfWork,
)
from .service import CardHolder, IssueResult, LoginResult, MyKeyService, Policy

__all__ = [
    "ALPHABET",
    "CardHolder",
    "CertificateAuthority",
    "CertificateStatus",
    "Challenge",
    "Conflict",
    "HolderFacts",
    "InvalidMyKeyId",
    "IssueResult",
    "LoginMethod",
    "LoginResult",
    "MyKeyError",
    "MyKeyRecord",
    "MyKeyService",
    "MyKeyStatus",
    "Policy",
    "Purpose",
    "Session",
    "Store",
    "UnitOfWork",
    "generate_mykey_id",
    "parse_mykey_id",
]
