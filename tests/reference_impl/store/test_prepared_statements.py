"""PostgreSQL's statements run prepared on libpq (:mod:`mynahil.reference_impl.store.prepared`):
placeholders numbered as psycopg numbers them, a statement prepared once per connection for
its life (rollbacks included), each transaction begun as psycopg would begin it (with its
first statement, in one pipeline), and a transaction's last statement sent with its COMMIT."""

from __future__ import annotations

import select as waiting
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import _queries
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Connection, bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from mynahil.reference_impl.mykey.ports import StoreUnavailable
from mynahil.reference_impl.store import SqlStore, prepared
from mynahil.reference_impl.store.driver import DriverStatement, insert_new
from mynahil.reference_impl.store.tables import persons
from tests.support import TIMING_SENSITIVE

_LETTER = {PyFormat.AUTO: "s", PyFormat.BINARY: "b", PyFormat.TEXT: "t"}


def _value(format_: PyFormat, n: int) -> object:
    """A value of its own for the n-th name, as that format carries it."""
    return {PyFormat.AUTO: n, PyFormat.BINARY: [n, 2], PyFormat.TEXT: f"x{n}"}[format_]


@st.composite
def pyformat_queries(draw: st.DrawFn) -> tuple[str, dict[str, PyFormat]]:
    """SQL text with named placeholders (a name keeps one format), %% and plain text."""
    names = draw(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), max_size=4))
    formats = {name: draw(st.sampled_from(list(_LETTER))) for name in names}
    literal = st.text(st.characters(exclude_characters="%", codec="utf-8"), max_size=8)
    parts = draw(
        st.lists(st.one_of(literal, st.just("%%"), st.sampled_from(names or ["%%"])), max_size=10)
    )
    sql = "".join(f"%({p})" + _LETTER[formats[p]] if p in formats else p for p in parts)
    return sql, {name: formats[name] for name in names if f"%({name})" in sql}


@given(pyformat_queries())
def test_placeholders_are_numbered_as_psycopg_numbers_them(
    query: tuple[str, dict[str, PyFormat]],
) -> None:
    """psycopg's own conversion (what its cursor sends) is the reference: same SQL, and each
    number bound to the value psycopg binds to it, in the format it asks for."""
    sql, formats = query
    values = {name: _value(format_, n) for n, (name, format_) in enumerate(formats.items())}
    reference = _queries.PostgresQuery(Transformer())
    reference.convert(sql, values)
    ours = prepared.numbered(sql)
    assert ours is not None
    assert ours.sql == reference.query
    assert sorted(ours.order) == sorted(formats)
    assert list(ours.formats) == [formats[name] for name in ours.order]
    mine = Transformer()
    dumped = mine.dump_sequence([values[name] for name in ours.order], ours.formats)
    assert dumped == list(reference.params or [])
    assert list(mine.formats or []) == list(reference.formats or [])


@pytest.mark.parametrize("sql", ["SELECT %s", "SELECT %(a)x", "SELECT 50%", "SELECT %(a"])
def test_a_placeholder_other_than_a_named_one_is_left_to_the_cursor(sql: str) -> None:
    assert prepared.numbered(sql) is None


