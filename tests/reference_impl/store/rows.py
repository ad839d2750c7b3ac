"""Rows the store's tests write and look for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, event

from mynahil.reference_impl.points import Outcome, StoredTransaction
from mynahil.reference_impl.points.model import TransactionKind

__all__ = ["sqlite_statements", "stored_transaction"]


def stored_transaction(key: str, transaction_id: str, at: datetime) -> StoredTransaction:
    """Operator ``op``'s decided charge of 100 yen on service ``pay``: no application."""
    return StoredTransaction(
        operator_id="op", idempotency_key=key, request_digest="0" * 64,
        transaction_id=transaction_id, service_id="pay", account_id="acct",
        kind=TransactionKind.CHARGE, amount=100, occurred_at=at, original_transaction_id=None,
        record_id=None, campaign_id=None, outcome=Outcome.NO_APPLICATION, points=0,
        net_points=0, refunded_amount=0, total_after=None, decided_at=at,
    )  # fmt: skip


@contextmanager
def sqlite_statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL SQLite runs in the transactions begun within the block (its trace callback)."""
    seen: list[str] = []

    def trace(connection: Connection) -> None:
        connection.connection.driver_connection.set_trace_callback(seen.append)  # type: ignore[union-attr]

    event.listen(engine, "begin", trace)
    try:
        yield seen
    finally:
        event.remove(engine, "begin", trace)
