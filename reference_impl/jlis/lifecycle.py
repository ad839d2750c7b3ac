"""A card's life as J-LIS records it: issuance, suspension, renewal, reissue.

Each step returns the card's new state and writes what relying parties must learn into the
registry, in one registry transaction: revocations, and the old→new linkage by which a renewed
certificate or a reissued card keeps its MyKey ID.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from card_emulator.state import CardState, Holder, KeyCredential

from .ca import JlisCA, start_of_day
from .issuance import issue_card
from .keypool import FreshKeys, KeySource
from .registry import KINDS, CertificateRegistry, Kind
from .validity import certificate_not_after

__all__ = ["card_serials", "issue", "reissue", "renew", "suspend"]

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
    registry: CertificateRegistry,
    state: CardState,
    card_id: str,
    replaces: dict[Kind, int] | None = None,
) -> None:
    for kind in KINDS:
        credential = _credential(state, kind)
        if credential is not None:
            registry.record(credential.certificate, kind, card_id, (replaces or {}).get(kind))


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
    """A new card (see :func:`issue_card`) with a fresh card id as its label; both its
    certificates are recorded in ``registry``."""
    card_id = secrets.token_hex(8)
    state = issue_card(
        ca, holder, pin=pin, password=password, issued_on=issued_on, keys=keys,
        card_info_pin=card_info_pin, with_certificates=with_certificates,
        atr_profile=atr_profile, label=card_id,
    )  # fmt: skip
    with registry.transaction():
        _record(registry, state, card_id)
    return state


def suspend(
    registry: CertificateRegistry,
    card: CardState | Iterable[int],
    *,
    at: datetime,
    reason: str = "lost",
) -> list[int]:
    """A lost card reported to the hotline: its certificates are revoked (all or none).

    ``card`` is the card's state or the serials of its certificates. Certificates already
    revoked keep their first reason. Returns the serials; raises
    :class:`~reference_impl.jlis.registry.UnknownCertificate` for a serial never recorded.
    """
    serials = list(card_serials(card).values()) if isinstance(card, CardState) else list(card)
    with registry.transaction():
        for serial in serials:
            registry.revoke(serial, reason, at)
    return serials


def _linkable(registry: CertificateRegistry, state: CardState, what: str) -> dict[Kind, int]:
    """The card's serials, checked to be recorded and not replaced yet; ValueError otherwise."""
    serials = card_serials(state)
    if set(serials) != set(KINDS):
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
    registry: CertificateRegistry,
    state: CardState,
    *,
    on: date,
    keys: KeySource | None = None,
) -> CardState:
    """New key pairs and certificates on the same card, as the window does for free.

    The new certificates run to the holder's 5th birthday after ``on``, never past the card's
    own expiry; each is linked to the one it replaces, which is revoked as ``superseded``
    (a certificate already revoked, say of a card reported lost and found, keeps its reason).
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
    not_after = certificate_not_after(state.holder.birth_date, on, state.card_expires)
    auth_key, sign_key = _two_keys(keys)
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
    with registry.transaction():
        suspend(registry, old.values(), at=start_of_day(on), reason="superseded")
        _record(registry, renewed, old_auth.card_id, replaces=old)
    return renewed


def reissue(
    ca: JlisCA,
    registry: CertificateRegistry,
    old: CardState,
    *,
    on: date,
    pin: str,
    password: str,
    card_info_pin: str | None = None,
    keys: KeySource | None = None,
) -> CardState:
    """A new card for the same holder (after loss, say), issued on ``on``.

    New keys, a new card expiry and new certificates, each linked to the old card's
    certificate of the same kind; the old ones are revoked as ``superseded`` unless already
    revoked (a card suspended through the hotline keeps reason ``lost``). ValueError for an
    old card without certificates or whose certificates were already replaced.
    """
    serials = _linkable(registry, old, "link a reissued card")
    card_id = secrets.token_hex(8)
    new = issue_card(
        ca, old.holder, pin=pin, password=password, issued_on=on, keys=keys,
        card_info_pin=card_info_pin, atr_profile=old.atr_profile, label=card_id,
    )  # fmt: skip
    with registry.transaction():
        suspend(registry, serials.values(), at=start_of_day(on), reason="superseded")
        _record(registry, new, card_id, replaces=serials)
    return new
