"""Questions sent ahead on PostgreSQL (``DriverStatement.send_ahead``, ``prepared.send_ahead``):
a question goes in the pipeline of the connection's next statement, and its answer serves the
question only if that is the very next statement asked on the connection, in the same
transaction; otherwise it is asked again. The questions here are ``nextval`` of a sequence,
whose value says on which round trip it was asked (sequences ignore rollbacks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, String, bindparam, func, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import QueuePool

from mynahil.reference_impl.store import SqlStore
from mynahil.reference_impl.store.driver import DriverStatement, forget_ahead

_NEXT = DriverStatement(select(func.nextval(bindparam("seq", type_=String))))
_OTHER = DriverStatement(select(func.length(bindparam("word", type_=String))))


@pytest.fixture
def store(postgres_url: str) -> Iterator[SqlStore]:
    with SqlStore.open(postgres_url) as opened:
        with opened.engine.begin() as conn:
            conn.execute(text("CREATE SEQUENCE a; CREATE SEQUENCE b"))
        yield opened


def _last(store: SqlStore, seq: str) -> int:
    """The sequence's last value as another connection sees it (0: never asked)."""
    with store.engine.connect() as other:
        last, called = other.execute(text(f"SELECT last_value, is_called FROM {seq}")).one()
    return int(last) if called else 0


def _next(conn: Connection, seq: str) -> int:
    return int(_NEXT.scalar(conn, {"seq": seq}))


def _other(conn: Connection) -> None:
    assert _OTHER.scalar(conn, {"word": "carry"}) == 5


@pytest.fixture
def conn(store: SqlStore) -> Iterator[Connection]:
    """A connection on which the question is prepared (only a prepared one goes ahead)."""
    with store.engine.connect() as opened, opened.begin():
        assert _next(opened, "a") == 1
        yield opened


def test_a_question_goes_with_the_next_statement_and_its_answer_serves_it(
    store: SqlStore, conn: Connection
) -> None:
    assert _NEXT.send_ahead(conn, {"seq": "a"})
    assert _last(store, "a") == 1  # queued, not sent
    _other(conn)
    assert _last(store, "a") == 2  # it went with the other statement
    assert _next(conn, "a") == 2  # its answer, with no round trip of its own
    assert _last(store, "a") == 2
    assert _next(conn, "a") == 3  # asked again: asked anew


def test_an_answer_serves_only_the_very_next_statement(store: SqlStore, conn: Connection) -> None:
    _NEXT.send_ahead(conn, {"seq": "a"})
    _other(conn)
    _other(conn)
    assert _next(conn, "a") == 3
    assert _last(store, "a") == 3


def test_an_answer_serves_only_the_same_question(store: SqlStore, conn: Connection) -> None:
    assert _next(conn, "b") == 1  # prepared for these values' types already; b's own count
    _NEXT.send_ahead(conn, {"seq": "a"})
    _other(conn)
    assert _next(conn, "b") == 2
    assert _next(conn, "a") == 3
    assert _last(store, "a") == 3


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_an_answer_does_not_outlive_its_transaction(store: SqlStore, end: str) -> None:
    with store.engine.connect() as conn:
        transaction = conn.begin()
        assert _next(conn, "a") == 1
        _NEXT.send_ahead(conn, {"seq": "a"})
        _other(conn)
        getattr(transaction, end)()
        with conn.begin():
            assert _next(conn, "a") == 3


def test_forgotten_questions_do_not_go(store: SqlStore, conn: Connection) -> None:
    _NEXT.send_ahead(conn, {"seq": "a"})
    forget_ahead(conn)
    _other(conn)
    assert _last(store, "a") == 1
    _NEXT.send_ahead(conn, {"seq": "a"})
    _other(conn)
    forget_ahead(conn)
    assert _next(conn, "a") == 3


def test_a_failing_question_fails_the_statement_it_went_with(
    store: SqlStore, conn: Connection
) -> None:
    """The server skips a pipeline's commands after a failure, and the transaction is failed
    for every later statement: its carrier raises, as the question itself would have."""
    _NEXT.send_ahead(conn, {"seq": "no_such_sequence"})
    with pytest.raises(ProgrammingError, match="no_such_sequence"):
        _other(conn)


