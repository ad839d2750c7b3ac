"""The point system's half of a store transaction (see :mod:`.sql` for the locking story).

Shaped for batches: every read takes a set of keys and is one statement, every write is one
executemany. Every statement is SQLAlchemy Core, compiled once per dialect and run on the
driver (:class:`~.driver.DriverStatement`); a set of keys is ONE array parameter
(:func:`_one_of`: ``IN (SELECT value FROM json_each(?))`` on SQLite, ``= ANY(?)`` on
PostgreSQL), so a batch's look-ups are not rendered anew for each number of keys.

Concurrency: a batch locks the people it touches through their ``point_totals`` rows, in
sorted order (no deadlocks between batches); on SQLite the write lock taken by BEGIN IMMEDIATE
already serialises whole transactions. Unique keys (idempotency keys, transaction IDs,
linked accounts, one application per campaign) are the final arbiters; a clash becomes
:class:`~mynahil.reference_impl.mykey.Conflict` and the service decides the batch again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from msgspec.structs import replace
from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from mynahil.reference_impl.mykey.model import MyKeyStatus
from mynahil.reference_impl.mykey.ports import Conflict
from mynahil.reference_impl.points.model import (
    Application,
    LedgerEntry,
    LedgerKind,
    Operator,
    Outcome,
    PaymentService,
    StoredTransaction,
    TransactionKind,
)
from mynahil.reference_impl.points.rules import CertificatePeriod

from .driver import (
    DriverStatement,
    any_of,
    dialect_insert,
    each_key,
    insert_new,
    lookup_keys,
    unnest_rows,
)
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
Row = Mapping[str, Any]


def _one_of(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the values of the array parameter ``name`` (see :func:`_array`)."""
    if dialect == "postgresql":
        return any_of(column, name)
    values = func.json_each(bindparam(name)).table_valued("value")
    return column.in_(select(values.c.value))


def _array(conn: Connection, values: Iterable[Any]) -> Any:
    """Values for one array parameter: a JSON array for SQLite's ``json_each``, a list (an
    SQL array) for PostgreSQL."""
    listed = sorted(values)
    return listed if conn.dialect.name == "postgresql" else json.dumps(listed)


def _insert_rows(table: Table, names: Sequence[str], *, skip_clashes: bool = False) -> Any:
    """INSERT of many rows: bound per row on SQLite (one executemany), from arrays on
    PostgreSQL (see :func:`.driver.unnest_rows`)."""

    def build(dialect: str) -> Any:
        if dialect == "postgresql":
            rows = unnest_rows({name: table.c[name].type for name in names})
            statement = dialect_insert(dialect, table).from_select(
                list(names), select(*(rows.c[name] for name in names))
            )
        else:
            statement = dialect_insert(dialect, table).values(
                {name: bindparam(name) for name in names}
            )
        return statement.on_conflict_do_nothing() if skip_clashes else statement

    return DriverStatement(build)


