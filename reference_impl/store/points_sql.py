"""The point system's half of a store transaction (see :mod:`.sql` for the locking story).

Shaped for batches: every read takes a set of keys and is one statement, every write is one
executemany, and the statements are built once (building a Core statement costs more than
SQLite takes to run it).

Concurrency: a batch locks the people it touches through their ``point_totals`` rows, in
sorted order (no deadlocks between batches); on SQLite the write lock taken by BEGIN IMMEDIATE
already serialises whole transactions. Unique keys (idempotency keys, transaction IDs,
linked accounts, one application per campaign) are the final arbiters; a clash becomes
:class:`~reference_impl.mykey.Conflict` and the service decides the batch again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from reference_impl.mykey.model import MyKeyStatus
from reference_impl.mykey.ports import Conflict
from reference_impl.points.model import (
    Application,
    LedgerEntry,
    LedgerKind,
    Operator,
    Outcome,
    PaymentService,
    StoredTransaction,
    TransactionKind,
)
from reference_impl.points.rules import CertificatePeriod

from .driver import to_driver
from .tables import (
    applications,
    certificate_bindings,
    ledger,
    linked_accounts,
    mykeys,
    operator_nonces,
    operators,
    payment_services,
    point_totals,
    point_transactions,
)

__all__ = ["PointsStatements"]

CapKey = tuple[int, str]

_T = point_transactions.c
_BY_KEY = select(point_transactions).where(
    _T.operator_id == bindparam("op"), _T.idempotency_key.in_(bindparam("keys", expanding=True))
)
_BY_TX = select(point_transactions).where(
    _T.operator_id == bindparam("op"), _T.transaction_id.in_(bindparam("ids", expanding=True))
)
_REFUNDED = (
    update(point_transactions)
    .where(_T.operator_id == bindparam("op"), _T.transaction_id == bindparam("tx"))
    .values(net_points=bindparam("net"), refunded_amount=bindparam("refunded"))
)
_TOTALS = (
    select(point_totals)
    .where(point_totals.c.person_id.in_(bindparam("people", expanding=True)))
    .order_by(point_totals.c.person_id, point_totals.c.cap_group)
)
_APPS_FOR = select(applications).where(
    applications.c.service_id.in_(bindparam("services", expanding=True)),
    applications.c.account_id.in_(bindparam("accounts", expanding=True)),
)
_CURRENT = select(mykeys.c.person_id, mykeys.c.record_id, mykeys.c.status).where(
    mykeys.c.person_id.in_(bindparam("people", expanding=True)),
    mykeys.c.status != MyKeyStatus.REVOKED.value,
)
_PEOPLE = select(mykeys.c.record_id, mykeys.c.person_id).where(
    mykeys.c.record_id.in_(bindparam("records", expanding=True))
)
_PERIODS = select(
    certificate_bindings.c.record_id,
    certificate_bindings.c.not_before,
    certificate_bindings.c.not_after,
).where(certificate_bindings.c.record_id.in_(bindparam("records", expanding=True)))
_BOUND = select(certificate_bindings.c.record_id, certificate_bindings.c.serial).where(
    certificate_bindings.c.record_id.in_(bindparam("records", expanding=True))
)
_NEXT_FEED = (
    update(operators)
    .where(operators.c.operator_id == bindparam("op"))
    .values(feed_seq=operators.c.feed_seq + 1)
    .returning(operators.c.feed_seq)
)


_DRIVER_SQL: dict[tuple[str, str, str], str] = {}


def _driver_insert(conn: Connection, table: Any, columns: Sequence[str], suffix: str = "") -> str:
    """INSERT INTO table (columns) VALUES (placeholders) [suffix], in the driver's paramstyle."""
    dialect = conn.dialect.name
    key = (dialect, table.name, ",".join(columns) + suffix)
    if key not in _DRIVER_SQL:
        mark = "?" if dialect == "sqlite" else "%s"
        # Names come from this package's own table metadata, never from input.
        names, marks = ", ".join(columns), ", ".join([mark] * len(columns))
        # Names come from this package's own table metadata, never from input.
        _DRIVER_SQL[key] = f"INSERT INTO {table.name} ({names}) VALUES ({marks}){suffix}"  # noqa: S608
    return _DRIVER_SQL[key]


def _dialect_insert(conn: Connection, table: Any) -> Any:
    build = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return build(table)