def test_a_question_not_prepared_on_the_connection_does_not_go_ahead(store: SqlStore) -> None:
    with store.engine.connect() as conn, conn.begin():
        assert not _NEXT.send_ahead(conn, {"seq": "a"})
        _other(conn)
        assert _last(store, "a") == 0
        assert _next(conn, "a") == 1


def test_on_sqlite_nothing_goes_ahead(tmp_path: Path) -> None:
    with (
        SqlStore.open(f"sqlite:///{tmp_path / 'store.db'}") as sqlite_store,
        sqlite_store.engine.connect() as conn,
        conn.begin(),
    ):
        statement = DriverStatement(select(func.length(bindparam("word", type_=String))))
        assert statement.scalar(conn, {"word": "abc"}) == 3
        assert not statement.send_ahead(conn, {"word": "abc"})
        assert statement.scalar(conn, {"word": "abcd"}) == 4


_STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["ahead", "ask"]), st.sampled_from(["a", "b"])),
        st.tuples(st.sampled_from(["other", "commit", "rollback", "forget"]), st.none()),
    ),
    max_size=14,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_STEPS)
def test_every_answer_is_what_asking_then_would_have_given(
    store: SqlStore, steps: list[tuple[str, str | None]]
) -> None:
    """Any sequence of questions sent ahead, questions asked, other statements, commits,
    rollbacks and forgetting, against a model: a question sent ahead is asked (and the
    sequence moves) with the connection's next statement, after it; an answer is taken only
    by the very next statement on the connection, if that asks the same, in the transaction
    it was answered in."""
    with store.engine.connect() as conn:
        forget_ahead(conn)  # a pooled connection: nothing left from an earlier example
        counts = {seq: _last(store, seq) for seq in "ab"}
        transaction = conn.begin()
        for seq in "ab":  # prepared, so that questions go ahead
            counts[seq] += 1
            assert _next(conn, seq) == counts[seq]
        pending: list[str] = []
        answered: dict[str, int] = {}
        in_transaction = True

        def run(asking: str | None) -> int | None:
            """The model of one statement; what it returns if it asks ``asking``."""
            nonlocal pending, answered, in_transaction
            taken = answered.get(asking) if asking and in_transaction else None
            answered = {}
            if taken is not None:
                return taken
            in_transaction = True
            value = None
            if asking is not None:
                counts[asking] += 1
                value = counts[asking]
            carried: dict[str, int] = {}
            for queued in pending:
                counts[queued] += 1
                carried.setdefault(queued, counts[queued])
            answered, pending = carried, []
            return value

        for step, named in steps:
            if step == "ahead":
                assert named is not None
                assert _NEXT.send_ahead(conn, {"seq": named})
                pending.append(named)
            elif step == "ask":
                assert named is not None
                assert _next(conn, named) == run(named)
            elif step == "other":
                _other(conn)
                run(None)
            elif step == "forget":
                forget_ahead(conn)
                pending, answered = [], {}
            else:
                getattr(transaction, step)()
                transaction = conn.begin()
                in_transaction = False
        transaction.rollback()
    assert {seq: _last(store, seq) for seq in "ab"} == counts


def test_forgetting_on_an_invalidated_connection_opens_no_other(store: SqlStore) -> None:
    """The registry forgets what it sent when the store's unit ends, also when the unit failed
    because its connection broke: that must not reconnect (nor raise over the failure)."""
    with store.engine.connect() as conn:
        transaction = conn.begin()
        assert _next(conn, "a") == 1
        _NEXT.send_ahead(conn, {"seq": "a"})
        conn.invalidate()
        pool = store.engine.pool
        assert isinstance(pool, QueuePool)
        before = pool.checkedout()
        forget_ahead(conn)
        assert conn.invalidated
        assert pool.checkedout() == before
        transaction.rollback()
