"""What the point system needs from outside: the store (batch-shaped, for throughput) and the
operators' own endpoints."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Protocol

from mynahil.reference_impl.mykey.model import MyKeyStatus
from mynahil.reference_impl.mykey.ports import UnitOfWork

from .model import Application, LedgerEntry, Operator, PaymentService, StoredTransaction
from .rules import CertificatePeriod

__all__ = [
    "AccountCheck",
    "CapKey",
    "OperatorUnreachable",
    "PointsStore",
    "PointsUnitOfWork",
    "Registrations",
    "RegistryUnreachable",
]

CapKey = tuple[int, str]  # (person, cap group): a person's cap, whichever MyKey ID earned


class PointsUnitOfWork(UnitOfWork, Protocol):
    """One transaction over the MyKey records and the point system together."""

    # operators
    def add_operator(self, operator: Operator, services: Sequence[PaymentService]) -> None:
        """Raises Conflict if the operator or a service ID exists."""
        ...

    def operator(self, operator_id: str) -> Operator | None: ...
    def services(self, operator_id: str | None = None) -> list[PaymentService]: ...
    def remember_nonce(self, operator_id: str, nonce: str, seen_at: datetime) -> bool:
        """False if this operator used this nonce before (a replay)."""
        ...

    def forget_nonces(self, before: datetime) -> None: ...

    # applications
    def link_account(self, service_id: str, account_id: str, record_id: int) -> int:
        """Link a payment account to a MyKey record; returns the record it is linked to."""
        ...

    def application(self, person_id: int, campaign_id: str) -> Application | None:
        """The person's application for a campaign (made with any of their MyKey IDs)."""
        ...

    def add_application(self, application: Application) -> Application:
        """Store it with its ID and the operator's next feed position; Conflict if one exists."""
        ...

    def applications_for_accounts(
        self, accounts: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Application]]: ...
    def applications_feed(self, operator_id: str, after: int, limit: int) -> list[Application]: ...
    def current_records(self, person_ids: Collection[int]) -> dict[int, tuple[int, MyKeyStatus]]:
        """Each person's MyKey record that is not revoked, with its status (held against a
        concurrent revocation until commit); a person without one is absent."""
        ...

    def people_of(self, record_ids: Collection[int]) -> dict[int, int]:
        """The person of each MyKey record."""
        ...

    def certificate_periods(
        self, record_ids: Collection[int]
    ) -> dict[int, list[CertificatePeriod | None]]:
        """The validity of each record's bound certificates (None: not recorded)."""
        ...

    def bound_serials(self, record_ids: Collection[int]) -> dict[int, list[int]]:
        """The serials of the certificates bound to each record."""
        ...

    # transactions and ledger
    def lock_totals(self, keys: Iterable[CapKey]) -> dict[CapKey, int]:
        """Each person's points per cap group, locked until commit (0 if none yet)."""
        ...

    def set_totals(self, totals: Mapping[CapKey, int]) -> None: ...
    def transactions_by_key(
        self, operator_id: str, keys: Collection[str]
    ) -> dict[str, StoredTransaction]: ...
    def transactions_by_id(
        self, operator_id: str, transaction_ids: Collection[str]
    ) -> dict[str, StoredTransaction]:
        """Granting transactions (refusals are not transactions of record) by operator's ID."""
        ...

    def add_transactions(self, rows: Sequence[StoredTransaction]) -> None:
        """Raises Conflict if an idempotency key or a granting transaction ID exists."""
        ...

    def update_refunded(self, operator_id: str, changes: Mapping[str, tuple[int, int]]) -> None:
        """Per transaction ID: (net points, refunded amount) after this batch's refunds."""
        ...

    def append_ledger(self, entries: Sequence[LedgerEntry]) -> None: ...
    def ledger_entries(
        self,
        *,
        operator_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[LedgerEntry]: ...
    def transactions_of(
        self, operator_id: str, start: datetime, end: datetime
    ) -> list[StoredTransaction]:
        """An operator's reports whose transactions happened in [start, end)."""
        ...

    def all_transactions(self) -> list[StoredTransaction]: ...
    def all_totals(self) -> dict[CapKey, int]: ...
    def record_people(self) -> dict[int, int]:
        """Every MyKey record's person."""
        ...

    def points_of(self, record_id: int) -> dict[str, int]:
        """What one MyKey ID holds per cap group (its ledger entries' sum)."""
        ...

    def totals_of(self, person_id: int) -> dict[str, int]:
        """What a person was granted per cap group, over all their MyKey IDs."""
        ...


class PointsStore(Protocol):
    def transaction(self) -> AbstractContextManager[PointsUnitOfWork]: ...


class OperatorUnreachable(Exception):
    """The operator's endpoint did not answer (the holder may retry later)."""


class AccountCheck(Protocol):
    """The operator-side contract the platform calls before accepting an application."""

    def verify_account(
        self, operator: Operator, service_id: str, account_id: str, security_code: str
    ) -> bool:
        """True when the account exists at the operator and the security code is its own.

        Raises :class:`OperatorUnreachable` when the operator cannot answer.
        """
        ...


class RegistryUnreachable(Exception):
    """The registry holding a kind of registration did not answer."""


class Registrations(Protocol):
    """The systems that hold registrations (health-insurance use, public-fund account), as
    the platform asks them when a bonus is claimed."""

    def registered_on(self, kind: str, person_ref: str) -> date | None:
        """The day the person's registration of ``kind`` was made, or None (none, or a kind
        no registry here holds). Raises :class:`RegistryUnreachable` when it cannot tell."""
        ...