class PointsStatements:
    """Mixed into the store's unit of work: the point system's reads and writes."""

    _conn: Connection

    def _insert_all(self, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """One executemany straight to the driver (per-row parameter processing in SQLAlchemy
        cost more than SQLite's insert); a unique clash becomes Conflict."""
        if not rows:
            return
        columns = list(rows[0])
        dialect = self._conn.dialect.name
        sql = _driver_insert(self._conn, table, columns)
        # Only the time columns need converting; find them once, from the first row.
        times = [i for i, c in enumerate(columns) if isinstance(rows[0][c], datetime)]
        values = []
        for row in rows:
            value = [row[c] for c in columns]
            for i in times:
                value[i] = to_driver(value[i], dialect)
            values.append(tuple(value))
        try:
            with self._conn.begin_nested():
                self._conn.exec_driver_sql(sql, values)
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    # operators

    def add_operator(self, operator: Operator, services: Sequence[PaymentService]) -> None:
        self._insert_all(
            operators,
            [
                {
                    "operator_id": operator.operator_id,
                    "name": operator.name,
                    "public_key": operator.public_key,
                    "verify_url": operator.verify_url,
                    "feed_seq": 0,
                    "created_at": datetime.now().astimezone(),
                }
            ],
        )
        self._insert_all(
            payment_services,
            [
                {"service_id": s.service_id, "operator_id": s.operator_id, "name": s.name}
                for s in services
            ],
        )

    def operator(self, operator_id: str) -> Operator | None:
        row = self._conn.execute(
            select(operators).where(operators.c.operator_id == operator_id)
        ).one_or_none()
        if row is None:
            return None
        return Operator(row.operator_id, row.name, bytes(row.public_key), row.verify_url)

    def services(self, operator_id: str | None = None) -> list[PaymentService]:
        query = select(payment_services).order_by(payment_services.c.service_id)
        if operator_id is not None:
            query = query.where(payment_services.c.operator_id == operator_id)
        return [
            PaymentService(r.service_id, r.operator_id, r.name) for r in self._conn.execute(query)
        ]

    def remember_nonce(self, operator_id: str, nonce: str, seen_at: datetime) -> bool:
        statement = (
            _dialect_insert(self._conn, operator_nonces)
            .on_conflict_do_nothing()
            .returning(operator_nonces.c.nonce)
        )
        row = self._conn.execute(
            statement, {"operator_id": operator_id, "nonce": nonce, "seen_at": seen_at}
        ).one_or_none()
        return row is not None

    def forget_nonces(self, before: datetime) -> None:
        self._conn.execute(delete(operator_nonces).where(operator_nonces.c.seen_at < before))

    # applications

    def link_account(self, service_id: str, account_id: str, record_id: int) -> int:
        self._conn.execute(
            _dialect_insert(self._conn, linked_accounts).on_conflict_do_nothing(),
            {
                "service_id": service_id,
                "account_id": account_id,
                "record_id": record_id,
                "linked_at": datetime.now().astimezone(),
            },
        )
        return int(
            self._conn.execute(
                select(linked_accounts.c.record_id).where(
                    linked_accounts.c.service_id == service_id,
                    linked_accounts.c.account_id == account_id,
                )
            ).scalar_one()
        )

    def application(self, person_id: int, campaign_id: str) -> Application | None:
        row = self._conn.execute(
            select(applications).where(
                applications.c.person_id == person_id, applications.c.campaign_id == campaign_id
            )
        ).one_or_none()
        return _application(row) if row is not None else None

    def add_application(self, application: Application) -> Application:
        seq = self._conn.execute(_NEXT_FEED, {"op": application.operator_id}).scalar_one()
        statement = (
            _dialect_insert(self._conn, applications)
            .on_conflict_do_nothing()
            .returning(applications.c.application_id)
        )
        new_id = self._conn.execute(
            statement,
            {
                "campaign_id": application.campaign_id,
                "record_id": application.record_id,
                "service_id": application.service_id,
                "account_id": application.account_id,
                "operator_id": application.operator_id,
                "applied_at": application.applied_at,
                "card_applied_on": application.card_applied_on,
                "feed_seq": seq,
                "person_id": application.person_id,
            },
        ).scalar_one_or_none()
        if new_id is None:
            raise Conflict(f"person {application.person_id} applied for {application.campaign_id}")
        return replace(application, application_id=int(new_id), feed_seq=int(seq))

    def applications_for_accounts(
        self, accounts: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Application]]:
        found: dict[tuple[str, str], list[Application]] = {}
        if not accounts:
            return found
        rows = self._conn.execute(
            _APPS_FOR,
            {
                "services": sorted({s for s, _ in accounts}),
                "accounts": sorted({a for _, a in accounts}),
            },
        )
        for row in rows:
            key = (row.service_id, row.account_id)
            if key in accounts:
                found.setdefault(key, []).append(_application(row))
        for applied in found.values():
            applied.sort(key=lambda a: a.applied_at)
        return found

    def applications_feed(self, operator_id: str, after: int, limit: int) -> list[Application]:
        rows = self._conn.execute(
            select(applications)
            .where(applications.c.operator_id == operator_id, applications.c.feed_seq > after)
            .order_by(applications.c.feed_seq)
            .limit(limit)
        )
        return [_application(r) for r in rows]

    def current_records(self, person_ids: Collection[int]) -> dict[int, tuple[int, MyKeyStatus]]:
        if not person_ids:
            return {}
        query = _CURRENT
        if self._conn.dialect.name == "postgresql":
            # FOR SHARE: a revocation or a stop (FOR UPDATE on the record) commits wholly
            # before or after this batch, never in the middle of its decisions.
            query = query.with_for_update(read=True)
        rows = self._conn.execute(query, {"people": sorted(person_ids)})
        return {int(r.person_id): (int(r.record_id), MyKeyStatus(r.status)) for r in rows}

    def people_of(self, record_ids: Collection[int]) -> dict[int, int]:
        if not record_ids:
            return {}
        rows = self._conn.execute(_PEOPLE, {"records": sorted(record_ids)})
        return {int(r.record_id): int(r.person_id) for r in rows if r.person_id is not None}

    def certificate_periods(
        self, record_ids: Collection[int]
    ) -> dict[int, list[CertificatePeriod | None]]:
        found: dict[int, list[CertificatePeriod | None]] = {}
        if not record_ids:
            return found
        for row in self._conn.execute(_PERIODS, {"records": sorted(record_ids)}):
            period = (
                CertificatePeriod(row.not_before, row.not_after)
                if row.not_before is not None and row.not_after is not None
                else None
            )
            found.setdefault(int(row.record_id), []).append(period)
        return found

    def bound_serials(self, record_ids: Collection[int]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        if record_ids:
            for row in self._conn.execute(_BOUND, {"records": sorted(record_ids)}):
                found.setdefault(int(row.record_id), []).append(int(row.serial))
        return found

    # transactions and ledger

    def lock_totals(self, keys: Iterable[CapKey]) -> dict[CapKey, int]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        # Create missing rows first (sorted: concurrent batches claim them in one order).
        self._conn.exec_driver_sql(
            _driver_insert(
                self._conn, point_totals, ("person_id", "cap_group", "points"),
                " ON CONFLICT DO NOTHING",
            ),
            [(r, g, 0) for r, g in wanted],
        )  # fmt: skip
        query = _TOTALS
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        rows = self._conn.execute(query, {"people": sorted({p for p, _ in wanted})})
        held = {(int(r.person_id), str(r.cap_group)): int(r.points) for r in rows}
        return {key: held.get(key, 0) for key in wanted}

    def set_totals(self, totals: Mapping[CapKey, int]) -> None:
        if totals:
            mark = "?" if self._conn.dialect.name == "sqlite" else "%s"
            sql = (
                f"UPDATE point_totals SET points={mark} WHERE person_id={mark} AND cap_group={mark}"  # noqa: S608
            )
            self._conn.exec_driver_sql(sql, [(p, r, g) for (r, g), p in sorted(totals.items())])

    def transactions_by_key(
        self, operator_id: str, keys: Collection[str]
    ) -> dict[str, StoredTransaction]:
        if not keys:
            return {}
        rows = self._conn.execute(_BY_KEY, {"op": operator_id, "keys": list(keys)})
        return {r.idempotency_key: _transaction(r) for r in rows}

    def transactions_by_id(
        self, operator_id: str, transaction_ids: Collection[str]
    ) -> dict[str, StoredTransaction]:
        if not transaction_ids:
            return {}
        rows = self._conn.execute(_BY_TX, {"op": operator_id, "ids": list(transaction_ids)})
        return {r.transaction_id: _transaction(r) for r in rows}

    def transactions_of(
        self, operator_id: str, start: datetime, end: datetime
    ) -> list[StoredTransaction]:
        rows = self._conn.execute(
            select(point_transactions)
            .where(_T.operator_id == operator_id, _T.occurred_at >= start, _T.occurred_at < end)
            .order_by(_T.occurred_at, _T.transaction_id)
        )
        return [_transaction(r) for r in rows]

    def add_transactions(self, rows: Sequence[StoredTransaction]) -> None:
        self._insert_all(
            point_transactions,
            [
                {
                    "operator_id": t.operator_id,
                    "idempotency_key": t.idempotency_key,
                    "request_digest": t.request_digest,
                    "transaction_id": t.transaction_id,
                    "service_id": t.service_id,
                    "account_id": t.account_id,
                    "kind": t.kind.value,
                    "amount": t.amount,
                    "occurred_at": t.occurred_at,
                    "original_transaction_id": t.original_transaction_id,
                    "record_id": t.record_id,
                    "campaign_id": t.campaign_id,
                    "outcome": t.outcome.value,
                    "points": t.points,
                    "net_points": t.net_points,
                    "refunded_amount": t.refunded_amount,
                    "total_after": t.total_after,
                    "decided_at": t.decided_at,
                }
                for t in rows
            ],
        )

    def update_refunded(self, operator_id: str, changes: Mapping[str, tuple[int, int]]) -> None:
        if changes:
            self._conn.execute(
                _REFUNDED,
                [
                    {"op": operator_id, "tx": tx, "net": net, "refunded": refunded}
                    for tx, (net, refunded) in sorted(changes.items())
                ],
            )

    def append_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        if entries:
            self._insert_all(
                ledger,
                [
                    {
                        "record_id": e.record_id,
                        "cap_group": e.cap_group,
                        "campaign_id": e.campaign_id,
                        "kind": e.kind.value,
                        "points": e.points,
                        "operator_id": e.operator_id,
                        "service_id": e.service_id,
                        "account_id": e.account_id,
                        "transaction_id": e.transaction_id,
                        "at": e.at,
                    }
                    for e in entries
                ],
            )

    def ledger_entries(
        self,
        *,
        operator_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[LedgerEntry]:
        conditions = []
        if operator_id is not None:
            conditions.append(ledger.c.operator_id == operator_id)
        if start is not None:
            conditions.append(ledger.c.at >= start)
        if end is not None:
            conditions.append(ledger.c.at < end)
        query = select(ledger).order_by(ledger.c.entry_id)
        if conditions:
            query = query.where(and_(*conditions))
        return [
            LedgerEntry(
                record_id=r.record_id,
                cap_group=r.cap_group,
                campaign_id=r.campaign_id,
                kind=LedgerKind(r.kind),
                points=r.points,
                operator_id=r.operator_id,
                service_id=r.service_id,
                account_id=r.account_id,
                transaction_id=r.transaction_id,
                at=r.at,
                entry_id=r.entry_id,
            )
            for r in self._conn.execute(query)
        ]

    def all_totals(self) -> dict[CapKey, int]:
        rows = self._conn.execute(select(point_totals))
        return {(int(r.person_id), str(r.cap_group)): int(r.points) for r in rows}

    def all_transactions(self) -> list[StoredTransaction]:
        rows = self._conn.execute(select(point_transactions))
        return [_transaction(r) for r in rows]

    def points_of(self, record_id: int) -> dict[str, int]:
        rows = self._conn.execute(
            select(ledger.c.cap_group, func.sum(ledger.c.points).label("points"))
            .where(ledger.c.record_id == record_id)
            .group_by(ledger.c.cap_group)
        )
        return {str(r.cap_group): int(r.points) for r in rows}

    def totals_of(self, person_id: int) -> dict[str, int]:
        rows = self._conn.execute(select(point_totals).where(point_totals.c.person_id == person_id))
        return {str(r.cap_group): int(r.points) for r in rows}

    def record_people(self) -> dict[int, int]:
        """Every MyKey record's person (the ledger invariants sum per person)."""
        rows = self._conn.execute(select(mykeys.c.record_id, mykeys.c.person_id))
        return {int(r.record_id): int(r.person_id) for r in rows if r.person_id is not None}


def _application(row: Row[Any]) -> Application:
    return Application(
        application_id=int(row.application_id),
        campaign_id=row.campaign_id,
        record_id=int(row.record_id),
        service_id=row.service_id,
        account_id=row.account_id,
        operator_id=row.operator_id,
        applied_at=row.applied_at,
        card_applied_on=row.card_applied_on,
        feed_seq=int(row.feed_seq),
        person_id=int(row.person_id),
    )


def _transaction(row: Row[Any]) -> StoredTransaction:
    return StoredTransaction(
        operator_id=row.operator_id,
        idempotency_key=row.idempotency_key,
        request_digest=row.request_digest,
        transaction_id=row.transaction_id,
        service_id=row.service_id,
        account_id=row.account_id,
        kind=TransactionKind(row.kind),
        amount=int(row.amount),
        occurred_at=row.occurred_at,
        original_transaction_id=row.original_transaction_id,
        record_id=row.record_id,
        campaign_id=row.campaign_id,
        outcome=Outcome(row.outcome),
        points=int(row.points),
        net_points=int(row.net_points),
        refunded_amount=int(row.refunded_amount),
        total_after=row.total_after,
        decided_at=row.decided_at,
    )