def _locked(statement: Select[Any], dialect: str, *, read: bool = False) -> Select[Any]:
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the whole database."""
    return statement.with_for_update(read=read) if dialect == "postgresql" else statement


_T = point_transactions.c
_OPERATOR = DriverStatement(select(operators).where(operators.c.operator_id == bindparam("op")))
_ALL_SERVICES = DriverStatement(select(payment_services).order_by(payment_services.c.service_id))
_SERVICES_OF = DriverStatement(
    select(payment_services)
    .where(payment_services.c.operator_id == bindparam("op"))
    .order_by(payment_services.c.service_id)
)
_ADD_OPERATOR = _insert_rows(operators, tuple(c.name for c in operators.c))
_ADD_SERVICES = _insert_rows(payment_services, tuple(c.name for c in payment_services.c))
_NEW_NONCE = insert_new(operator_nonces, ("operator_id", "nonce", "seen_at"))
_FORGET_NONCES = DriverStatement(
    delete(operator_nonces).where(operator_nonces.c.seen_at < bindparam("before"))
)
_LINK = DriverStatement(
    lambda dialect: (
        dialect_insert(dialect, linked_accounts)
        .values({c.name: bindparam(c.name) for c in linked_accounts.c})
        .on_conflict_do_nothing()
    )
)
_LINKED = DriverStatement(
    select(linked_accounts.c.record_id).where(
        linked_accounts.c.service_id == bindparam("service"),
        linked_accounts.c.account_id == bindparam("account"),
    )
)
_APPLICATION = DriverStatement(
    select(applications).where(
        applications.c.person_id == bindparam("person"),
        applications.c.campaign_id == bindparam("campaign"),
    )
)
_NEXT_FEED = DriverStatement(
    update(operators)
    .where(operators.c.operator_id == bindparam("op"))
    .values(feed_seq=operators.c.feed_seq + 1)
    .returning(operators.c.feed_seq)
)
_APPLICATION_COLUMNS = tuple(c.name for c in applications.c if c.name != "application_id")
_ADD_APPLICATION = insert_new(applications, _APPLICATION_COLUMNS)


def _applications_for(dialect: str) -> Any:
    """The applications of payment accounts. SQLite: of any of the services and any of the
    accounts given (the caller keeps its pairs). PostgreSQL: of each (service, account) pair,
    given as two arrays of one length, an index probe each (:func:`.driver.each_key`)."""
    apps = applications.c
    if dialect != "postgresql":
        return select(applications).where(
            _one_of(apps.service_id, "services", dialect),
            _one_of(apps.account_id, "accounts", dialect),
        )
    pairs = lookup_keys({"services": apps.service_id, "accounts": apps.account_id})
    return each_key(
        pairs,
        select(applications).where(
            apps.service_id == pairs.c.services, apps.account_id == pairs.c.accounts
        ),
    )


_APPS_FOR = DriverStatement(_applications_for)
_FEED = DriverStatement(
    select(applications)
    .where(
        applications.c.operator_id == bindparam("op"), applications.c.feed_seq > bindparam("after")
    )
    .order_by(applications.c.feed_seq)
    .limit(bindparam("limit"))
)
# FOR SHARE on PostgreSQL: a revocation or a stop (FOR UPDATE on the record) commits wholly
# before or after a batch, never in the middle of its decisions.
_CURRENT = DriverStatement(
    lambda dialect: _locked(
        select(mykeys.c.person_id, mykeys.c.record_id, mykeys.c.status).where(
            _one_of(mykeys.c.person_id, "people", dialect),
            mykeys.c.status != MyKeyStatus.REVOKED.value,
        ),
        dialect,
        read=True,
    )
)
_PEOPLE = DriverStatement(
    lambda dialect: select(mykeys.c.record_id, mykeys.c.person_id).where(
        _one_of(mykeys.c.record_id, "records", dialect)
    )
)
_PERIODS = DriverStatement(
    lambda dialect: select(
        certificate_bindings.c.record_id,
        certificate_bindings.c.not_before,
        certificate_bindings.c.not_after,
    ).where(_one_of(certificate_bindings.c.record_id, "records", dialect))
)
_BOUND = DriverStatement(
    lambda dialect: select(certificate_bindings.c.record_id, certificate_bindings.c.serial).where(
        _one_of(certificate_bindings.c.record_id, "records", dialect)
    )
)
_ADD_TOTALS = _insert_rows(point_totals, ("person_id", "cap_group", "points"), skip_clashes=True)
_TOTALS = DriverStatement(
    lambda dialect: _locked(
        select(point_totals)
        .where(_one_of(point_totals.c.person_id, "people", dialect))
        .order_by(point_totals.c.person_id, point_totals.c.cap_group),
        dialect,
    )
)


def _set_totals(dialect: str) -> Any:
    """UPDATE of many totals: per row on SQLite, from arrays on PostgreSQL."""
    if dialect == "postgresql":
        rows = unnest_rows({"person": Integer(), "group": String(), "held": Integer()})
        return (
            update(point_totals)
            .where(
                point_totals.c.person_id == rows.c.person,
                point_totals.c.cap_group == rows.c.group,
            )
            .values(points=rows.c.held)
        )
    return (
        update(point_totals)
        .where(
            point_totals.c.person_id == bindparam("person"),
            point_totals.c.cap_group == bindparam("group"),
        )
        .values(points=bindparam("held"))
    )


_SET_TOTALS = DriverStatement(_set_totals)


def _operators_transactions(column: ColumnElement[Any], name: str, dialect: str) -> Any:
    """The operator ``op``'s transactions whose ``column`` (unique per operator) is one of the
    array parameter ``name``.

    PostgreSQL: one index probe per key (:func:`.driver.each_key`). With ``operator_id = :op
    AND column = ANY(:keys)`` a table whose statistics lagged behind its growth was read whole
    for every batch: the planner took the operator's rows for few and filtered them all (8 ms
    a look-up at 45,000 rows and growing; 1.5 ms a probe per key, at any size).
    """
    operators = _T.operator_id == bindparam("op")
    if dialect != "postgresql":
        return select(point_transactions).where(operators, _one_of(column, name, dialect))
    keys = lookup_keys({name: column})
    return each_key(keys, select(point_transactions).where(operators, column == keys.c[name]))


_BY_KEY = DriverStatement(
    lambda dialect: _operators_transactions(_T.idempotency_key, "keys", dialect)
)
_BY_TX = DriverStatement(lambda dialect: _operators_transactions(_T.transaction_id, "ids", dialect))
_ADD_TRANSACTIONS = _insert_rows(point_transactions, tuple(c.name for c in point_transactions.c))
_REFUNDED = DriverStatement(
    update(point_transactions)
    .where(_T.operator_id == bindparam("op"), _T.transaction_id == bindparam("tx"))
    .values(net_points=bindparam("net"), refunded_amount=bindparam("refunded"))
)
_LEDGER_COLUMNS = tuple(c.name for c in ledger.c if c.name != "entry_id")
_APPEND_LEDGER = _insert_rows(ledger, _LEDGER_COLUMNS)
_TRANSACTIONS_OF = DriverStatement(
    select(point_transactions)
    .where(
        _T.operator_id == bindparam("op"),
        _T.occurred_at >= bindparam("start"),
        _T.occurred_at < bindparam("end"),
    )
    .order_by(_T.occurred_at, _T.transaction_id)
)
_ALL_TOTALS = DriverStatement(select(point_totals))
_ALL_TRANSACTIONS = DriverStatement(select(point_transactions))
_POINTS_OF = DriverStatement(
    select(ledger.c.cap_group, func.sum(ledger.c.points).label("points"))
    .where(ledger.c.record_id == bindparam("record"))
    .group_by(ledger.c.cap_group)
)
_TOTALS_OF = DriverStatement(
    select(point_totals).where(point_totals.c.person_id == bindparam("person"))
)
_RECORD_PEOPLE = DriverStatement(select(mykeys.c.record_id, mykeys.c.person_id))


class PointsStatements:
    """Mixed into the store's unit of work: the point system's reads and writes."""

    _conn: Connection

    def _write(self, statement: DriverStatement, rows: Sequence[Row]) -> None:
        """A batch's rows, written by one statement: an executemany on SQLite, one statement
        over one array per column on PostgreSQL (``statement`` built by :func:`_insert_rows`
        or the like; the rows' keys are its parameters)."""
        if not rows:
            return
        if self._conn.dialect.name == "postgresql":
            statement.run(self._conn, {name: [row[name] for row in rows] for name in rows[0]})
        else:
            statement.many(self._conn, rows)

    def _claimed(self, statement: DriverStatement, rows: Sequence[Row]) -> None:
        """:meth:`_write`, where a unique clash becomes Conflict (the SAVEPOINT keeps the
        transaction usable for the refusal's audit record)."""
        if not rows:
            return
        try:
            with self._conn.begin_nested():
                self._write(statement, rows)
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    # operators

    def add_operator(self, operator: Operator, services: Sequence[PaymentService]) -> None:
        self._claimed(
            _ADD_OPERATOR,
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
        self._claimed(
            _ADD_SERVICES,
            [
                {"service_id": s.service_id, "operator_id": s.operator_id, "name": s.name}
                for s in services
            ],
        )

    def operator(self, operator_id: str) -> Operator | None:
        row = _OPERATOR.one(self._conn, {"op": operator_id})
        if row is None:
            return None
        return Operator(
            row["operator_id"], row["name"], bytes(row["public_key"]), row["verify_url"]
        )

    def services(self, operator_id: str | None = None) -> list[PaymentService]:
        if operator_id is None:
            rows = _ALL_SERVICES.rows(self._conn)
        else:
            rows = _SERVICES_OF.rows(self._conn, {"op": operator_id})
        return [PaymentService(r["service_id"], r["operator_id"], r["name"]) for r in rows]

    def remember_nonce(self, operator_id: str, nonce: str, seen_at: datetime) -> bool:
        new = _NEW_NONCE.rows(
            self._conn, {"operator_id": operator_id, "nonce": nonce, "seen_at": seen_at}
        )
        return bool(new)

    def forget_nonces(self, before: datetime) -> None:
        _FORGET_NONCES.run(self._conn, {"before": before})

    # applications

    def link_account(self, service_id: str, account_id: str, record_id: int) -> int:
        _LINK.run(
            self._conn,
            {
                "service_id": service_id,
                "account_id": account_id,
                "record_id": record_id,
                "linked_at": datetime.now().astimezone(),
            },
        )
        return int(_LINKED.scalar(self._conn, {"service": service_id, "account": account_id}))

    def application(self, person_id: int, campaign_id: str) -> Application | None:
        row = _APPLICATION.one(self._conn, {"person": person_id, "campaign": campaign_id})
        return _application(row) if row is not None else None

    def add_application(self, application: Application) -> Application:
        seq = _NEXT_FEED.scalar(self._conn, {"op": application.operator_id})
        new = _ADD_APPLICATION.rows(
            self._conn,
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
        )
        if not new:
            raise Conflict(f"person {application.person_id} applied for {application.campaign_id}")
        new_id = new[0]["application_id"]
        return replace(application, application_id=int(new_id), feed_seq=int(seq))

    def applications_for_accounts(
        self, accounts: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Application]]:
        found: dict[tuple[str, str], list[Application]] = {}
        if not accounts:
            return found
        if self._conn.dialect.name == "postgresql":  # the pairs, as two arrays
            pairs = sorted(set(accounts))
            given = {"services": [s for s, _ in pairs], "accounts": [a for _, a in pairs]}
        else:
            given = {
                "services": _array(self._conn, {s for s, _ in accounts}),
                "accounts": _array(self._conn, {a for _, a in accounts}),
            }
        rows = _APPS_FOR.rows(self._conn, given)
        for row in rows:
            key = (row["service_id"], row["account_id"])
            if key in accounts:
                found.setdefault(key, []).append(_application(row))
        for applied in found.values():
            applied.sort(key=lambda a: a.applied_at)
        return found

    def applications_feed(self, operator_id: str, after: int, limit: int) -> list[Application]:
        rows = _FEED.rows(self._conn, {"op": operator_id, "after": after, "limit": limit})
        return [_application(r) for r in rows]

    def current_records(self, person_ids: Collection[int]) -> dict[int, tuple[int, MyKeyStatus]]:
        if not person_ids:
            return {}
        rows = _CURRENT.rows(self._conn, {"people": _array(self._conn, person_ids)})
        return {int(r["person_id"]): (int(r["record_id"]), MyKeyStatus(r["status"])) for r in rows}

    def people_of(self, record_ids: Collection[int]) -> dict[int, int]:
        if not record_ids:
            return {}
        rows = _PEOPLE.rows(self._conn, {"records": _array(self._conn, record_ids)})
        return {
            int(r["record_id"]): int(r["person_id"]) for r in rows if r["person_id"] is not None
        }

    def certificate_periods(
        self, record_ids: Collection[int]
    ) -> dict[int, list[CertificatePeriod | None]]:
        found: dict[int, list[CertificatePeriod | None]] = {}
        if not record_ids:
            return found
        for row in _PERIODS.rows(self._conn, {"records": _array(self._conn, record_ids)}):
            start, end = row["not_before"], row["not_after"]
            period = (
                CertificatePeriod(start, end) if start is not None and end is not None else None
            )
            found.setdefault(int(row["record_id"]), []).append(period)
        return found

    def bound_serials(self, record_ids: Collection[int]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        if record_ids:
            for row in _BOUND.rows(self._conn, {"records": _array(self._conn, record_ids)}):
                found.setdefault(int(row["record_id"]), []).append(int(row["serial"]))
        return found

    # transactions and ledger

    def lock_totals(self, keys: Iterable[CapKey]) -> dict[CapKey, int]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        # Create missing rows first (sorted: concurrent batches claim them in one order).
        self._write(_ADD_TOTALS, [{"person_id": p, "cap_group": g, "points": 0} for p, g in wanted])
        people = _array(self._conn, {p for p, _ in wanted})
        rows = _TOTALS.rows(self._conn, {"people": people})
        held = {(int(r["person_id"]), str(r["cap_group"])): int(r["points"]) for r in rows}
        return {key: held.get(key, 0) for key in wanted}

    def set_totals(self, totals: Mapping[CapKey, int]) -> None:
        self._write(
            _SET_TOTALS,
            [{"person": p, "group": g, "held": held} for (p, g), held in sorted(totals.items())],
        )

    def transactions_by_key(
        self, operator_id: str, keys: Collection[str]
    ) -> dict[str, StoredTransaction]:
        if not keys:
            return {}
        rows = _BY_KEY.rows(self._conn, {"op": operator_id, "keys": _array(self._conn, keys)})
        return {r["idempotency_key"]: _transaction(r) for r in rows}

    def transactions_by_id(
        self, operator_id: str, transaction_ids: Collection[str]
    ) -> dict[str, StoredTransaction]:
        if not transaction_ids:
            return {}
        ids = _array(self._conn, transaction_ids)
        rows = _BY_TX.rows(self._conn, {"op": operator_id, "ids": ids})
        return {r["transaction_id"]: _transaction(r) for r in rows}

    def transactions_of(
        self, operator_id: str, start: datetime, end: datetime
    ) -> list[StoredTransaction]:
        rows = _TRANSACTIONS_OF.rows(self._conn, {"op": operator_id, "start": start, "end": end})
        return [_transaction(r) for r in rows]

    def add_transactions(self, rows: Sequence[StoredTransaction]) -> None:
        self._claimed(
            _ADD_TRANSACTIONS,
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
        _REFUNDED.many(
            self._conn,
            [
                {"op": operator_id, "tx": tx, "net": net, "refunded": refunded}
                for tx, (net, refunded) in sorted(changes.items())
            ],
        )

    def append_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        # No unique key to clash on: no SAVEPOINT around it.
        self._write(
            _APPEND_LEDGER,
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
        # Built per call (reports and checks, not the hot path): the filters vary.
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
        rows = _ALL_TOTALS.rows(self._conn)
        return {(int(r["person_id"]), str(r["cap_group"])): int(r["points"]) for r in rows}

    def all_transactions(self) -> list[StoredTransaction]:
        return [_transaction(r) for r in _ALL_TRANSACTIONS.rows(self._conn)]

    def points_of(self, record_id: int) -> dict[str, int]:
        rows = _POINTS_OF.rows(self._conn, {"record": record_id})
        return {str(r["cap_group"]): int(r["points"]) for r in rows}

    def totals_of(self, person_id: int) -> dict[str, int]:
        rows = _TOTALS_OF.rows(self._conn, {"person": person_id})
        return {str(r["cap_group"]): int(r["points"]) for r in rows}

    def record_people(self) -> dict[int, int]:
        """Every MyKey record's person (the ledger invariants sum per person)."""
        rows = _RECORD_PEOPLE.rows(self._conn)
        return {
            int(r["record_id"]): int(r["person_id"]) for r in rows if r["person_id"] is not None
        }


def _application(row: Row) -> Application:
    return Application(
        application_id=int(row["application_id"]),
        campaign_id=row["campaign_id"],
        record_id=int(row["record_id"]),
        service_id=row["service_id"],
        account_id=row["account_id"],
        operator_id=row["operator_id"],
        applied_at=row["applied_at"],
        card_applied_on=row["card_applied_on"],
        feed_seq=int(row["feed_seq"]),
        person_id=int(row["person_id"]),
    )


def _transaction(row: Row) -> StoredTransaction:
    return StoredTransaction(
        operator_id=row["operator_id"],
        idempotency_key=row["idempotency_key"],
        request_digest=row["request_digest"],
        transaction_id=row["transaction_id"],
        service_id=row["service_id"],
        account_id=row["account_id"],
        kind=TransactionKind(row["kind"]),
        amount=int(row["amount"]),
        occurred_at=row["occurred_at"],
        original_transaction_id=row["original_transaction_id"],
        record_id=row["record_id"],
        campaign_id=row["campaign_id"],
        outcome=Outcome(row["outcome"]),
        points=int(row["points"]),
        net_points=int(row["net_points"]),
        refunded_amount=int(row["refunded_amount"]),
        total_after=row["total_after"],
        decided_at=row["decided_at"],
    )
