"""Deliberately defective MyKey platforms: the reference platform with one rule broken, each of
which the platform suite must fail under its requirement (``platform:defect:NAME``).

Each defect wraps one of the running platform's own components, so everything else about the
platform stays exactly as certified.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from mynahil.reference_impl.platform import ReferencePlatform
from mynahil.reference_impl.points.rules import japan_date

__all__ = ["PLATFORM_DEFECTS", "make_defective"]


def _password_session_shows_id(platform: ReferencePlatform) -> None:
    """Every session counts as a card login: a password session shows the ID, resets the
    password and revokes."""
    mykey: Any = platform.mykey
    checked = mykey._logged_in
    mykey._logged_in = lambda uow, token, now, *, card: checked(uow, token, now, card=False)


def _forgets_reissued_cards(platform: ReferencePlatform) -> None:
    """J-LIS's linkage is never asked: a renewed or reissued certificate is a stranger."""
    jlis: Any = platform.mykey.jlis
    jlis.predecessor = lambda serial: None


def _accepts_expired_certificates(platform: ReferencePlatform) -> None:
    """A certificate's last day never passes: it is judged as of its own expiry at the latest."""
    mykey: Any = platform.mykey
    verified: Callable[..., x509.Certificate] = mykey._verified_certificate

    def lenient(der: bytes, nonce: bytes, signature: bytes, now: datetime) -> x509.Certificate:
        try:
            expiry = x509.load_der_x509_certificate(der).not_valid_after_utc
        except ValueError:
            return verified(der, nonce, signature, now)
        return verified(der, nonce, signature, min(now, expiry - timedelta(seconds=1)))

    mykey._verified_certificate = lenient


def _cap_reset_by_revocation(platform: ReferencePlatform) -> None:
    """Every new MyKey ID is a new person: revoking the ID and reserving again with the same
    card gives a second cap and a second choice of service (issue 13's reported defect)."""
    mykey: Any = platform.mykey
    mykey._person_ref = lambda serial: f"defect-{secrets.token_hex(8)}"


def _extension_by_certificate_date(platform: ReferencePlatform) -> None:
    """The day the holder applied for the card is taken to be the certificate's issue date
    (issue 13: a card applied for in April and received in May was refused the extension)."""
    mykey: Any = platform.mykey
    card_holder = mykey.card_holder

    def by_certificate(*args: Any) -> Any:
        holder = card_holder(*args)
        issued = japan_date(holder.certificate_issued_at)
        return replace(holder, facts=replace(holder.facts, card_applied_on=issued),
                       first_card_applied_on=issued)  # fmt: skip

    mykey.card_holder = by_certificate


def _bonus_without_registration(platform: ReferencePlatform) -> None:
    """Bonuses on request: nothing asks whether the registration exists (issue 13)."""
    points: Any = platform.points
    points._check_registration = lambda bonus, person_ref, today: None


# name -> (what is wrong, the requirements that must fail, how to break the platform)
PLATFORM_DEFECTS: dict[str, tuple[str, tuple[str, ...], Callable[[ReferencePlatform], None]]] = {
    "password_session_shows_id": (
        "a password login may show the ID and reset the password", ("SPEC-MYKEY-009",),
        _password_session_shows_id),
    "forgets_reissued_cards": (
        "a renewed or reissued card gets a new MyKey ID", ("SPEC-MYKEY-010",),
        _forgets_reissued_cards),
    "accepts_expired_certificates": (
        "an expired certificate still logs in", ("SPEC-MYKEY-011",),
        _accepts_expired_certificates),
    "extension_by_certificate_date": (
        "the extension is decided by the certificate's issue date, not the card-application "
        "date", ("SPEC-EXTENSION-001",), _extension_by_certificate_date),
    "bonus_without_registration": (
        "a registration bonus is paid to anyone who claims it", ("SPEC-BONUS-001",),
        _bonus_without_registration),
    "cap_reset_by_revocation": (
        "a revoked MyKey ID's new ID gets a second cap and a second choice of service",
        ("SPEC-PERSON-001",), _cap_reset_by_revocation),
}  # fmt: skip


def make_defective(platform: ReferencePlatform, name: str) -> None:
    """Break ``platform`` as the defect ``name`` says (ValueError for an unknown one)."""
    if name not in PLATFORM_DEFECTS:
        raise ValueError(f"no platform defect {name!r}; known: {', '.join(PLATFORM_DEFECTS)}")
    PLATFORM_DEFECTS[name][2](platform)
