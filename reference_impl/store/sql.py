"""The platform's store: one implementation for SQLite and PostgreSQL.

:class:`SqlStore` implements :class:`mynahil.reference_impl.mykey.ports.Store`. Each
:meth:`SqlStore.transaction` is one unit of work: its writes commit when the block ends
normally (before it returns) and roll back when it raises. Its unit of work is assembled from
one module per part of the platform (:mod:`.mykey_sql`, :mod:`.points_sql`, :mod:`.staff_sql`,
:mod:`.audit_sql`), each running its statements through :mod:`.driver`; the engine, its
locking per backend and the migrations are :mod:`.engine`'s.

``sqlite://`` (memory) is one shared connection, so its transactions are serialised by a
lock in the store. On a SQLite file this process's writers take turns at that lock too, and
where each commit syncs (``?synchronous=full``) they share commits (group commit): a unit
that finishes while others queue for the writer leaves its transaction open for them, its
own writes released as a SAVEPOINT, and returns once the last of them has committed them
all; a unit that fails rolls back its SAVEPOINT alone. On PostgreSQL each unit is its own
transaction (the server may group their WAL flushes, ``commit_delay``); uniqueness is left to
unique indexes, with a SAVEPOINT around each claim so a :class:`Conflict` leaves the
transaction usable. Either way an audit record commits or rolls
back with the rest of its unit, and seq follows commit order without gaps (:mod:`.audit_sql`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Final, Protocol

from sqlalchemy import (
    Connection,
    Engine,
    RootTransaction,
    column,
    select,
    table,
)
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

GROUP_LIMIT: Final = 32
"""Units of work one SQLite commit takes at most: a unit's answer waits for at most so many
others' work after its own."""

ORPHAN_CHECK: Final = 0.05
"""Seconds a unit waits for its group's commit before making sure the group still has a
unit to commit it (those that queued behind it may have given up waiting)."""

_WAITS_FOR_WRITER: ContextVar[bool] = ContextVar("waits_for_writer", default=True)
"""False within :meth:`SqlStore.not_waiting` until its first transaction begins."""

_IN_UNIT: ContextVar[bool] = ContextVar("in_unit", default=False)
"""True while this thread runs a unit of work on a SQLite file (a nested one is refused)."""

_REVISION = DriverStatement(select(column("version_num")).select_from(table("alembic_version")))


class PlatformUnitOfWork(PointsUnitOfWork, StaffUnitOfWork, Protocol):
    """One transaction over everything the platform keeps: MyKey, points and staff."""


class _Member:
    """A unit of work whose writes wait in an open group for the commit."""

    __slots__ = ("committed", "error")

    def __init__(self) -> None:
        self.committed = threading.Event()
        self.error: BaseException | None = None


class _Savepoint:
    """A unit's SAVEPOINT in a group's transaction, straight to sqlite3: SQLAlchemy's
    ``begin_nested`` cost ~60 us a unit, SQLite's statements ~1."""

    __slots__ = ("_driver",)

    def __init__(self, connection: Connection) -> None:
        driver = connection.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        self._driver = driver
        driver.execute("SAVEPOINT unit")

    def commit(self) -> None:
        self._driver.execute("RELEASE unit")

    def rollback(self) -> None:
        self._driver.execute("ROLLBACK TO unit")
        self._driver.execute("RELEASE unit")


