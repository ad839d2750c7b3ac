"""The store's database: engines set up per backend, migrations, and what its errors mean.

Concurrency, per backend:

- **SQLite** (the default): WAL journal, ``synchronous=NORMAL`` (durable against a crash of
  the process; a power cut or OS crash may lose the last commits, never corrupt the file;
  ``sqlite:///path?synchronous=full`` syncs the WAL at every commit, durable against those
  too, at ~1.7x the cost of an issuance here),
  the WAL copied back into the database once it holds :data:`WAL_CHECKPOINT_PAGES` pages,
  foreign keys on, and every read-write transaction starts with ``BEGIN IMMEDIATE``, so
  concurrent writers queue on the write lock (up to ``busy_timeout``) instead of failing with
  "database is locked" half-way through. Reads use a deferred BEGIN (the execution option
  :data:`SQLITE_BEGIN`) and never block writers.
- **PostgreSQL**: READ COMMITTED, server-side prepared statements (a statement over arrays
  excepted, see :mod:`.driver`), ``lock_timeout`` set to the busy timeout.

Statements the stores run per request go through :mod:`.driver`; SQLAlchemy's own
``connection.execute`` is used here only for migrations (Alembic and its advisory lock).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TextIO

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from mynahil.reference_impl.mykey.ports import StoreUnavailable, WriterBusy

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "MIGRATIONS",
    "SQLITE_BEGIN",
    "SQLITE_SYNCHRONOUS",
    "WAL_CHECKPOINT_PAGES",
    "alembic_config",
    "begin_sqlite_now",
    "is_unique_violation",
    "make_engine",
    "migrate",
    "unavailable_as_such",
    "upgrade",
]

DEFAULT_BUSY_TIMEOUT: Final = 10.0
"""Seconds a writer waits for SQLite's write lock, or for a row lock on PostgreSQL
(``lock_timeout``), before the store gives up with ``StoreUnavailable("busy")``."""

MIGRATIONS: Final = Path(__file__).with_name("migrations")

SQLITE_SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}
"""The ``synchronous`` a SQLite URL may ask for (``?synchronous=full``); normal by default."""

WAL_CHECKPOINT_PAGES: Final = 10_000
"""SQLite's ``wal_autocheckpoint`` (its default is 1,000 pages): the commit that takes the WAL
past this many pages (~40 MB) copies it back into the database. An issuance writes ~11 pages
to the WAL, mostly the same hot pages again (the audit head, each table's and index's last
leaf); copied back every ~900 issuances instead of every ~90, each is copied once where it
was copied ten times: ~1.07-1.19x the issuance rate in alternating runs. The commit that
copies back pauses about as long as with 1,000 (its fsyncs dominate), ten times less often."""

SQLITE_BEGIN: Final = "mynahil_sqlite_begin"  # execution option: IMMEDIATE (default) or DEFERRED
_NOT_WAITING: Final = "mynahil_busy_timeout_zero"  # pool record info: begin_sqlite_now's timeout
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
        # Server-side prepared statements, prepared by the driver on libpq (.prepared), never
        # by psycopg (prepare_threshold None): psycopg answers a ROLLBACK with DEALLOCATE ALL
        # once it holds a prepared statement, which would drop the driver's. PostgreSQL's
        # default plan_cache_mode lets a statement of single values keep a generic plan (no
        # planning per run: an issuance ran ~1.25x faster than with force_custom_plan); the
        # batch lookups over arrays are never prepared (see .driver).
        # A writer waits for a row lock at most busy_timeout (as SQLite's writers do), then
        # the request answers 503 instead of hanging.
        given = parsed.query.get("options", ())
        given = (given,) if isinstance(given, str) else tuple(given)
        options = " ".join(
            (
                *given,
                f"-c lock_timeout={int(busy_timeout * 1000)}",
            )
        )
        # No ping on checkout (a round trip for every transaction and J-LIS question): a
        # connection the server dropped fails its first statement instead, which answers 503
        # busy (unavailable_as_such) and is replaced in the pool.
        return create_engine(
            parsed,
            pool_pre_ping=False,
            connect_args={"prepare_threshold": None, "options": options},
        )
    if backend != "sqlite":
        raise ValueError(
            f"unsupported database URL {parsed.render_as_string()!r}: use sqlite:///path, "
            "sqlite:// (memory) or postgresql+psycopg://user@host/db"
        )
    synchronous = str(parsed.query.get("synchronous", "normal")).lower()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(
            f"synchronous={synchronous!r} in the database URL: use one of "
            + ", ".join(SQLITE_SYNCHRONOUS)
        )
    parsed = parsed.difference_update_query(["synchronous"])
    if parsed.database in (None, "", ":memory:"):
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
    _configure_sqlite(engine, busy_timeout, synchronous)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout: float, synchronous: str) -> None:
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
            cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS[synchronous]}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Straight to sqlite3: this runs for every transaction, and SQLAlchemy's execution
        # path cost more than SQLite's BEGIN. Begun already: by begin_sqlite_now.
        driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        if driver.in_transaction:
            return
        info = conn.connection.info
        if info.get(_NOT_WAITING):  # begin_sqlite_now left it at 0: this one waits again
            driver.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            info[_NOT_WAITING] = False
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
        driver.execute("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")


def begin_sqlite_now(connection: Connection) -> None:
    """BEGIN IMMEDIATE on SQLite without waiting for another process's writer: raises
    :class:`WriterBusy` if one holds the write lock. ``connection.begin()`` then finds the
    transaction begun.

    The connection's busy timeout stays 0 until a transaction that waits begins on it
    (``_begin`` sets it back): on the server's event loop one such transaction follows
    another, and the two PRAGMAs around each cost about half as much as its BEGIN."""
    driver: sqlite3.Connection = connection.connection.driver_connection  # type: ignore[assignment]
    info = connection.connection.info
    if not info.get(_NOT_WAITING):
        driver.execute("PRAGMA busy_timeout=0")
        info[_NOT_WAITING] = True
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
            raise WriterBusy("another process holds the write lock") from None
        raise


def alembic_config(
    connection: Connection | None = None, *, output_buffer: TextIO | None = None
) -> Config:
    """Alembic configured in code (no ini file is needed at run time), migrating on
    ``connection`` if given; ``output_buffer`` takes the SQL of offline mode."""
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if connection is not None:
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
        command.upgrade(alembic_config(connection), "head")


def upgrade(url: str | URL) -> None:
    """:func:`migrate` the database at ``url``."""
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


# --- what the database's errors mean ----------------------------------------------------------


@contextmanager
def unavailable_as_such() -> Iterator[None]:
    """Errors that mean "busy" or "full" become :class:`StoreUnavailable`, whether they come
    through SQLAlchemy or straight from the driver (BEGIN IMMEDIATE, :mod:`.driver`)."""
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable("busy", f"no database connection free ({exc})") from exc
    except Exception as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            lost = str(exc.orig).splitlines()[0] if exc.orig else "lost"
            raise StoreUnavailable("busy", f"the database connection was lost ({lost})") from exc
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


def is_unique_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == _UNIQUE_SQLSTATE)
    return getattr(exc.orig, "sqlite_errorname", None) in _UNIQUE_SQLITE
