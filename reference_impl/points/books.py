"""The point system's books: operators and their services, each month's settlement, the
reconciliation of an operator's records, and the ledger's invariants.

What these need is the store, the campaigns and a clock for the audit record: no J-LIS, no
MyKey service, no card. So the platform staff's commands (`mynahil operator register`,
`points settle`, `points check`) open the database alone, and
:class:`~.service.PointsService` (the holders' and operators' live flows) builds on this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from mynahil.reference_impl.audited import audited_operation
from mynahil.reference_impl.mykey.ports import Conflict

from .campaign import Scheme
from .errors import PointsError
from .model import Operator, Outcome, PaymentService
from .ports import PointsStore, PointsUnitOfWork
from .settlement import (
    Difference,
    OperatorRecord,
    Settlement,
    month_bounds,
    reconcile,
    settle,
    violations,
)

__all__ = ["Clock", "Operation", "PointsBooks"]

Clock = Callable[[], datetime]
Operation = AbstractContextManager[tuple[PointsUnitOfWork, datetime, dict[str, Any]]]


class PointsBooks:
    """The books over ``store``; ``clock`` dates the audit records (the business clock)."""

    def __init__(self, store: PointsStore, scheme: Scheme, *, clock: Clock | None = None) -> None:
        self.store = store
        self.scheme = scheme
        self.clock: Clock = clock or (lambda: datetime.now(UTC))

    def _operation(self, action: str) -> Operation:
        """The point system's audited transaction: one audit record, success or refusal."""
        return audited_operation(self.store, action, self.clock())

    # --- operators -------------------------------------------------------------------------

    def register_operator(self, operator: Operator, services: Sequence[PaymentService]) -> None:
        for service in services:
            if service.operator_id != operator.operator_id:
                raise PointsError("invalid_request", f"{service.service_id} is not this operator's")
        with self._operation("operator_register") as (uow, _now, note):
            note["details"].update(
                operator=operator.operator_id, services=[s.service_id for s in services]
            )
            try:
                uow.add_operator(operator, services)
            except Conflict:
                raise PointsError(
                    "operator_exists",
                    f"operator {operator.operator_id} or one of its service IDs exists already",
                ) from None

    # --- settlement, reconciliation, invariants -----------------------------------------------

    def settlement(self, operator_id: str, month: str) -> Settlement:
        try:
            start, end = month_bounds(month)
        except ValueError as exc:
            raise PointsError("invalid_request", str(exc)) from None
        with self.store.transaction() as uow:
            if uow.operator(operator_id) is None:
                raise PointsError("operator_unknown", f"no operator {operator_id!r}")
            entries = uow.ledger_entries(operator_id=operator_id, start=start, end=end)
        return settle(operator_id, month, entries)

    def reconcile(
        self, operator_id: str, month: str, records: Sequence[OperatorRecord]
    ) -> list[Difference]:
        """The operator's books for a month against the platform's decided transactions."""
        try:
            start, end = month_bounds(month)
        except ValueError as exc:
            raise PointsError("invalid_request", str(exc)) from None
        with self.store.transaction() as uow:
            ours = [
                t
                for t in uow.transactions_of(operator_id, start, end)
                if t.outcome.grants or t.outcome in _RECORDED_REFUSALS
            ]
        return reconcile(records, ours)

    def violations(self) -> list[str]:
        """The ledger's invariants, checked over everything the store holds."""
        with self.store.transaction() as uow:
            return violations(
                self.scheme,
                uow.ledger_entries(),
                uow.all_totals(),
                uow.all_transactions(),
                uow.record_people(),
            )


# Refused reports are still the operator's transactions (with 0 points): they reconcile too.
_RECORDED_REFUSALS = frozenset(
    {
        Outcome.NO_APPLICATION,
        Outcome.BEFORE_APPLICATION,
        Outcome.OUTSIDE_CAMPAIGN,
        Outcome.MYKEY_REVOKED,
        Outcome.MYKEY_ID_STOPPED,
        Outcome.CERTIFICATE_EXPIRED,
        Outcome.ORIGINAL_UNKNOWN,
        Outcome.REFUND_EXCEEDS_ORIGINAL,
        Outcome.REFUND_ACCOUNT_MISMATCH,
    }
)