class _CommitGroup:
    """One SQLite transaction that queued units of work share, each in its SAVEPOINT."""

    __slots__ = ("connection", "members", "root", "units")

    def __init__(self, connection: Connection, root: RootTransaction) -> None:
        self.connection = connection
        self.root = root
        self.members: list[_Member] = []
        self.units = 0


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
        # Threads blocked on that lock (list.append and list.pop are atomic): a unit that
        # finishes while one queues leaves the transaction open for it to share the commit.
        self._arrivals: list[None] = []
        self._group: _CommitGroup | None = None
        self._groups_commits = sqlite and not self._in_memory and _syncs_each_commit(engine)
        self._borrower: Callable[[Connection], AbstractContextManager[object]] | None = None
        # Connections kept open between transactions: checking one out of SQLAlchemy's pool
        # and back in cost more than the BEGIN and COMMIT around an issuance (~30 us of
        # ~500). list.pop and list.append are atomic, so threads share it without a lock. At
        # most the pool's own size is kept, so its overflow stays free for other users.
        self._idle: list[Connection] = []
        size = getattr(engine.pool, "size", None)
        self._keep_at_most = int(size()) if callable(size) else 1

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
        """SQLite's one writer at a time among this process's threads (:meth:`_take_writer`)."""
        lock = self._lock
        if lock is None:
            yield
            return
        self._take_writer(lock, wait)
        try:
            yield
        finally:
            lock.release()

    def _take_writer(self, lock: threading.RLock, wait: bool) -> None:
        """Waits at most the busy timeout, as SQLite's own busy handler would, then answers
        busy; or, not to ``wait``, raises :class:`WriterBusy` at once."""
        if not wait:
            if not lock.acquire(blocking=False):
                raise WriterBusy("another thread is writing")
            return
        self._arrivals.append(None)
        try:
            taken = lock.acquire(timeout=self._busy_timeout)
        finally:
            self._arrivals.pop()
        if not taken:
            raise StoreUnavailable(
                "busy", f"another writer held the database for {self._busy_timeout:g} s"
            )

    @contextmanager
    def transaction(self) -> Iterator[PlatformUnitOfWork]:
        """One unit of work: commits on normal exit, rolls back if the block raises.

        A busy or full database raises :class:`~mynahil.reference_impl.mykey.ports.StoreUnavailable`
        (after the rollback), never a driver error.
        """
        wait = _WAITS_FOR_WRITER.get()
        if not wait:
            _WAITS_FOR_WRITER.set(True)  # only the first transaction within not_waiting
        if self._groups_commits:
            with self._grouped(wait) as uow:
                yield uow
            return
        with (
            unavailable_as_such(),
            self._exclusive(wait),
            self._kept_connection() as connection,
        ):
            if not wait:
                begin_sqlite_now(connection)
            with connection.begin(), self._lent(connection):
                uow = _SqlUnitOfWork(connection)
                yield uow
                uow._write_audit(last=True)  # then connection.begin() commits

    def _lent(self, connection: Connection) -> AbstractContextManager[object]:
        borrower = self._borrower
        return borrower(connection) if borrower is not None else nullcontext()

    @contextmanager
    def _grouped(self, wait: bool) -> Iterator[PlatformUnitOfWork]:
        """A unit of work on a SQLite file, in the open group's transaction if there is one
        (group commit, see the module's docstring). Returns once its writes are committed;
        one that must not ``wait`` never waits for another's work: it commits the group."""
        lock = self._lock
        assert lock is not None
        if _IN_UNIT.get():
            # Its writes would join the enclosing unit's transaction, and their commit could
            # come before the enclosing unit has finished (it would wait for SQLite's lock
            # held by its own connection, once, with a separate connection per unit).
            raise RuntimeError("a store transaction inside another on the same thread")
        member: _Member | None = None
        with unavailable_as_such():
            self._take_writer(lock, wait)
            try:
                group = self._group
                savepoint = None
                if group is None:
                    group = self._group = self._start_group(wait)
                else:
                    savepoint = self._join(group)
                group.units += 1
                inside = _IN_UNIT.set(True)
                try:
                    with self._lent(group.connection):
                        uow = _SqlUnitOfWork(group.connection)
                        yield uow
                        uow._write_audit()
                except BaseException:
                    _IN_UNIT.reset(inside)
                    if savepoint is None:  # alone in the transaction: all of it goes
                        self._end_group(group)
                    else:
                        self._leave(group, savepoint)
                        # Committing the others' work may fail too: they are told so, and
                        # this unit answers with its own error, not the commit's.
                        with suppress(Exception):
                            self._pass_on(group, None, wait)
                    raise
                _IN_UNIT.reset(inside)
                if savepoint is not None:
                    savepoint.commit()
                member = self._pass_on(group, _Member(), wait)
            finally:
                lock.release()
        if member is not None:
            self._await_commit(lock, group, member)

    def _start_group(self, wait: bool) -> _CommitGroup:
        connection = self._take_connection()
        try:
            if not wait:
                begin_sqlite_now(connection)
            return _CommitGroup(connection, connection.begin())
        except BaseException:
            self._keep(connection)
            raise

    def _join(self, group: _CommitGroup) -> _Savepoint:
        try:
            return _Savepoint(group.connection)
        except BaseException:  # the connection broke: the group's work is lost
            self._end_group(group)
            raise

    def _leave(self, group: _CommitGroup, savepoint: _Savepoint) -> None:
        """A failed unit's writes gone, the group's kept (or, if that fails, all gone)."""
        try:
            savepoint.rollback()
        except BaseException:
            self._end_group(group)
            raise

    def _pass_on(self, group: _CommitGroup, member: _Member | None, wait: bool) -> _Member | None:
        """With the writer held, after a unit's work: leave the group open for a unit that
        queues for the writer (``member`` then waits for the commit), or commit it now. Raises
        what the commit raised."""
        if wait and self._arrivals and group.units < GROUP_LIMIT:
            if member is not None:
                group.members.append(member)
            return member
        error = self._end_group(group, commit=True)
        if error is not None:
            raise error
        return None

    def _end_group(self, group: _CommitGroup, *, commit: bool = False) -> BaseException | None:
        """With the writer held: close the open group, commit (or roll back) its transaction,
        keep its connection, and tell the units waiting in it; what the commit raised, if it
        failed (they are told it too, and that a roll-back undid their writes)."""
        self._group = None
        error: BaseException | None = None
        try:
            with unavailable_as_such():
                if commit:
                    group.root.commit()
                else:
                    group.root.rollback()
        except BaseException as exc:
            error = exc
            try:
                group.root.rollback()
            except Exception:  # the connection is gone; the pool replaces it
                group.connection.invalidate()
        finally:
            self._keep(group.connection)
        told = error
        if told is None and not commit:
            told = StoreUnavailable("busy", "a unit of work sharing the transaction broke it")
        for member in group.members:
            member.error = told
            member.committed.set()
        return error

    def _await_commit(self, lock: threading.RLock, group: _CommitGroup, member: _Member) -> None:
        """Wait for the group's commit; commit it if no unit is left to (those that queued
        behind this one gave up waiting for the writer)."""
        while not member.committed.wait(ORPHAN_CHECK):
            if lock.acquire(timeout=ORPHAN_CHECK):
                try:
                    if self._group is group:
                        self._end_group(group, commit=True)
                finally:
                    lock.release()
        error = member.error
        if error is None:
            return
        kind = error.kind if isinstance(error, StoreUnavailable) else "busy"
        raise StoreUnavailable(kind, f"the commit this was in failed: {error}") from error

    @contextmanager
    def _kept_connection(self) -> Iterator[Connection]:
        """A connection for one transaction, taken from those kept open (or a new one), and
        kept again afterwards unless it was invalidated (a lost connection is replaced)."""
        connection = self._take_connection()
        try:
            yield connection
        finally:
            self._keep(connection)

    def _take_connection(self) -> Connection:
        try:
            return self._idle.pop()
        except IndexError:
            return self._engine.connect()

    def _keep(self, connection: Connection) -> None:
        if connection.invalidated or len(self._idle) >= self._keep_at_most:
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


def _syncs_each_commit(engine: Engine) -> bool:
    """SQLite syncs the WAL at every commit (``synchronous`` FULL or EXTRA). Only then do its
    writers share commits: a sync is most of such a commit (four threads issuing on
    ``?synchronous=full`` did ~1.25x with groups), where with NORMAL a commit is an append to
    the WAL, and a unit kept waiting for its group's commit could not overlap its next
    request's checks with the writer's work (four threads: ~0.97x)."""
    with engine.connect() as connection:
        level = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
    return int(level) >= 2


_migrate = migrate  # SqlStore.open's ``migrate`` flag shadows the function's name


class _SqlUnitOfWork(MyKeyStatements, PointsStatements, StaffStatements, AuditStatements):
    """:class:`PlatformUnitOfWork` on one connection in a transaction."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._pending_audit: list[tuple[AuditEvent, datetime, str]] = []
