"""A test platform: the MyKey service over a real store and a real J-LIS, with steerable time.

Cardholders hold real emulated cards and prove possession through the Card API, exactly as
the reference client does; only the clock is the test's to move.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from mynahil.card import MyNumberCard, digest_info_sha256
from mynahil.card_emulator import CardState, emulated_reader
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.reference_impl.jlis import JlisCA, KeyPool, issue_card, lifecycle, random_holder
from mynahil.reference_impl.jlis.registry import CertificateRegistry, JlisServices
from mynahil.reference_impl.mykey import Challenge, IssueResult, LoginResult, MyKeyService, Purpose
from mynahil.reference_impl.store import SqlStore

PIN, PASSWORD = DEFAULT_PIN, DEFAULT_PASSWORD


class SteerableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@dataclass
class Cardholder:
    state: CardState

    def card(self) -> MyNumberCard:
        return emulated_reader(self.state)


class Platform:
    def __init__(self, store: SqlStore, ca: JlisCA, keys: KeyPool) -> None:
        self.store = store
        self.ca = ca
        self.keys = keys
        self.registry = CertificateRegistry()
        self.jlis = JlisServices(ca, self.registry)
        self.clock = SteerableClock()
        self.service = MyKeyService(store, self.jlis, clock=self.clock)
        self._rng = random.Random(3)

    def new_card(
        self,
        *,
        born: date | None = None,
        issued_on: date | None = None,
        applied_on: date | None = None,
    ) -> Cardholder:
        """A first card, issued today (the clock's) unless told, applied for a month before
        unless told, to a random adult (or one ``born`` on that day)."""
        state = lifecycle.issue(
            self.ca,
            self.registry,
            random_holder(self._rng, birth_date=born),
            pin=PIN,
            password=PASSWORD,
            issued_on=issued_on or self.clock.now.date(),
            applied_on=applied_on,
            keys=self.keys,
        )
        return Cardholder(state)

    def foreign_card(self) -> Cardholder:
        """A card from a CA the platform does not trust."""
        stranger = JlisCA.create()
        state = issue_card(
            stranger, random_holder(self._rng), pin=PIN, password=PASSWORD,
            issued_on=self.clock.now.date(), keys=self.keys,
        )  # fmt: skip
        return Cardholder(state)

    def prove(self, holder: Cardholder, purpose: Purpose) -> tuple[Challenge, bytes, bytes]:
        challenge = self.service.new_challenge(purpose)
        certificate, signature = holder.card().authenticate(PIN, challenge.nonce)
        return challenge, certificate, signature

    def issue(self, holder: Cardholder, *, chosen_id: str | None = None) -> IssueResult:
        challenge, certificate, signature = self.prove(holder, Purpose.ISSUE)
        return self.service.issue(
            challenge.challenge_id, certificate, signature, chosen_id=chosen_id
        )

    def login_card(self, holder: Cardholder) -> LoginResult:
        challenge, certificate, signature = self.prove(holder, Purpose.LOGIN)
        return self.service.login_with_card(challenge.challenge_id, certificate, signature)

    def suspend(self, holder: Cardholder) -> None:
        lifecycle.suspend(self.registry, holder.state, at=self.clock.now)

    def renew(self, holder: Cardholder) -> None:
        holder.state = lifecycle.renew(
            self.ca, self.registry, holder.state, on=self.clock.now.date(), keys=self.keys
        )

    def reissue(self, holder: Cardholder, *, applied_on: date | None = None) -> None:
        holder.state = lifecycle.reissue(
            self.ca, self.registry, holder.state, on=self.clock.now.date(),
            pin=PIN, password=PASSWORD, applied_on=applied_on, keys=self.keys,
        )  # fmt: skip

    def dump_database(self) -> str:
        """Every value in every table, as text: for "nothing secret is stored" checks."""
        from sqlalchemy import select

        from mynahil.reference_impl.store import metadata

        lines = []
        with self.store.engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    lines.append(" ".join(str(v) for v in row))
        return "\n".join(lines)


__all__ = ["Cardholder", "Platform", "SteerableClock", "digest_info_sha256"]
