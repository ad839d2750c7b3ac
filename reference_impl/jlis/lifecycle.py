"""A card's life as J-LIS records it: issuance, suspension, renewal, reissue.

Each step returns the card's new state and writes what relying parties must learn into the
registry, in one registry transaction: the card record (person reference, card-application
and issuance dates), revocations, and the old→new linkage by which a renewed certificate or a
reissued card keeps its MyKey ID. A first card draws a new person reference; a reissued card
carries its predecessor's, so the person is the same across renewals and reissues.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.card_emulator.state import CardState, Holder, KeyCredential

from .ca import JlisCA, start_of_day
from .issuance import default_applied_on, issue_card, random_holder
from .keypool import FreshKeys, KeySource
from .registry import KINDS, CardRecord, Kind, RegistryStore
from .validity import renewed_certificate_not_after, signing_certificate_allowed

__all__ = [
    "card_serials",
    "issue",
    "issue_many",
    "new_person_ref",
    "reissue",
    "renew",
    "suspend",
]

# As in issuance: a key pool may hand out the same key twice in a row; a card's two keys differ.
_REDRAWS = 16


def _serial(der: bytes) -> int:
    return int(x509.load_der_x509_certificate(der).serial_number)


def _credential(state: CardState, kind: Kind) -> KeyCredential | None:
    return state.auth if kind == "auth" else state.sign


def card_serials(state: CardState) -> dict[Kind, int]:
    """The serials of the certificates on the card, by kind (empty if the holder declined)."""
    serials: dict[Kind, int] = {}
    for kind in KINDS:
        credential = _credential(state, kind)
        if credential is not None:
            serials[kind] = _serial(credential.certificate)
    return serials


def _record(
    registry: RegistryStore,
    state: CardState,
    card_id: str,
    replaces: dict[Kind, int] | None = None,
) -> None:
    for kind in KINDS:
        credential = _credential(state, kind)
        if credential is not None:
            registry.record(credential.certificate, kind, card_id, (replaces or {}).get(kind))


def new_person_ref() -> str:
    """A fresh opaque person reference: random, so nothing about the person is in it."""
    return secrets.token_hex(16)


def issue(
    ca: JlisCA,
    registry: RegistryStore,
    holder: Holder,
    *,
    pin: str,
    password: str,
    issued_on: date,
    applied_on: date | None = None,
    card_info_pin: str | None = None,
    keys: KeySource | None = None,
    with_certificates: bool = True,
    atr_profile: str = "contact",
    security_code: str | None = None,
) -> CardState:
    """A person's first card (see :func:`issue_card`) with a fresh card id as its label,
    applied for on ``applied_on`` (default: a month before issuance); the card (with a new
    person reference) and its certificates are recorded in ``registry``."""
    card_id = secrets.token_hex(8)
    applied = default_applied_on(issued_on, holder.birth_date) if applied_on is None else applied_on
    state = issue_card(
        ca, holder, pin=pin, password=password, issued_on=issued_on, applied_on=applied,
        keys=keys, card_info_pin=card_info_pin, with_certificates=with_certificates,
        atr_profile=atr_profile, label=card_id, security_code=security_code,
    )  # fmt: skip
    with registry.transaction():
        registry.record_card(CardRecord(card_id, new_person_ref(), applied, issued_on))
        _record(registry, state, card_id)
    return state


def issue_many(
    ca: JlisCA,
    registry: RegistryStore,
    count: int,
    *,
    holders: random.Random,
    issued_on: date,
    keys: KeySource | None = None,
    pin: str = DEFAULT_PIN,
    password: str = DEFAULT_PASSWORD,
) -> list[CardState]:
    """``count`` first cards (:func:`issue`) for people drawn from ``holders``, recorded in
    ``registry`` in one transaction: a registry file is rewritten once, and a server reading
    it re-reads it once, however many cards."""
    with registry.transaction():
        return [
            issue(ca, registry, random_holder(holders), pin=pin, password=password,
                  issued_on=issued_on, keys=keys)
            for _ in range(count)
        ]  # fmt: skip


def suspend(
    registry: RegistryStore,
    card: CardState | Iterable[int],
    *,
    at: datetime,
    reason: str = "lost",
) -> list[int]:
    """A lost card reported to the hotline: its certificates are revoked (all or none).

    ``card`` is the card's state or the serials of its certificates. Certificates already
    revoked keep their first reason. Returns the serials; raises
    :class:`~mynahil.reference_impl.jlis.registry.UnknownCertificate` for a serial never recorded.
    """
    serials = list(card_serials(card).values()) if isinstance(card, CardState) else list(card)
    with registry.transaction():
        for serial in serials:
            registry.revoke(serial, reason, at)
    return serials


def _linkable(registry: RegistryStore, state: CardState, what: str) -> dict[Kind, int]:
    """The card's serials, checked to be recorded and not replaced yet; ValueError otherwise.

    A card needs its user-authentication certificate; the signing one may be absent (a
    holder under 15 has none)."""
    serials = card_serials(state)
    if "auth" not in serials:
        raise ValueError(
            f"cannot {what}: the holder declined the certificates at issuance, so there is "
            "nothing to link; issue the certificates at a municipal window"
        )
    for serial in serials.values():
        if registry.entry(serial) is None:
            raise ValueError(f"cannot {what}: certificate {serial} is not in this registry")
        successor = registry.successor(serial)
        if successor is not None:
            raise ValueError(
                f"cannot {what}: certificate {serial} was already replaced by {successor} "
                "(this card state is out of date)"
            )
    return serials


def _two_keys(keys: KeySource | None) -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    source = keys if keys is not None else FreshKeys()
    auth_key, sign_key = source.new_key(), source.new_key()
    for _ in range(_REDRAWS):
        if sign_key is not auth_key:
            break
        sign_key = source.new_key()
    return auth_key, sign_key


def renew(
    ca: JlisCA,
    registry: RegistryStore,
    state: CardState,
    *,
    on: date,
    keys: KeySource | None = None,
) -> CardState:
    """New key pairs and certificates on the same card, as the window does for free.

    The new certificates run to the card's own expiry (SPEC, seed 000); each is linked to the
    one it replaces, which is revoked as ``superseded`` (a certificate already revoked, say of
    a card reported lost and found, keeps its reason).
    A signing certificate is issued only to a holder 15 or older on ``on``.
    Holder, PINs and card id stay. ValueError for a card without certificates, an expired
    card (reissue it), or a state whose certificates were already replaced.
    """
    old = _linkable(registry, state, "renew")
    if on > state.card_expires:
        raise ValueError(
            f"cannot renew: the card itself expired on {state.card_expires}; reissue it"
        )
    old_auth = registry.entry(old["auth"])
    assert old_auth is not None
    not_after = renewed_certificate_not_after(state.card_expires)
    auth_key, sign_key = _two_keys(keys)
    sign = None
    if signing_certificate_allowed(state.holder.birth_date, on):
        sign = KeyCredential(
            sign_key,
            ca.issue_sign_certificate(
                sign_key.public_key(), state.holder, not_before=on, not_after=not_after
            ),
            ca.sign_ca_certificate,
        )
    renewed = replace(
        state,
        auth=KeyCredential(
            auth_key,
            ca.issue_auth_certificate(auth_key.public_key(), not_before=on, not_after=not_after),
            ca.auth_ca_certificate,
        ),
        sign=sign,
    )
    with registry.transaction():
        suspend(registry, old.values(), at=start_of_day(on), reason="superseded")
        _record(registry, renewed, old_auth.card_id, replaces=old)
    return renewed


def reissue(
    ca: JlisCA,
    registry: RegistryStore,
    old: CardState,
    *,
    on: date,
    pin: str,
    password: str,
    applied_on: date | None = None,
    card_info_pin: str | None = None,
    keys: KeySource | None = None,
) -> CardState:
    """A new card for the same holder (after loss, say), applied for on ``applied_on``
    (default: a month before) and issued on ``on``.

    New keys, a new card expiry and new certificates, each linked to the old card's
    certificate of the same kind; the old ones are revoked as ``superseded`` unless already
    revoked (a card suspended through the hotline keeps reason ``lost``). The new card record
    carries the old card's person reference. ValueError for an old card without
    certificates or whose certificates were already replaced.
    """
    serials = _linkable(registry, old, "link a reissued card")
    facts = registry.holder_facts(serials["auth"])
    assert facts is not None  # _linkable checked that the registry knows it
    old_entry = registry.entry(serials["auth"])
    assert old_entry is not None
    previous = registry.card(old_entry.card_id)
    card_id = secrets.token_hex(8)
    applied = default_applied_on(on, old.holder.birth_date) if applied_on is None else applied_on
    new = issue_card(
        ca, old.holder, pin=pin, password=password, issued_on=on, applied_on=applied, keys=keys,
        card_info_pin=card_info_pin, atr_profile=old.atr_profile, label=card_id,
    )  # fmt: skip
    with registry.transaction():
        suspend(registry, serials.values(), at=start_of_day(on), reason="superseded")
        registry.record_card(
            CardRecord(
                card_id,
                facts.person_ref,
                applied,
                on,
                replaces=previous.card_id if previous is not None else None,
            )
        )
        _record(registry, new, card_id, replaces=serials)
    return new
