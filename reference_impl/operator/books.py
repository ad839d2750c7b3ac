"""The sample operator's own side: its users' accounts, security codes and transaction books.

Kept apart from the platform on purpose: reconciliation compares these books with the
platform's, as a real operator would. In memory; a sample, not a bank.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime

from mynahil.reference_impl.points import Decision, Report, TransactionKind
from mynahil.reference_impl.points.settlement import OperatorRecord, month_bounds

__all__ = ["Account", "BookedTransaction", "OperatorBooks"]

_DIGITS = "0123456789"


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str  # the payment service ID the holder gives the platform
    security_code: str
    holder_name: str


@dataclass
class BookedTransaction:
    report: Report
    points: int | None = None  # what the platform answered, once it has


@dataclass
class OperatorBooks:
    operator_id: str
    service_id: str
    accounts: dict[str, Account] = field(default_factory=dict)
    transactions: dict[str, BookedTransaction] = field(default_factory=dict)
    linked: dict[str, int] = field(default_factory=dict)  # account -> application feed_seq
    feed_cursor: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def open_account(self, holder_name: str) -> Account:
        """Registration with the service: a payment service ID and a security code."""
        with self._lock:
            while True:
                account_id = "".join(secrets.choice(_DIGITS) for _ in range(12))
                if account_id not in self.accounts:
                    break
            code = "".join(secrets.choice(_DIGITS) for _ in range(6))
            account = Account(account_id, code, holder_name)
            self.accounts[account_id] = account
            return account

    def verify(self, service_id: str, account_id: str, security_code: str) -> bool:
        account = self.accounts.get(account_id)
        if service_id != self.service_id or account is None:
            return False
        return hmac.compare_digest(account.security_code, security_code)

    def book(
        self,
        account_id: str,
        amount: int,
        at: datetime,
        *,
        kind: TransactionKind = TransactionKind.CHARGE,
        refund_of: str | None = None,
    ) -> Report:
        """Record a charge, purchase or refund in the books; the report to send the platform."""
        transaction_id = f"{self.operator_id}-{secrets.token_hex(8)}"
        report = Report(
            idempotency_key=f"k-{transaction_id}",
            transaction_id=transaction_id,
            service_id=self.service_id,
            account_id=account_id,
            kind=kind,
            amount=amount,
            occurred_at=at,
            original_transaction_id=refund_of,
        )
        with self._lock:
            self.transactions[transaction_id] = BookedTransaction(report)
        return report

    def answered(self, decisions: list[Decision]) -> None:
        with self._lock:
            for decision in decisions:
                booked = self.transactions.get(decision.transaction_id)
                if booked is not None:
                    booked.points = decision.points

    def pending(self, limit: int = 5000) -> list[Report]:
        """Reports the platform has not answered yet, oldest first (to send again)."""
        with self._lock:
            waiting = [t.report for t in self.transactions.values() if t.points is None]
        return waiting[:limit]

    def balance(self, account_id: str) -> int:
        """Points credited to an account: what the platform granted, less what it took back."""
        with self._lock:
            return sum(
                t.points or 0
                for t in self.transactions.values()
                if t.report.account_id == account_id
            )

    def records(self, month: str) -> list[OperatorRecord]:
        """The books for a month, in the CSV shape reconciliation reads."""
        start, end = month_bounds(month)
        return [
            OperatorRecord(t.report.transaction_id, t.report.kind.value, t.report.amount,
                           t.points or 0)
            for t in self.transactions.values()
            if start <= t.report.occurred_at < end
        ]  # fmt: skip