@pytest.fixture
def store(postgres_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(postgres_url) as opened:
        yield opened


_NOW = datetime(2020, 9, 1, 9, 30, tzinfo=UTC)
_NEW_PERSON = insert_new(persons, ["person_ref", "created_at"])
_ADD_PERSON = DriverStatement(
    insert(persons).values(person_ref=bindparam("person_ref"), created_at=bindparam("created_at"))
)
_PERSON_ID = DriverStatement(
    select(persons.c.person_id).where(persons.c.person_ref == bindparam("ref"))
)
_ISOLATION = DriverStatement(select(func.current_setting("transaction_isolation")))
_READ_ONLY = DriverStatement(select(func.current_setting("transaction_read_only")))


def _prepared_like(conn: Connection, start: str) -> list[str]:
    """The statements prepared on ``conn``'s session that start with ``start``."""
    found = conn.execute(
        text("SELECT statement FROM pg_prepared_statements WHERE statement LIKE :start"),
        {"start": start + "%"},
    )
    return list(found.scalars())


def test_a_statement_stays_prepared_through_rollbacks_and_savepoints(store: SqlStore) -> None:
    """psycopg answers a ROLLBACK with DEALLOCATE ALL once it has prepared a statement of its
    own: the driver's statements must outlive it (they failed with "prepared statement does
    not exist" when psycopg prepared too), and be prepared once on the connection."""
    with store.engine.connect() as conn:
        for round_ in range(3):
            with conn.begin() as transaction:
                assert _PERSON_ID.scalar(conn, {"ref": "nobody"}) is None
                with conn.begin_nested() as savepoint:
                    _NEW_PERSON.scalar(conn, {"person_ref": f"p{round_}", "created_at": _NOW})
                    assert _PERSON_ID.scalar(conn, {"ref": f"p{round_}"}) is not None
                    savepoint.rollback()
                assert _PERSON_ID.scalar(conn, {"ref": f"p{round_}"}) is None
                transaction.rollback()
        with conn.begin():
            assert len(_prepared_like(conn, "SELECT persons.person_id")) == 1
            assert len(_prepared_like(conn, "INSERT INTO persons")) == 1


def test_a_refused_statement_raises_as_sqlalchemy_and_the_connection_goes_on(
    store: SqlStore,
) -> None:
    with store.engine.connect() as conn:
        with conn.begin():
            _NEW_PERSON.scalar(conn, {"person_ref": "p", "created_at": _NOW})
        with pytest.raises(IntegrityError) as raised, conn.begin():
            _ADD_PERSON.run(conn, {"person_ref": "p", "created_at": _NOW})
        assert isinstance(raised.value.orig, psycopg.errors.UniqueViolation)
        with conn.begin():
            assert _PERSON_ID.scalar(conn, {"ref": "p"}) is not None


@pytest.mark.parametrize(
    ("options", "isolation", "read_only"),
    [
        ({}, "read committed", "off"),
        ({"isolation_level": "SERIALIZABLE"}, "serializable", "off"),
        (
            {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True},
            "repeatable read",
            "on",
        ),
    ],
)
def test_a_transaction_begins_with_the_connections_isolation_and_access_mode(
    store: SqlStore, options: dict[str, Any], isolation: str, read_only: str
) -> None:
    """The first statement of a transaction begins it (no cursor ran before it), as psycopg
    would have: at the isolation level and in the access mode SQLAlchemy set."""
    with store.engine.connect() as plain:
        conn = plain.execution_options(**options)
        for _ in range(2):  # BEGIN on its own (preparing first), then with the statement
            with conn.begin():
                assert _ISOLATION.scalar(conn) == isolation
                assert _READ_ONLY.scalar(conn) == read_only


def test_in_autocommit_each_statement_commits_on_its_own(store: SqlStore) -> None:
    with store.engine.connect() as plain:
        conn = plain.execution_options(isolation_level="AUTOCOMMIT")
        _NEW_PERSON.scalar(conn, {"person_ref": "p", "created_at": _NOW})
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        assert driver.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with store.engine.connect() as other:
        assert _PERSON_ID.scalar(other, {"ref": "p"}) is not None


def _status(conn: Connection) -> psycopg.pq.TransactionStatus:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return psycopg.pq.TransactionStatus(driver.pgconn.transaction_status)


def _committed(store: SqlStore, ref: str) -> bool:
    with store.engine.connect() as other:
        return _PERSON_ID.scalar(other, {"ref": ref}) is not None


def test_a_last_statement_takes_the_commit_with_it(store: SqlStore) -> None:
    """``one_then_commit`` returns with the transaction committed (seen from another
    connection before the caller's own commit, which then has nothing to send), whether the
    statement was being prepared, began the transaction with BEGIN, or came after others."""
    with store.engine.connect() as conn:
        for round_ in range(3):
            with conn.begin():
                if round_ == 2:
                    assert _PERSON_ID.scalar(conn, {"ref": "nobody"}) is None
                row = _NEW_PERSON.one_then_commit(
                    conn, {"person_ref": f"p{round_}", "created_at": _NOW}
                )
                assert row is not None
                assert _status(conn) == psycopg.pq.TransactionStatus.IDLE
                assert _committed(store, f"p{round_}")
        with conn.begin():  # the connection goes on
            assert _PERSON_ID.scalar(conn, {"ref": "p0"}) is not None


def test_a_refused_last_statement_commits_nothing(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        with conn.begin():
            _NEW_PERSON.scalar(conn, {"person_ref": "p", "created_at": _NOW})

        def clash() -> None:
            with conn.begin():
                _NEW_PERSON.scalar(conn, {"person_ref": "q", "created_at": _NOW})
                _ADD_PERSON.one_then_commit(conn, {"person_ref": "p", "created_at": _NOW})

        for _ in range(2):  # the clashing insert being prepared, then prepared
            with pytest.raises(IntegrityError) as raised:
                clash()
            assert isinstance(raised.value.orig, psycopg.errors.UniqueViolation)
            assert not _committed(store, "q")
        with conn.begin():
            assert _PERSON_ID.scalar(conn, {"ref": "p"}) is not None


def test_a_refused_commit_raises_and_commits_nothing(store: SqlStore) -> None:
    """A constraint checked at COMMIT (deferred) fails the COMMIT sent with the statement:
    the caller sees the error, nothing of the transaction is kept, the connection goes on."""
    with store.engine.begin() as setup:
        setup.execute(
            text(
                "CREATE TABLE once (n integer,"
                " CONSTRAINT once_n UNIQUE (n) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    add = DriverStatement(text("INSERT INTO once (n) VALUES (:n)"))
    with store.engine.connect() as conn:

        def clash_at_commit() -> None:
            with conn.begin():
                _NEW_PERSON.scalar(conn, {"person_ref": "q", "created_at": _NOW})
                add.run(conn, {"n": 1})
                add.one_then_commit(conn, {"n": 1})  # the clash is found at COMMIT

        for _ in range(2):
            with pytest.raises(IntegrityError) as raised:
                clash_at_commit()
            assert isinstance(raised.value.orig, psycopg.errors.UniqueViolation)
            assert _status(conn) == psycopg.pq.TransactionStatus.IDLE
            assert not _committed(store, "q")
        with conn.begin():
            add.one_then_commit(conn, {"n": 1})
        assert conn.execute(text("SELECT count(*) FROM once")).scalar() == 1
        conn.rollback()


@TIMING_SENSITIVE
def test_other_threads_run_while_a_pipeline_awaits_its_answer(store: SqlStore) -> None:
    """libpq's own wait for a pipeline's results holds the GIL; the driver waits without it,
    as it does for a single statement, so the process's other threads go on meanwhile."""
    sleep = DriverStatement(select(func.pg_sleep(bindparam("seconds"))))
    counted = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counted
        while not stop.is_set():
            counted += 1

    def counted_during(wait: Any) -> int:
        before = counted
        wait()
        return counted - before

    spinner = threading.Thread(target=count)
    spinner.start()
    try:
        with store.engine.connect() as conn:
            for _ in range(2):  # prepared, then BEGIN, the sleep and COMMIT in one pipeline
                with conn.begin():
                    pipelined = counted_during(
                        lambda: sleep.one_then_commit(conn, {"seconds": 0.3})
                    )
        idle = counted_during(lambda: time.sleep(0.3))
    finally:
        stop.set()
        spinner.join()
    assert pipelined > idle / 4, (pipelined, idle)


class _Interrupted(BaseException):
    """Stands for a signal's exception (KeyboardInterrupt, …) raised while a pipeline waits."""


class _InterruptedPoll:
    """``select.poll`` whose first ``poll`` (of all its instances) raises; it waits after."""

    interrupts = 1

    def __init__(self) -> None:
        self._poll = _REAL_POLL()

    def register(self, *args: Any) -> None:
        self._poll.register(*args)

    def poll(self, *args: Any) -> list[tuple[int, int]]:
        if _InterruptedPoll.interrupts:
            _InterruptedPoll.interrupts -= 1
            raise _Interrupted
        return self._poll.poll(*args)


_REAL_POLL = waiting.poll


def _prepared_on_its_connection(store: SqlStore) -> psycopg.Connection[Any]:
    """The store's one pooled connection, its look-up prepared, so that the next transaction
    sends BEGIN with it in a pipeline."""
    for _ in range(2):
        with store.transaction() as uow:
            uow.record_by_serial(1)
            driver = uow._conn.connection.driver_connection  # type: ignore[attr-defined]
    assert isinstance(driver, psycopg.Connection)
    return driver


@pytest.mark.parametrize("interrupts", [1, 2])
def test_a_pipeline_interrupted_while_it_waits_leaves_no_unread_answers(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, interrupts: int
) -> None:
    """Interrupted while its answers are on their way, a pipeline's answers are read before
    the interrupt goes on, unchanged, so that the connection can be rolled back and used
    again; interrupted again while reading them, the connection is closed instead (its
    transaction's rollback then finds it lost) and the pool opens another. Either way no
    connection with answers nobody will read is used again."""
    _prepared_on_its_connection(store)
    monkeypatch.setattr(_InterruptedPoll, "interrupts", interrupts)
    with monkeypatch.context() as patched:
        patched.setattr(waiting, "poll", _InterruptedPoll)
        expected = _Interrupted if interrupts == 1 else StoreUnavailable
        with pytest.raises(expected), store.transaction() as uow:
            uow.record_by_serial(1)
    for _ in range(2):
        with store.transaction() as uow:
            assert uow.record_by_serial(1) is None


class _SyncInterrupted:
    """A connection's libpq connection, interrupted as it queues a pipeline's sync point."""

    def __init__(self, pgconn: Any) -> None:
        self._pgconn = pgconn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pgconn, name)

    def pipeline_sync(self) -> None:
        raise _Interrupted


def test_a_pipeline_stopped_before_its_sync_point_closes_its_connection(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its commands (a COMMIT among them, perhaps) may not all be queued: waiting for their
    answers would wait for ever, and completing them could commit what its caller was told
    failed. The connection is closed instead; the pool opens another."""
    driver = _prepared_on_its_connection(store)
    monkeypatch.setattr(driver, "pgconn", _SyncInterrupted(driver.pgconn))
    outcome: list[BaseException] = []

    def interrupted() -> None:
        try:
            with store.transaction() as uow:
                uow.record_by_serial(1)
        except BaseException as exc:  # _Interrupted stands for a signal's
            outcome.append(exc)

    worker = threading.Thread(target=interrupted, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "it waited for the answers of a pipeline never completed"
    assert len(outcome) == 1
    assert isinstance(outcome[0], _Interrupted | StoreUnavailable)
    assert driver.closed
    for _ in range(2):
        with store.transaction() as uow:
            assert uow.record_by_serial(1) is None
