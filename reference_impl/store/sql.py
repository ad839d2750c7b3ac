"""The platform's store: one implementation for SQLite and PostgreSQL.

:class:`SqlStore` implements :class:`mynahil.reference_impl.mykey.ports.Store`. Each
:meth:`SqlStore.transaction` is one database transaction on one connection: it commits when
the block ends normally and rolls back when it raises. Its unit of work is assembled from one
module per part of the platform (:mod:`.mykey_sql`, :mod:`.points_sql`, :mod:`.staff_sql`,
:mod:`.audit_sql`), each running its statements through :mod:`.driver`; the engine, its
locking per backend and the migrations are :mod:`.engine`'s.

``sqlite://`` (memory) is one shared connection, so its transactions are serialised by a
lock in the store. On PostgreSQL uniqueness is left to unique indexes, with a SAVEPOINT
around each claim so a :class:`Conflict` leaves the transaction usable. Either way an audit
record commits or rolls back with the rest of its transaction, and seq follows commit order
without gaps (:mod:`.audit_sql`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Protocol

from sqlalchemy import Connection, Engine, column, select, table
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

from mynahil.reference_impl.audit import AuditEvent, AuditRecord, ChainBreak, verify_chain
from mynahil.reference_impl.mykey.ports import StoreUnavailable, WriterBusy
from mynahil.reference_impl.points.ports import PointsUnitOfWork
from mynahil.reference_impl.staff import StaffUnitOfWork

from .audit_sql import AuditStatements, audit_page
from .driver import DriverStatement
from .engine import (
    DEFAULT_BUSY_TIMEOUT,
    MIGRATIONS,
    SQLITE_BEGIN,
    begin_sqlite_now,
    make_engine,
    migrate,
    unavailable_as_such,
    upgrade,
)
from .mykey_sql import MyKeyStatements
from .points_sql import PointsStatements
from .staff_sql import StaffStatements

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "MIGRATIONS",
    "PlatformUnitOfWork",
    "SqlStore",
    "make_engine",
    "migrate",
    "upgrade",
]

_WAITS_FOR_WRITER: ContextVar[bool] = ContextVar("waits_for_writer", default=True)
"""False within :meth:`SqlStore.not_waiting` until its first transaction begins."""

_REVISION = DriverStatement(select(column("version_num")).select_from(table("alembic_version")))


class PlatformUnitOfWork(PointsUnitOfWork, StaffUnitOfWork, Protocol):
    """One transaction over everything the platform keeps: MyKey, points and staff."""


class SqlStore:
    """The platform's :class:`~mynahil.reference_impl.mykey.ports.Store` over SQLAlchemy Core.

    Open one with :meth:`open`; share it between threads (it holds a connection pool); call
    :meth:`dispose` (or use it as a context manager) when done.
    """

    def __init__(self, engine: Engine, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        """Wrap an engine made by :func:`make_engine` (it sets up SQLite's locking);
        ``busy_timeout`` as given to it."""
        self._engine = engine
        self._busy_timeout = busy_timeout
        sqlite = engine.dialect.name == "sqlite"
        self._in_memory = sqlite and isinstance(engine.pool, StaticPool)
        # SQLite takes one writer at a time. A memory database is one shared connection; on a
        # file, this process's writers queue here rather than in SQLite's busy handler, which
        # sleeps 1, 2, 5, 10 ms... between tries: four threads issuing at once did 25% less
        # than one. (Other processes' writers still meet the busy handler.)
        self._lock: threading.RLock | None = threading.RLock() if sqlite else None
        self._borrower: Callable[[Connection], AbstractContextManager[object]] | None = None
        # Connections kept open between transactions: checking one out of SQLAlchemy's pool
        # and back in cost more than the BEGIN and COMMIT around an issuance (~30 us of
        # ~500). list.pop and list.append are atomic, so threads share it without a lock. At
        # most the pool's own size is kept, so its overflow stays free for other users.
        self._idle: list[Connection] = []
        size = getattr(engine.pool, "size", None)
        self._keep = int(size()) if callable(size) else 1

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
        return cls(engine, busy_timeout=busy_timeout)

    @property
    def in_memory(self) -> bool:
        """A SQLite database in memory: one connection, gone with this process."""
        return self._in_memory

    @property
    def engine(self) -> Engine:
        """The underlying engine, for other stores sharing the database and for tooling."""
        return self._engine

    def lend_transactions(
        self, borrower: Callable[[Connection], AbstractContextManager[object]]
    ) -> None:
        """Let ``borrower`` read on each transaction's connection while the transaction runs:
        J-LIS's registry on the same database (:meth:`.SqlRegistry.reading_on`), which the
        platform asks in the middle of its units of work."""
        self._borrower = borrower

    @property
    def one_writer(self) -> bool:
        """Writers take turns in this process (SQLite): a second thread adds no concurrency
        to a write, only the hand-off to it."""
        return self._lock is not None

    @contextmanager
    def not_waiting(self) -> Iterator[None]:
        """Within the block, the first transaction raises :class:`WriterBusy` at once, before
        it does anything, if another thread or process holds the writer; later ones wait as
        usual (so a caller that falls back elsewhere on WriterBusy never repeats a committed
        write). Only where :attr:`one_writer`."""
        if self._lock is None:
            raise TypeError("not_waiting is for a store with one writer (SQLite)")
        token = _WAITS_FOR_WRITER.set(False)
        try:
            yield
        finally:
            _WAITS_FOR_WRITER.reset(token)

    @contextmanager
    def _exclusive(self, wait: bool) -> Iterator[None]:
        """SQLite's one writer at a time, among this process's threads: waits at most the
        busy timeout, as SQLite's own busy handler would, then answers busy; or, not to
        ``wait``, raises :class:`WriterBusy` at once."""
        lock = self._lock
        if lock is None:
            yield
            return
        if not wait:
            if not lock.acquire(blocking=False):
                raise WriterBusy("another thread is writing")
        elif not lock.acquire(timeout=self._busy_timeout):
            raise StoreUnavailable(
                "busy", f"another writer held the database for {self._busy_timeout:g} s"
            )
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def transaction(self) -> Iterator[PlatformUnitOfWork]:
        """One unit of work: commits on normal exit, rolls back if the block raises.

        A busy or full database raises :class:`~mynahil.reference_impl.mykey.ports.StoreUnavailable`
        (after the rollback), never a driver error.
        """
        wait = _WAITS_FOR_WRITER.get()
        if not wait:
            _WAITS_FOR_WRITER.set(True)  # only the first transaction within not_waiting
        with (
            unavailable_as_such(),
            self._exclusive(wait),
            self._kept_connection() as connection,
        ):
            if not wait:
                begin_sqlite_now(connection, self._busy_timeout)
            with connection.begin():
                borrower = self._borrower
                with borrower(connection) if borrower is not None else nullcontext():
                    uow = _SqlUnitOfWork(connection)
                    yield uow
                    uow._write_audit()

    @contextmanager
    def _kept_connection(self) -> Iterator[Connection]:
        """A connection for one transaction, taken from those kept open (or a new one), and
        kept again afterwards unless it was invalidated (a lost connection is replaced)."""
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._engine.connect()
        try:
            yield connection
        finally:
            if connection.invalidated or len(self._idle) >= self._keep:
                connection.close()
            else:
                self._idle.append(connection)

    def ping(self) -> None:
        """A short read of the schema's revision; raises when the database does not answer."""
        with self._reading() as connection:
            _REVISION.scalar(connection)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read-only transaction; on SQLite a deferred one, which never blocks writers."""
        shared = self._exclusive(wait=True) if self._in_memory else nullcontext()  # a file: no wait
        with unavailable_as_such(), shared, self._engine.connect() as connection:
            connection.execution_options(**{SQLITE_BEGIN: "DEFERRED"})
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
            with self._reading() as connection:
                records = audit_page(connection, after, batch_size)
            yield from records
            if len(records) < batch_size:
                return
            after = records[-1].seq

    def verify_audit(self) -> tuple[int, ChainBreak | None]:
        """Check the whole hash chain: (records that fit, the first break or None)."""
        return verify_chain(self.audit_records())

    def dispose(self) -> None:
        """Close every pooled connection (a memory database is gone afterwards)."""
        while self._idle:
            self._idle.pop().close()
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


class _SqlUnitOfWork(MyKeyStatements, PointsStatements, StaffStatements, AuditStatements):
    """:class:`PlatformUnitOfWork` on one connection in a transaction."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._pending_audit: list[tuple[AuditEvent, datetime, str]] = []
