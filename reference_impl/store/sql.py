"""The platform's store over SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

:class:`SqlStore` implements :class:`reference_impl.mykey.ports.Store`. Each
:meth:`SqlStore.transaction` is one database transaction on one connection: it commits when
the block ends normally and rolls back when it raises.

Concurrency, per backend:

- **SQLite** (the default): WAL journal, ``synchronous=NORMAL`` (durable against a crash of
  the process; a power cut or OS crash may lose the last commits, never corrupt the file),
  foreign keys on, and every read-write transaction starts with ``BEGIN IMMEDIATE``, so
  concurrent writers queue on the write lock (up to ``busy_timeout``) instead of failing with
  "database is locked" half-way through. Reads of the audit log use a deferred BEGIN and never
  block writers. ``sqlite://`` (memory) is one shared connection, so its transactions are
  serialised by a lock in the store.
- **PostgreSQL**: READ COMMITTED. Appends to the audit log are serialised by locking the single
  ``audit_head`` row (``SELECT ... FOR UPDATE``), taken just before commit so it is held briefly
  and never deadlocks with other row locks; uniqueness is left to unique indexes, with a
  SAVEPOINT around each claim so a :class:`Conflict` leaves the transaction usable.

Either way an audit record commits or rolls back with the rest of its transaction, and seq
follows commit order without gaps.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from reference_impl.audit import AuditEvent, AuditRecord, ChainBreak, chain_hash, verify_chain
from reference_impl.mykey.model import (
    Challenge,
    LoginMethod,
    MyKeyRecord,
    MyKeyStatus,
    Purpose,
    Session,
)
from reference_impl.mykey.ports import Conflict, StoreUnavailable
from reference_impl.points.ports import PointsUnitOfWork
from reference_impl.staff import StaffUnitOfWork

from .driver import DriverStatement, utc
from .points_sql import PointsStatements
from .staff_sql import StaffStatements
from .tables import (
    audit_head,
    audit_log,
    certificate_bindings,
    challenges,
    mykeys,
    persons,
    retired_ids,
    sessions,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "PlatformUnitOfWork",
    "SqlStore",
    "make_engine",
    "migrate",
    "upgrade",
]

DEFAULT_BUSY_TIMEOUT: Final = 10.0
"""Seconds a writer waits for SQLite's write lock, or for a row lock on PostgreSQL
(``lock_timeout``), before the store gives up with ``StoreUnavailable("busy")``."""

MIGRATIONS: Final = Path(__file__).with_name("migrations")

_SQLITE_BEGIN: Final = "mynahil_sqlite_begin"  # execution option: IMMEDIATE (default) or DEFERRED
_MIGRATION_LOCK: Final = 0x6D796E61  # pg_advisory_xact_lock key ("myna")
_UNIQUE_SQLITE: Final = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_UNIQUE_SQLSTATE: Final = "23505"
# What "try again later" looks like, per backend (sqlite3's error names, PostgreSQL's SQLSTATEs).
_BUSY_SQLITE: Final = ("SQLITE_BUSY", "SQLITE_LOCKED")
_FULL_SQLITE: Final = ("SQLITE_FULL",)
_BUSY_SQLSTATES: Final = frozenset(
    {
        "55P03",  # lock_not_available (lock_timeout)
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57014",  # query_canceled (statement_timeout)
        "53300",  # too_many_connections
        "57P03",  # cannot_connect_now (starting up)
    }
)
_FULL_SQLSTATES: Final = frozenset({"53100", "53200"})  # disk_full, out_of_memory


class PlatformUnitOfWork(PointsUnitOfWork, StaffUnitOfWork, Protocol):
    """One transaction over everything the platform keeps: MyKey, points and staff."""


# --- engines and migrations -----------------------------------------------------------------


def make_engine(url: str | URL, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine set up as this store needs it (see the module docstring).

    Accepts ``sqlite:///path``, ``sqlite://`` (memory) and ``postgresql+psycopg://...``
    (a bare ``postgresql://`` is taken to mean psycopg 3).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # No server-side prepared statements: after five runs psycopg prepares a statement and
        # PostgreSQL may switch it to a generic plan, which for the batch lookups
        # (key IN (…1,000 keys…)) was a sequential scan, 10x slower as the table grew.
        # A writer waits for a row lock at most busy_timeout (as SQLite's writers do), then
        # the request answers 503 instead of hanging.
        given = parsed.query.get("options", ())
        given = (given,) if isinstance(given, str) else tuple(given)
        options = " ".join((*given, f"-c lock_timeout={int(busy_timeout * 1000)}"))
        return create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"prepare_threshold": None, "options": options},
        )
    if backend != "sqlite":
        raise ValueError(
            f"unsupported database URL {parsed.render_as_string()!r}: use sqlite:///path, "
            "sqlite:// (memory) or postgresql+psycopg://user@host/db"
        )
    if parsed.database in (None, "", ":memory:"):
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
    _configure_sqlite(engine, busy_timeout)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    """Pragmas on every new connection, and SQLAlchemy (not sqlite3) emitting BEGIN.

    This is SQLAlchemy's documented recipe for pysqlite ("Enabling Non-Legacy SQLite
    Transactional Modes"): with sqlite3's own transaction handling off, BEGIN IMMEDIATE takes
    the write lock up front and SAVEPOINTs work.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _entry: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
        # Straight to sqlite3: this runs for every transaction, and SQLAlchemy's execution
        # path cost more than SQLite's BEGIN.
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE"
        )


