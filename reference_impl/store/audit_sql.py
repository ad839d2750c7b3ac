"""The audit log in the store: appending to its hash chain in a transaction, reading it back.

The chain itself (canonical JSON, hashes, verification) is :mod:`mynahil.reference_impl.audit`'s;
here is only where the records go. Every append locks the single ``audit_head`` row, taken
just before commit so it is held briefly and never deadlocks with other row locks; so seq
follows commit order without gaps, and a record commits or rolls back with the rest of its
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Insert,
    LargeBinary,
    Text,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from mynahil.reference_impl.audit import (
    AuditEvent,
    AuditRecord,
    canonical,
    canonical_json,
    chain_hash,
)

from .driver import DriverStatement, as_utc, column_params, unnest_rows
from .tables import audit_head, audit_log

__all__ = ["AuditStatements", "audit_page", "audit_record"]

_HEAD = DriverStatement(
    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
)
_MOVE_HEAD = DriverStatement(
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_APPEND = DriverStatement(
    insert(audit_log).values({c.name: bindparam(c.name) for c in audit_log.c})
)


def _append_and_move(appended: Insert) -> Any:
    """PostgreSQL: the records and the head's move in one statement, a round trip fewer for
    every audited operation; the head is locked already (_HEAD)."""
    return (
        update(audit_head)
        .where(audit_head.c.id == 1)
        .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
        .add_cte(appended.cte("appended"))
    )


def _append_many_and_move(dialect: str) -> Any:
    assert dialect == "postgresql", "SQLite appends with _APPEND and _MOVE_HEAD"
    names = [c.name for c in audit_log.c]
    rows = unnest_rows({c.name: c.type for c in audit_log.c})
    return _append_and_move(
        insert(audit_log).from_select(names, select(*(rows.c[n] for n in names)))
    )


_APPEND_MANY_AND_MOVE = DriverStatement(_append_many_and_move)

_SEQ_LAST = b'"seq":0}'
"""How a record's canonical bytes end for seq 0: seq is the last key (keys are sorted)."""


def _chain_one(dialect: str) -> Any:
    """PostgreSQL: lock the head, chain one record onto it and move the head, in one
    statement (a round trip fewer than reading the head first). The server computes the
    record's hash as :func:`~mynahil.reference_impl.audit.chain_hash` does: SHA-256 of the
    head's hash and the record's canonical bytes, sent without their end (``seq`` and the
    closing brace), which only the head knows. Without the head row the statement fails
    (the record's seq is NULL: NOT NULL violated) rather than append nothing, so that a
    COMMIT sent with it (:meth:`AuditStatements._write_audit`) is refused too."""
    assert dialect == "postgresql", "SQLite reads the head, then appends (_HEAD, _APPEND)"
    head = (
        select(audit_head.c.seq, audit_head.c.hash)
        .where(audit_head.c.id == 1)
        .with_for_update()
        .cte("head")
    )
    one_row = select(literal(1).label("one")).subquery("one_row")
    seq = head.c.seq + 1
    record = bindparam("canonical_until_seq", type_=LargeBinary).op("||")(
        func.convert_to(cast(seq, Text).concat("}"), "UTF8")
    )
    digest = func.encode(func.sha256(func.convert_to(head.c.hash, "UTF8").op("||")(record)), "hex")
    given = column_params(audit_log, ("at", "action", "outcome", "record_id", "details"))
    values = {"seq": seq, **given, "prev_hash": head.c.hash, "hash": digest}
    names = [c.name for c in audit_log.c]
    appended = (
        insert(audit_log)
        .from_select(
            names,
            select(*(values[name].label(name) for name in names)).select_from(
                one_row.outerjoin(head, true())
            ),
        )
        .returning(audit_log.c.seq, audit_log.c.hash)
        .cte("appended")
    )
    return (
        update(audit_head)
        .where(audit_head.c.id == 1)
        .values(seq=appended.c.seq, hash=appended.c.hash)
        .returning(audit_head.c.seq)
    )


_CHAIN_ONE = DriverStatement(_chain_one)
_NOT_NULL_VIOLATION = "23502"
_NO_HEAD = (
    "the audit_head row is missing: create the database with "
    "mynahil.reference_impl.store.migrate, not metadata.create_all"
)
_FIRST_PAGE = DriverStatement(select(audit_log).order_by(audit_log.c.seq).limit(bindparam("size")))
_NEXT_PAGE = DriverStatement(
    select(audit_log)
    .where(audit_log.c.seq > bindparam("after"))
    .order_by(audit_log.c.seq)
    .limit(bindparam("size"))
)


