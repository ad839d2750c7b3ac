"""Cards the platform trusts: issued from its J-LIS CA folder (``--ca``), with pooled keys.

The load generator signs each challenge with the card's user-authentication key directly (what
the card's JPKI applet does after the PIN), so one process can drive many holders.
"""

from __future__ import annotations

import base64
import random
import ssl
from collections import deque
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mynahil.tls import tls_failure

__all__ = ["Card", "CardDeck", "issue_cards", "platform_date"]


@dataclass(frozen=True)
class Card:
    certificate_b64: str
    key: rsa.RSAPrivateKey

    def sign(self, nonce: bytes) -> str:
        signature = self.key.sign(nonce, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


class CardDeck:
    """Hands out one card per holder, never one another holder still uses (a person does not
    reserve twice at once from two phones: the platform would rightly refuse the second,
    ``issuance_raced``); once every card was used they are dealt again (counted), the least
    recently returned first."""

    def __init__(self, cards: list[Card]) -> None:
        if not cards:
            raise ValueError("no cards")
        self.cards = cards
        self._free: deque[Card] = deque(cards)
        self.dealt = 0

    def take(self) -> Card | None:
        """A card no holder is using, or None while every card is in use."""
        if not self._free:
            return None
        self.dealt += 1
        return self._free.popleft()

    def give_back(self, card: Card) -> None:
        """The holder is done with ``card``: it may be dealt again."""
        self._free.append(card)

    @property
    def reused(self) -> int:
        return max(0, self.dealt - len(self.cards))


def platform_date(url: str, timeout: float = 10.0, verify: ssl.SSLContext | bool = True) -> date:
    """The platform's business date (``serve --as-of`` replays a campaign), from /v1/health.
    OSError saying why when the platform does not answer (or its certificate does not verify).
    """
    from mynahil.reference_impl.client import PlatformClient

    try:
        with PlatformClient.connect(url, timeout=timeout, verify=verify) as platform:
            moment = platform.business_time()
    except (httpx.HTTPError, ValueError) as exc:
        raise OSError(tls_failure(exc) or f"no platform answers there ({exc})") from None
    return moment.date()


def issue_cards(ca_folder: Path, count: int, *, issued_on: date, seed: int = 1) -> list[Card]:
    """``count`` cards from the CA in ``ca_folder``, recorded in its registry in one write."""
    from mynahil.reference_impl.jlis import CertificateRegistry, JlisCA, KeyPool, lifecycle

    ca = JlisCA.load(ca_folder)  # the platform's own CA: never create one here
    registry = CertificateRegistry(ca_folder)
    pool = KeyPool.generate(16, seed=seed)
    states = lifecycle.issue_many(
        ca, registry, count, holders=random.Random(seed), issued_on=issued_on, keys=pool
    )
    cards: list[Card] = []
    for state in states:
        assert state.auth is not None
        cards.append(
            Card(base64.b64encode(state.auth.certificate).decode(), state.auth.private_key)
        )
    return cards
