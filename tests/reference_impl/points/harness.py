"""A whole point system per test: the MyKey platform, the point service, one sample operator.

Time is the test's: the clock starts in round 1's application period (2020-08-20 JST), cards
are issued a month before, and reports carry whatever transaction times a test gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mynahil.reference_impl.gateways import LocalAccountCheck, LocalRegistries
from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.mykey import Purpose
from mynahil.reference_impl.operator import OperatorBooks
from mynahil.reference_impl.points import (
    Application,
    CardProof,
    Decision,
    Operator,
    PaymentService,
    PointsService,
    Report,
    Scheme,
    TransactionKind,
    load_scheme,
)
from mynahil.reference_impl.points.signing import Signer, public_key_bytes
from mynahil.reference_impl.registries import RegistryKind, open_registries
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.mykey.platform import Cardholder, Platform

OPERATOR = "paypay-like"
SERVICE = "qr-pay"
START = datetime(2020, 8, 20, 3, 0, tzinfo=UTC)  # 12:00 JST


@dataclass
class Person:
    holder: Cardholder
    mykey_id: str
    account_id: str
    security_code: str


class PointsPlatform(Platform):
    def __init__(
        self, store: SqlStore, ca: JlisCA, keys: KeyPool, scheme: Scheme | None = None
    ) -> None:
        super().__init__(store, ca, keys)
        self.clock.now = START - timedelta(days=30)  # cards issued a month before
        self.books = OperatorBooks(OPERATOR, SERVICE)
        self.operator_key = Ed25519PrivateKey.generate()
        self.signer = Signer(OPERATOR, self.operator_key)
        self.registries = open_registries(None)  # the registries beside J-LIS, in memory
        self.points = PointsService(
            store, self.service, scheme or load_scheme(), LocalAccountCheck({OPERATOR: self.books}),
            clock=self.clock, registrations=LocalRegistries(self.registries),
        )  # fmt: skip
        self.points.register_operator(
            Operator(OPERATOR, "QR Pay Inc.", public_key_bytes(self.operator_key)),
            [PaymentService(SERVICE, OPERATOR, "QR Pay")],
        )
        self._serial = 0

    def card_proof(self, holder: Cardholder) -> CardProof:
        challenge, certificate, signature = self.prove(holder, Purpose.LOGIN)
        return CardProof(challenge.challenge_id, certificate, signature)

    def person(
        self, *, apply: bool = True, born: date | None = None, issued_on: date | None = None
    ) -> Person:
        """A card holder with a MyKey ID and an account at the operator (applied, by default).

        The card is issued a month before the campaign, or on ``issued_on``, to a random adult
        or to one ``born`` on that day (their certificate runs to the 5th birthday after).
        """
        saved = self.clock.now
        self.clock.now = START - timedelta(days=30)
        holder = self.new_card(born=born, issued_on=issued_on)
        self.clock.now = saved
        mykey_id = self.issue(holder).mykey_id
        account = self.books.open_account("holder")
        person = Person(holder, mykey_id, account.account_id, account.security_code)
        if apply:
            self.apply(person)
        return person

    def apply(self, person: Person, **overrides: str) -> Application:
        return self.points.apply(
            self.card_proof(person.holder),
            overrides.get("service_id", SERVICE),
            overrides.get("account_id", person.account_id),
            overrides.get("security_code", person.security_code),
            overrides.get("campaign_id"),
        )

    def report(
        self,
        person: Person,
        amount: int,
        *,
        at: datetime | None = None,
        kind: TransactionKind = TransactionKind.CHARGE,
        refund_of: str | None = None,
        key: str | None = None,
        transaction_id: str | None = None,
    ) -> Decision:
        self._serial += 1
        tx = transaction_id or f"tx-{self._serial}"
        report = Report(
            idempotency_key=key or f"key-{tx}",
            transaction_id=tx,
            service_id=SERVICE,
            account_id=person.account_id,
            kind=kind,
            amount=amount,
            occurred_at=at or self.clock.now,
            original_transaction_id=refund_of,
        )
        return self.points.report(OPERATOR, [report])[0]

    def register(self, person: Person, kind: str, on: date) -> None:
        """The person registers with the registry of ``kind`` (as J-LIS names them)."""
        auth = person.holder.state.auth
        assert auth is not None
        serial = int(x509.load_der_x509_certificate(auth.certificate).serial_number)
        facts = self.jlis.holder_facts(serial)
        assert facts is not None
        self.registries[RegistryKind(kind)].register(facts.person_ref, on)

    def advance_to(self, moment: datetime) -> None:
        self.clock.now = moment