class AuditStatements:
    """Mixed into the store's unit of work: ``_conn`` is its connection, ``_pending_audit``
    the records appended in it, written by :meth:`_write_audit` just before commit."""

    _conn: Connection
    _pending_audit: list[tuple[AuditEvent, datetime, str]]

    def audit(self, event: AuditEvent, now: datetime) -> None:
        """Append one record to the hash chain, in this transaction.

        The record is checked and encoded now, and written just before the transaction
        commits (:meth:`_write_audit`): the head row, which every append locks, is then the
        last lock a transaction takes and is held only until its commit.
        """
        self._pending_audit.append((event, as_utc(now), canonical_json(event.details)))

    def _write_audit(self, *, last: bool = False) -> None:
        """Append the pending records: lock the head, chain each one, move the head.

        Taking the head's lock last keeps it from deadlocking with row locks taken earlier in
        the transaction (PostgreSQL), and seq follows commit order, gap-free. The hash covers
        exactly what is stored (UTC time, details as their JSON reads back), so every record
        verifies when read again.

        ``last``: the caller commits next and runs nothing else. On PostgreSQL one record's
        statement then carries the COMMIT (:meth:`.DriverStatement.one_then_commit`): the
        head's lock, which serialises every audited transaction, is held for the server's
        work alone, not also for a round trip to this process and back.
        """
        if not self._pending_audit:
            return
        postgres = self._conn.dialect.name == "postgresql"
        if postgres and len(self._pending_audit) == 1:
            self._chain_one(*self._pending_audit[0], commit=last)
            self._pending_audit.clear()
            return
        head = _HEAD.one(self._conn)
        if head is None:
            raise RuntimeError(_NO_HEAD)
        seq, digest = int(head["seq"]), str(head["hash"])
        rows: list[dict[str, Any]] = []
        for entry, at, details in self._pending_audit:
            stored = AuditEvent(entry.action, entry.outcome, entry.record_id, json.loads(details))
            seq, prev = seq + 1, digest
            digest = chain_hash(prev, seq, at, stored)
            rows.append(
                {
                    "seq": seq,
                    "at": at,
                    "action": entry.action,
                    "outcome": entry.outcome,
                    "record_id": entry.record_id,
                    "details": details,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
        head_moved = {"new_seq": seq, "new_hash": digest}
        if postgres:
            columns = {name: [row[name] for row in rows] for name in rows[0]}
            _APPEND_MANY_AND_MOVE.run(self._conn, {**columns, **head_moved})
        else:
            _APPEND.many(self._conn, rows)
            _MOVE_HEAD.run(self._conn, head_moved)
        self._pending_audit.clear()

    def _chain_one(self, entry: AuditEvent, at: datetime, details: str, commit: bool) -> None:
        """PostgreSQL, one record: :data:`_CHAIN_ONE`, its canonical bytes made here."""
        stored = AuditEvent(entry.action, entry.outcome, entry.record_id, json.loads(details))
        whole = canonical(0, at, stored)
        assert whole.endswith(_SEQ_LAST), "seq must stay the last key of a record's bytes"
        values = {
            "at": at,
            "action": entry.action,
            "outcome": entry.outcome,
            "record_id": entry.record_id,
            "details": details,
            "canonical_until_seq": whole[: -len(b"0}")],
        }
        chain = _CHAIN_ONE.one_then_commit if commit else _CHAIN_ONE.one
        try:
            chain(self._conn, values)
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) == _NOT_NULL_VIOLATION:
                raise RuntimeError(_NO_HEAD) from exc  # seq NULL: no head to chain onto
            raise


def audit_page(conn: Connection, after: int | None, size: int) -> list[AuditRecord]:
    """Up to ``size`` records in order of seq, from the first one after seq ``after``
    (None: from the start)."""
    if after is None:
        rows = _FIRST_PAGE.rows(conn, {"size": size})
    else:
        rows = _NEXT_PAGE.rows(conn, {"after": after, "size": size})
    return [audit_record(row) for row in rows]


def audit_record(row: Mapping[str, Any]) -> AuditRecord:
    """An ``audit_log`` row (from :class:`.DriverStatement` or ``row._mapping``)."""
    return AuditRecord(
        seq=int(row["seq"]),
        at=row["at"],
        action=row["action"],
        outcome=row["outcome"],
        record_id=row["record_id"],
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