def _alembic_config(connection: Connection) -> Config:
    """Alembic configured in code: no ini file is needed at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the database up to the newest schema (Alembic ``upgrade head``); idempotent.

    Runs in one transaction. Concurrent callers are serialised: on SQLite by BEGIN IMMEDIATE,
    on PostgreSQL by an advisory lock.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A migration waits as long as it takes (the store's lock_timeout is for requests).
            connection.execute(text("SET LOCAL lock_timeout = 0"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        command.upgrade(_alembic_config(connection), "head")


def upgrade(url: str | URL) -> None:
    """:func:`migrate` the database at ``url``."""
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


# --- the store --------------------------------------------------------------------------------


class SqlStore:
    """The platform's :class:`~reference_impl.mykey.ports.Store` over SQLAlchemy Core.

    Open one with :meth:`open`; share it between threads (it holds a connection pool); call
    :meth:`dispose` (or use it as a context manager) when done.
    """

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine made by :func:`make_engine` (it sets up SQLite's locking)."""
        self._engine = engine
        shared = engine.dialect.name == "sqlite" and isinstance(engine.pool, StaticPool)
        # One shared connection (memory database): one transaction at a time.
        self._lock: threading.RLock | None = threading.RLock() if shared else None

    @classmethod
    def open(
        cls,
        url: str | URL,
        *,
        migrate: bool = True,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> SqlStore:
        """Connect to ``url`` and, unless ``migrate=False``, apply pending migrations."""
        engine = make_engine(url, busy_timeout=busy_timeout)
        try:
            if migrate:
                _migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def in_memory(self) -> bool:
        """A SQLite database in memory: one connection, gone with this process."""
        return self._lock is not None

    @property
    def engine(self) -> Engine:
        """The underlying engine, for other stores sharing the database and for tooling."""
        return self._engine

    def _exclusive(self) -> AbstractContextManager[object]:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[PlatformUnitOfWork]:
        """One unit of work: commits on normal exit, rolls back if the block raises.

        A busy or full database raises :class:`~reference_impl.mykey.ports.StoreUnavailable`
        (after the rollback), never a driver error.
        """
        with _unavailable_as_such(), self._exclusive(), self._engine.begin() as connection:
            uow = _SqlUnitOfWork(connection)
            yield uow
            uow._write_audit()

    def ping(self) -> None:
        """A short read of the schema's revision; raises when the database does not answer."""
        with self._reading() as connection:
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read-only transaction; on SQLite a deferred one, which never blocks writers."""
        with _unavailable_as_such(), self._exclusive(), self._engine.connect() as connection:
            connection.execution_options(**{_SQLITE_BEGIN: "DEFERRED"})
            with connection.begin():
                yield connection

    def audit_records(self, *, batch_size: int = 1000) -> Iterator[AuditRecord]:
        """The audit log in order of seq, fetched ``batch_size`` records at a time.

        Each batch is its own short read, so an abandoned iterator holds no connection. The
        log is append-only and appends commit in seq order, so no record is skipped.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        after: int | None = None
        while True:
            query = select(audit_log).order_by(audit_log.c.seq).limit(batch_size)
            if after is not None:
                query = query.where(audit_log.c.seq > after)
            with self._reading() as connection:
                rows = connection.execute(query).all()
            for row in rows:
                yield _audit_record(row)
            if len(rows) < batch_size:
                return
            after = int(rows[-1].seq)

    def verify_audit(self) -> tuple[int, ChainBreak | None]:
        """Check the whole hash chain: (records that fit, the first break or None)."""
        return verify_chain(self.audit_records())

    def dispose(self) -> None:
        """Close every pooled connection (a memory database is gone afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.dispose()


_migrate = migrate  # SqlStore.open's ``migrate`` flag shadows the function's name


# --- one transaction ------------------------------------------------------------------------


# Statements on the issuance path, built once: building a Core statement and its cache key
# costs ~180 µs, five times what SQLite then takes to run it.
_CONSUME = (
    update(challenges)
    .where(challenges.c.challenge_id == bindparam("cid"), challenges.c.used_at.is_(None))
    .values(used_at=bindparam("now"))
    .returning(*challenges.c)
)
_CHALLENGE = select(challenges).where(challenges.c.challenge_id == bindparam("cid"))
_BY_SERIAL = (
    select(mykeys)
    .join(certificate_bindings, certificate_bindings.c.record_id == mykeys.c.record_id)
    .where(
        certificate_bindings.c.serial == bindparam("serial"),
        mykeys.c.status != MyKeyStatus.REVOKED.value,
    )
)
_RETIRED = select(exists().where(retired_ids.c.mykey_id == bindparam("mid")))
_ID_USED = select(
    or_(
        exists().where(mykeys.c.mykey_id == bindparam("mid")),
        exists().where(retired_ids.c.mykey_id == bindparam("mid")),
    )
)
_HEAD = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)

# The same statements, run by the driver (see driver.py): the issuance path and every audit
# append go through these.
_RAW_CONSUME = DriverStatement(_CONSUME)
_RAW_CHALLENGE = DriverStatement(_CHALLENGE)
_RAW_BY_SERIAL = DriverStatement(_BY_SERIAL)
_RAW_RETIRED = DriverStatement(_RETIRED)
_RAW_HEAD = DriverStatement(_HEAD)
_RAW_MOVE_HEAD = DriverStatement(_MOVE_HEAD)
_RAW_ADD_CHALLENGE = DriverStatement(
    insert(challenges).values({c.name: bindparam(c.name) for c in challenges.c})
)
_RAW_AUDIT = DriverStatement(
    insert(audit_log).values({c.name: bindparam(c.name) for c in audit_log.c})
)
_RAW_INSERT_NEW: dict[tuple[str, str], DriverStatement] = {}
_RAW_PERSON_ID = DriverStatement(
    select(persons.c.person_id).where(persons.c.person_ref == bindparam("ref"))
)
_RAW_DISCARD_RECORD = DriverStatement(delete(mykeys).where(mykeys.c.record_id == bindparam("rid")))


def _raw_insert_new(dialect: str, table: Any, columns: Sequence[str]) -> DriverStatement:
    """INSERT … ON CONFLICT DO NOTHING … RETURNING the key, built once per dialect and table
    (``columns`` are the same at every call for a table; the key is generated).

    A clash is then "no row returned": no SAVEPOINT needed to keep the transaction usable.
    """
    key = (dialect, table.name)
    if key not in _RAW_INSERT_NEW:
        build = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = build(table).values({c: bindparam(c) for c in columns})
        _RAW_INSERT_NEW[key] = DriverStatement(
            statement.on_conflict_do_nothing().returning(*table.primary_key.columns)
        )
    return _RAW_INSERT_NEW[key]


class _SqlUnitOfWork(PointsStatements, StaffStatements):
    """:class:`~reference_impl.mykey.ports.UnitOfWork` on one connection in a transaction."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._pending_audit: list[tuple[AuditEvent, datetime, str]] = []

    @contextmanager
    def _claim(self, what: str) -> Iterator[None]:
        """Run a write that takes a unique value; a clash becomes :class:`Conflict`.

        The SAVEPOINT undoes the write alone, so the caller's transaction stays usable
        (PostgreSQL would otherwise refuse every later statement in it).
        """
        try:
            with self._conn.begin_nested():
                yield
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            raise Conflict(what) from None

    # challenges

    def add_challenge(self, challenge: Challenge) -> None:
        _RAW_ADD_CHALLENGE.rows(
            self._conn,
            {
                "challenge_id": challenge.challenge_id,
                "nonce": challenge.nonce,
                "purpose": challenge.purpose.value,
                "created_at": challenge.created_at,
                "expires_at": challenge.expires_at,
                "used_at": challenge.used_at,
            },
        )

    def consume_challenge(self, challenge_id: str, now: datetime) -> Challenge | None:
        """Mark used and return it as it was; exactly one of racing callers sees used_at None.

        The conditional UPDATE is the arbiter: a second writer blocks on the row (or, on
        SQLite, on the write lock) and then finds ``used_at`` set.
        """
        claimed = _RAW_CONSUME.rows(self._conn, {"cid": challenge_id, "now": now})
        found = claimed or _RAW_CHALLENGE.rows(self._conn, {"cid": challenge_id})
        if not found:
            return None
        row = found[0]
        created, expires = utc(row["created_at"]), utc(row["expires_at"])
        assert created is not None
        assert expires is not None
        return Challenge(
            challenge_id=row["challenge_id"],
            nonce=bytes(row["nonce"]),
            purpose=Purpose(row["purpose"]),
            created_at=created,
            expires_at=expires,
            used_at=None if claimed else utc(row["used_at"]),
        )

    # MyKey records

    def record_by_serial(self, serial: int) -> MyKeyRecord | None:
        rows = _RAW_BY_SERIAL.rows(self._conn, {"serial": str(serial)})
        return _record_from_driver(rows[0]) if rows else None

    def record_by_mykey_id(self, mykey_id: str, *, lock: bool = False) -> MyKeyRecord | None:
        query = select(mykeys).where(mykeys.c.mykey_id == mykey_id)
        if lock and self._conn.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE did
            query = query.with_for_update()
        row = self._conn.execute(query).one_or_none()
        return _record(row) if row is not None else None

    def record(self, record_id: int, *, lock: bool = False) -> MyKeyRecord | None:
        query = select(mykeys).where(mykeys.c.record_id == record_id)
        if lock and self._conn.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE did
            query = query.with_for_update()
        row = self._conn.execute(query).one_or_none()
        return _record(row) if row is not None else None

    def mykey_id_used(self, mykey_id: str) -> bool:
        return bool(self._conn.execute(_ID_USED, {"mid": mykey_id}).scalar_one())

    def _refuse_retired(self, mykey_id: str) -> None:
        """Conflict if the ID was ever retired.

        Checked *after* writing the ID into ``mykeys``: if another transaction was retiring
        it, the unique index made this one wait for that commit, and under READ COMMITTED
        this later statement then sees the retirement.
        """
        if next(iter(_RAW_RETIRED.rows(self._conn, {"mid": mykey_id})[0].values())):
            raise Conflict(f"MyKey ID {mykey_id} was used before and is never reissued")

    def create_record(
        self, mykey_id: str, now: datetime, person_id: int | None = None
    ) -> MyKeyRecord:
        values = {
            "mykey_id": mykey_id,
            "status": MyKeyStatus.ACTIVE.value,
            "created_at": now,
            "password_failures": 0,
            "person_id": person_id,
        }
        created = _raw_insert_new(self._conn.dialect.name, mykeys, list(values)).rows(
            self._conn, values
        )
        record_id = created[0]["record_id"] if created else None
        if record_id is None:
            raise Conflict(f"MyKey ID {mykey_id} is taken")
        try:
            self._refuse_retired(mykey_id)
        except Conflict:
            self.discard_record(int(record_id))
            raise
        return MyKeyRecord(
            int(record_id), mykey_id, MyKeyStatus.ACTIVE, _utc(now), person_id=person_id
        )

    def discard_record(self, record_id: int) -> None:
        _RAW_DISCARD_RECORD.rows(self._conn, {"rid": record_id})

    def person(self, person_ref: str, now: datetime) -> int:
        # Every issuance asks: one round trip when the person is new, two when known. A racing
        # insert of the same reference waits on the unique index, then reads the winner's row.
        values = {"person_ref": person_ref, "created_at": now}
        created = _raw_insert_new(self._conn.dialect.name, persons, list(values)).rows(
            self._conn, values
        )
        found = created or _RAW_PERSON_ID.rows(self._conn, {"ref": person_ref})
        return int(found[0]["person_id"])

    def person_record(self, person_id: int) -> MyKeyRecord | None:
        row = self._conn.execute(
            select(mykeys)
            .where(
                mykeys.c.person_id == person_id,
                mykeys.c.status != MyKeyStatus.REVOKED.value,
            )
            .order_by(mykeys.c.record_id.desc())
            .limit(1)
        ).one_or_none()
        return _record(row) if row is not None else None

    def bind_serial(
        self,
        record_id: int,
        serial: int,
        now: datetime,
        *,
        valid: tuple[datetime, datetime] | None = None,
    ) -> None:
        values = {
            "serial": str(serial),
            "record_id": record_id,
            "bound_at": now,
            "not_before": valid[0] if valid else None,
            "not_after": valid[1] if valid else None,
        }
        inserted = _raw_insert_new(self._conn.dialect.name, certificate_bindings, list(values))
        if not inserted.rows(self._conn, values):
            raise Conflict(f"certificate serial {serial} is bound already")

    def unbind_serials(self, record_id: int) -> list[int]:
        rows = self._conn.execute(
            delete(certificate_bindings)
            .where(certificate_bindings.c.record_id == record_id)
            .returning(certificate_bindings.c.serial)
        ).all()
        return sorted(int(row.serial) for row in rows)

    def change_mykey_id(self, record_id: int, new_id: str, now: datetime) -> None:
        """Retire the current ID and make ``new_id`` current.

        Raises :class:`Conflict` if ``new_id`` is current anywhere or was ever retired
        (including the record's own current ID), :class:`LookupError` for an unknown record.
        """
        with self._claim(f"MyKey ID {new_id} is taken"):
            old = self._conn.execute(
                select(mykeys.c.mykey_id).where(mykeys.c.record_id == record_id).with_for_update()
            ).scalar_one_or_none()
            if old is None:
                raise LookupError(f"no MyKey record {record_id}")
            self._conn.execute(
                insert(retired_ids).values(mykey_id=old, record_id=record_id, retired_at=now)
            )
            self._conn.execute(
                update(mykeys).where(mykeys.c.record_id == record_id).values(mykey_id=new_id)
            )
            self._refuse_retired(new_id)

    def update_record(self, record: MyKeyRecord) -> None:
        """Persist status, password and lock fields (never the ID: see change_mykey_id)."""
        result = self._conn.execute(
            update(mykeys)
            .where(mykeys.c.record_id == record.record_id)
            .values(
                status=record.status.value,
                password_hash=record.password_hash,
                password_failures=record.password_failures,
                locked_until=record.locked_until,
                revoked_at=record.revoked_at,
            )
        )
        if result.rowcount != 1:
            raise LookupError(f"no MyKey record {record.record_id}")

    # sessions

    def add_session(self, session: Session) -> None:
        self._conn.execute(
            insert(sessions).values(
                token_hash=session.token_hash,
                record_id=session.record_id,
                method=session.method.value,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )

    def session(self, token_hash: str) -> Session | None:
        row = self._conn.execute(
            select(sessions).where(sessions.c.token_hash == token_hash)
        ).one_or_none()
        if row is None:
            return None
        return Session(
            token_hash=row.token_hash,
            record_id=row.record_id,
            method=LoginMethod(row.method),
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    def end_sessions(self, record_id: int) -> None:
        self._conn.execute(delete(sessions).where(sessions.c.record_id == record_id))

    # audit

    def audit(self, event: AuditEvent, now: datetime) -> None:
        """Append one record to the hash chain, in this transaction.

        The record is checked and encoded now, and written just before the transaction
        commits (:meth:`_write_audit`): the head row, which every append locks, is then the
        last lock a transaction takes and is held only until its commit.
        """
        details = _canonical_json(event.details)
        self._pending_audit.append((event, _utc(now), details))

    def _write_audit(self) -> None:
        """Append the pending records: lock the head, chain each one, move the head.

        Taking the head's lock last keeps it from deadlocking with row locks taken earlier in
        the transaction (PostgreSQL), and seq follows commit order, gap-free. The hash covers
        exactly what is stored (UTC time, details as their JSON reads back), so every record
        verifies when read again.
        """
        if not self._pending_audit:
            return
        heads = _RAW_HEAD.rows(self._conn)
        if not heads:
            raise RuntimeError(
                "the audit_head row is missing: create the database with "
                "reference_impl.store.migrate, not metadata.create_all"
            )
        seq, digest = int(heads[0]["seq"]), str(heads[0]["hash"])
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
        _RAW_AUDIT.many(self._conn, rows)
        _RAW_MOVE_HEAD.rows(self._conn, {"new_seq": seq, "new_hash": digest})
        self._pending_audit.clear()


# --- rows and values --------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware time")
    return moment.astimezone(UTC)


def _canonical_json(details: Mapping[str, Any] | None) -> str:
    return json.dumps(
        dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


@contextmanager
def _unavailable_as_such() -> Iterator[None]:
    """Errors that mean "busy" or "full" become :class:`StoreUnavailable`, whether they come
    through SQLAlchemy or straight from the driver (BEGIN IMMEDIATE, :mod:`.driver`)."""
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable("busy", f"no database connection free ({exc})") from exc
    except Exception as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        kind = _unavailable_kind(cause)
        if kind is None:
            raise
        raise StoreUnavailable(kind, str(cause).splitlines()[0]) from exc


def _unavailable_kind(error: BaseException | None) -> str | None:
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate is not None:
        if sqlstate in _BUSY_SQLSTATES:
            return "busy"
        return "full" if sqlstate in _FULL_SQLSTATES else None
    name = getattr(error, "sqlite_errorname", None)
    if not isinstance(name, str):
        return None
    if name.startswith(_BUSY_SQLITE):
        return "busy"
    return "full" if name.startswith(_FULL_SQLITE) else None


def _is_unique_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == _UNIQUE_SQLSTATE)
    return getattr(exc.orig, "sqlite_errorname", None) in _UNIQUE_SQLITE


def _record(row: Row[Any]) -> MyKeyRecord:
    return MyKeyRecord(
        record_id=row.record_id,
        mykey_id=row.mykey_id,
        status=MyKeyStatus(row.status),
        created_at=row.created_at,
        password_hash=row.password_hash,
        password_failures=row.password_failures,
        locked_until=row.locked_until,
        revoked_at=row.revoked_at,
        person_id=row.person_id,
    )


def _record_from_driver(row: Mapping[str, Any]) -> MyKeyRecord:
    created = utc(row["created_at"])
    assert created is not None
    return MyKeyRecord(
        record_id=int(row["record_id"]),
        mykey_id=row["mykey_id"],
        status=MyKeyStatus(row["status"]),
        created_at=created,
        password_hash=row["password_hash"],
        password_failures=int(row["password_failures"]),
        locked_until=utc(row["locked_until"]),
        revoked_at=utc(row["revoked_at"]),
        person_id=row["person_id"],
    )


def _audit_record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=int(row.seq),
        at=row.at,
        action=row.action,
        outcome=row.outcome,
        record_id=row.record_id,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
