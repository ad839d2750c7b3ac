"""A card's life as J-LIS records it: issuance, suspension, renewal, reissue.

Each step returns the card's new state and writes what relying parties must learn into the
registry: revocations, and the old→new linkage by which a renewed certificate or a reissued
card keeps its MyKey ID.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, date, datetime

from cryptography import x509

from card_emulator.state import CardState, Holder, KeyCredential

from .ca import JlisCA
from .issuance import issue_card
from .keypool import FreshKeys, KeySource
from .registry import CertificateRegistry
from .validity import certificate_not_after

__all__ = ["issue", "reissue", "renew", "suspend"]


def _serial(der: bytes) -> int:
    return int(x509.load_der_x509_certificate(der).serial_number)


def _record(
    registry: CertificateRegistry, state: CardState, card_id: str, old: CardState | None = None
) -> None:
    for kind in ("auth", "sign"):
        cred: KeyCredential | None = getattr(state, kind)
        if cred is None:
            continue
        before: KeyCredential | None = getattr(old, kind) if old else None
        registry.record(
            cred.certificate, kind, card_id, _serial(before.certificate) if before else None
        )


def _card_id(state: CardState) -> str:
    return state.label or secrets.token_hex(8)


def issue(
    ca: JlisCA,
    registry: CertificateRegistry,
    holder: Holder,
    *,
    pin: str,
    password: str,
    issued_on: date,
    card_info_pin: str | None = None,
    keys: KeySource | None = None,
    with_certificates: bool = True,
    atr_profile: str = "contact",
) -> CardState:
    """A new card, its certificates recorded."""
    card_id = secrets.token_hex(8)
    state = issue_card(
        ca, holder, pin=pin, password=password, issued_on=issued_on, keys=keys,
        card_info_pin=card_info_pin, with_certificates=with_certificates,
        atr_profile=atr_profile, label=card_id,
    )  # fmt: skip
    _record(registry, state, card_id)
    return state


def _serials(state: CardState) -> list[int]:
    return [_serial(c.certificate) for c in (state.auth, state.sign) if c is not None]


def suspend(
    registry: CertificateRegistry, state: CardState, *, at: datetime, reason: str = "lost"
) -> None:
    """A lost card reported to the hotline: both its certificates are revoked."""
    for serial in _serials(state):
        registry.revoke(serial, reason, at)


def _require_certificates(state: CardState, what: str) -> None:
    if state.auth is None or state.sign is None:
        raise ValueError(
            f"cannot {what}: the holder declined the certificates; issue new ones at the window"
        )


def renew(
    ca: JlisCA,
    registry: CertificateRegistry,
    state: CardState,
    *,
    on: date,
    keys: KeySource | None = None,
) -> CardState:
    """New key pairs and certificates on the same card (free at the window); old ones superseded."""
    _require_certificates(state, "renew")
    if on > state.card_expires:
        raise ValueError(f"the card itself expired on {state.card_expires}: reissue the card")
    source = keys or FreshKeys()
    not_after = certificate_not_after(state.holder.birth_date, on, state.card_expires)
    auth_key, sign_key = source.new_key(), source.new_key()
    renewed = replace(
        state,
        auth=KeyCredential(
            auth_key,
            ca.issue_auth_certificate(auth_key.public_key(), not_before=on, not_after=not_after),
            ca.auth_ca_certificate,
        ),
        sign=KeyCredential(
            sign_key,
            ca.issue_sign_certificate(
                sign_key.public_key(), state.holder, not_before=on, not_after=not_after
            ),
            ca.sign_ca_certificate,
        ),
    )
    at = datetime.combine(on, datetime.min.time(), UTC)
    for serial in _serials(state):
        registry.revoke(serial, "superseded", at)
    _record(registry, renewed, _card_id(state), old=state)
    return renewed


def reissue(
    ca: JlisCA,
    registry: CertificateRegistry,
    old: CardState,
    *,
    on: date,
    pin: str,
    password: str,
    keys: KeySource | None = None,
) -> CardState:
    """A new card for the same holder; its certificates are linked to the old card's."""
    _require_certificates(old, "link a reissued card")
    card_id = secrets.token_hex(8)
    new = issue_card(
        ca, old.holder, pin=pin, password=password, issued_on=on, keys=keys,
        atr_profile=old.atr_profile, label=card_id,
    )  # fmt: skip
    at = datetime.combine(on, datetime.min.time(), UTC)
    for serial in _serials(old):
        registry.revoke(serial, "superseded", at)
    _record(registry, new, card_id, old=old)
    return new
