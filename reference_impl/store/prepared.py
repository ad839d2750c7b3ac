"""PostgreSQL: the driver's prepared statements run on libpq directly, not through a cursor.

psycopg's cursor spends ~80 µs of Python around libpq's one call per statement (its query
cache, its prepare manager, its non-blocking wait loop, the result's set-up): on a MyKey
issuance that was a third of the client's CPU. Here a statement the driver prepares (all but
the look-ups over arrays, which are planned for their keys every time) has its values adapted
by psycopg's own adapters (:class:`~psycopg.adapt.Transformer`, so every value goes in and
comes out as through a cursor) and runs as libpq's ``PQexecPrepared``, which waits for its
answer without the GIL.

What the cursor does besides is kept: the connection's lock, its transaction (BEGIN, with the
connection's isolation level and access mode, when none is open and it is not in autocommit)
and its errors (psycopg's, by SQLSTATE: ``UniqueViolation``, …). psycopg itself must prepare
nothing on these connections (the engine's ``prepare_threshold=None``): it answers every
ROLLBACK with ``DEALLOCATE ALL`` once it has prepared a statement of its own, which would drop
these too.

Round trips: a transaction's BEGIN goes with its first statement, and its COMMIT with its last
when the caller says which that is (the audit record's: ``then_commit``), each pair in one
libpq pipeline awaited without the GIL. A question the caller will ask next can be sent ahead
(:func:`send_ahead`): it travels in the pipeline of the connection's next statement, and its
answer serves the question only if it is the very next one asked on that connection, in the
same transaction (the issuance's J-LIS question, sent with the challenge's statement). An
issuance is 4 round trips instead of 7.
"""

from __future__ import annotations

import re
import select
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from weakref import WeakKeyDictionary

import psycopg
from psycopg import abc, errors, pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import PoolProxiedConnection

__all__ = ["NumberedSql", "PreparedResult", "execute", "forget_ahead", "numbered", "send_ahead"]

# psycopg's placeholders in SQLAlchemy's compiled SQL: %(name)s, %(name)b, %(name)t; and %%
_MARK = re.compile(r"%(?:\((?P<name>[^)]*)\)(?P<format>.)|(?P<percent>%)|(?P<other>.|$))", re.S)


_FORMATS = {"s": PyFormat.AUTO, "b": PyFormat.BINARY, "t": PyFormat.TEXT}


@dataclass(frozen=True, slots=True)
class NumberedSql:
    """A statement with libpq's numbered placeholders, and the parameter each number takes."""

    sql: bytes
    order: tuple[str, ...]  # order[n - 1] fills $n
    formats: tuple[PyFormat, ...]


def numbered(pyformat_sql: str) -> NumberedSql | None:
    """SQLAlchemy's SQL for psycopg (``%(name)s`` placeholders, or ``%(name)b`` and ``%(name)t``
    for a value in binary or text, ``%%`` for a percent sign) with ``$1``, ``$2``, … instead (a
    name used twice keeps its number and its first format); None for any other placeholder."""
    order: list[str] = []
    formats: list[PyFormat] = []
    refused = False

    def replace(mark: re.Match[str]) -> str:
        nonlocal refused
        if mark["percent"]:
            return "%"
        name, format_ = mark["name"], _FORMATS.get(mark["format"] or "")
        if name is None or format_ is None:
            refused = True
            return mark[0]
        if name not in order:
            order.append(name)
            formats.append(format_)
        return f"${order.index(name) + 1}"

    sql = _MARK.sub(replace, pyformat_sql)
    if refused:
        return None
    return NumberedSql(sql.encode(), tuple(order), tuple(formats))


class PreparedResult:
    """What the driver reads off a cursor after a statement, read off libpq's result."""

    __slots__ = ("_result", "_transformer")

    def __init__(self, result: pq.abc.PGresult, transformer: abc.Transformer) -> None:
        self._result = result
        self._transformer = transformer

    @property
    def description(self) -> tuple[tuple[str], ...] | None:
        """The returned columns' names (a cursor's description, names only); None: no rows."""
        result = self._result
        if result.status != pq.ExecStatus.TUPLES_OK:
            return None
        return tuple((bytes(result.fname(i) or b"").decode(),) for i in range(result.nfields))

    def fetchall(self) -> list[tuple[Any, ...]]:
        result = self._result
        self._transformer.set_pgresult(result)
        rows: list[tuple[Any, ...]] = self._transformer.load_rows(0, result.ntuples, tuple)
        return rows

    @property
    def rowcount(self) -> int:
        count = self._result.command_tuples
        return -1 if count is None else count

    def close(self) -> None:
        """Nothing to close (the cursor's interface): the result is read already."""


@dataclass(slots=True)
class _ReadAhead:
    """A question sent ahead (:func:`send_ahead`): its statement, its values (as given and as
    libpq takes them), and once the pipeline that carried it is answered, its answer."""

    statement: NumberedSql
    values: tuple[Any, ...]
    name: bytes
    params: Sequence[bytes | None]
    formats: Sequence[pq.Format] | None
    answer: pq.abc.PGresult | None = None


class _ConnectionState:
    """One connection's adapters, the names of the statements prepared on it, the questions
    waiting to go with its next statement and those answered by its last one."""

    __slots__ = ("answered", "names", "pending", "transformer")

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.transformer: abc.Transformer = Transformer(connection)
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.pending: list[_ReadAhead] = []
        self.answered: list[_ReadAhead] = []


# A connection's statements, for as long as it lives (a replaced connection starts afresh, as
# its server session does): never evicted, so bounded by the code's statements times the
# parameter types each runs with (psycopg sends an int as int2, int4 or int8 by its size).
_STATES: WeakKeyDictionary[psycopg.Connection[Any], _ConnectionState] = WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(connection: psycopg.Connection[Any]) -> _ConnectionState:
    state = _STATES.get(connection)
    if state is None:
        with _STATES_LOCK:
            state = _STATES.setdefault(connection, _ConnectionState(connection))
    return state


def execute(
    driver: PoolProxiedConnection,
    statement: NumberedSql,
    values: Sequence[Any],
    *,
    then_commit: bool = False,
) -> PreparedResult:
    """Run ``statement`` prepared on the pooled connection's psycopg connection, in its
    transaction (begun first if none is open and it is not in autocommit). With
    ``then_commit`` the transaction's COMMIT goes with it, and it returns once both are
    answered: the statement's result if both succeeded, else the first failure raised.

    Questions sent ahead on the connection go with it; one answered by the last statement's
    pipeline is its result instead, with no round trip, if it asks exactly that question."""
    connection = cast("psycopg.Connection[Any]", driver.driver_connection)
    pgconn = connection.pgconn
    with connection.lock:
        state = _state(connection)
        answered = state.answered
        if answered:
            state.answered = []  # they answer this statement or none
            early = None if then_commit else _answer_for(answered, statement, values, pgconn)
            if early is not None:
                return PreparedResult(early, state.transformer)
        begin = None
        if pgconn.transaction_status == pq.TransactionStatus.IDLE and not connection.autocommit:
            begin = _begin(connection)
        transformer = state.transformer
        params, types, name = _bound(state, statement, values)
        if name is None:
            if begin is not None:
                _raise_failure(connection, pgconn.exec_(begin))
                begin = None
            name = f"_mynahil_{len(state.names)}".encode()
            _raise_failure(connection, pgconn.prepare(name, statement.sql, types))
            state.names[statement.sql, types] = name
        commit = then_commit and (
            begin is not None or pgconn.transaction_status != pq.TransactionStatus.IDLE
        )
        ahead = state.pending
        if ahead:
            state.pending = []
        if begin is None and not commit and not ahead:
            # one command: libpq waits for it without the GIL
            result = pgconn.exec_prepared(name, params, transformer.formats)
            _raise_failure(connection, result)
        else:
            result = _in_one_pipeline(
                connection, begin, (name, params, transformer.formats), ahead, commit
            )
            if ahead and not commit:
                state.answered = ahead
        return PreparedResult(result, transformer)


def send_ahead(
    driver: PoolProxiedConnection, statement: NumberedSql, values: Sequence[Any]
) -> bool:
    """Queue a question to go with the connection's next statement, in its pipeline (see the
    module's docstring); False where it cannot go ahead (not prepared on this connection yet,
    or the connection in autocommit, where the two would not share a transaction)."""
    connection = cast("psycopg.Connection[Any]", driver.driver_connection)
    if connection.autocommit:
        return False
    with connection.lock:
        state = _state(connection)
        params, _, name = _bound(state, statement, values)
        if name is None:
            return False
        formats = state.transformer.formats
        state.pending.append(_ReadAhead(statement, tuple(values), name, params, formats))
        return True


def _bound(
    state: _ConnectionState, statement: NumberedSql, values: Sequence[Any]
) -> tuple[Sequence[bytes], tuple[int, ...], bytes | None]:
    """``values`` as libpq takes them (dumped by the connection's transformer, whose formats
    are then theirs), their types, and the name ``statement`` is prepared under for those
    types on this connection (None: not yet)."""
    # NULL goes as None, which libpq takes (psycopg's own stub leaves it out)
    params = cast(Sequence[bytes], state.transformer.dump_sequence(values, statement.formats))
    types = tuple(state.transformer.types or ())
    return params, types, state.names.get((statement.sql, types))


def forget_ahead(driver: PoolProxiedConnection) -> None:
    """Drop the questions sent ahead on the connection, sent or not, and their answers: the
    unit of work that sent them is over, and no later one may take their answers."""
    state = _STATES.get(cast("psycopg.Connection[Any]", driver.driver_connection))
    if state is not None:
        state.pending = []
        state.answered = []


def _answer_for(
    answered: list[_ReadAhead],
    statement: NumberedSql,
    values: Sequence[Any],
    pgconn: pq.abc.PGconn,
) -> pq.abc.PGresult | None:
    """The answer sent ahead to exactly this question, if the transaction it was answered in
    is still open (nothing has run on the connection since: it was its last statement's)."""
    if pgconn.transaction_status != pq.TransactionStatus.INTRANS:
        return None
    wanted = tuple(values)
    for ahead in answered:
        if ahead.statement is statement and ahead.values == wanted and ahead.answer is not None:
            return ahead.answer
    return None


def _in_one_pipeline(
    connection: psycopg.Connection[Any],
    begin: bytes | None,
    prepared: tuple[bytes, Sequence[bytes | None], Sequence[pq.Format] | None],
    ahead: list[_ReadAhead],
    commit: bool,
) -> pq.abc.PGresult:
    """BEGIN (if given), the prepared statement (its name, parameters and their formats), the
    questions sent ahead and COMMIT (if asked) sent together in one libpq pipeline: one round
    trip where there were two or more. Sent with COMMIT, a transaction's last statement
    releases its locks (the audit head's, which every audited transaction takes last) without
    waiting for this process to read its answer and send COMMIT after it. Once a command fails
    the server skips the rest: the first failure is raised, and a transaction it began stays
    open, failed, for the caller's rollback."""
    pgconn = connection.pgconn
    answers: list[pq.abc.PGresult] = []
    synced = False
    pgconn.enter_pipeline_mode()
    try:
        if begin is not None:
            pgconn.send_query_params(begin, None)
        pgconn.send_query_prepared(*prepared)
        for question in ahead:
            pgconn.send_query_prepared(question.name, question.params, question.formats)
        if commit:
            pgconn.send_query_params(b"COMMIT", None)
        pgconn.pipeline_sync()
        synced = True
        pgconn.flush()
        _read_to_sync(pgconn, answers)
    except BaseException:
        _settle(connection, answers, synced)
        raise
    pgconn.exit_pipeline_mode()
    results = answers[:-1]  # the sync point's own result last
    for result in results:
        _raise_failure(connection, result)
    first = 0 if begin is None else 1
    for question, answer in zip(ahead, results[first + 1 :], strict=False):
        question.answer = answer
    return results[first]


def _read_to_sync(pgconn: pq.abc.PGconn, answers: list[pq.abc.PGresult]) -> None:
    """Each command's result, then the pipeline's sync point's, appended to ``answers`` as
    they come, awaited in ``poll``, which lets the GIL go (libpq's own wait, in
    ``PQgetResult``, holds it: every other thread of the process would stop meanwhile)."""
    readable = select.poll()
    readable.register(pgconn.socket, select.POLLIN)
    while not answers or answers[-1].status != pq.ExecStatus.PIPELINE_SYNC:
        while pgconn.is_busy():
            readable.poll()
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is not None:  # None: the end of one command's results
            answers.append(result)


def _settle(
    connection: psycopg.Connection[Any], answers: list[pq.abc.PGresult], synced: bool
) -> None:
    """After an exception while a pipeline was in flight (an interrupt in ``poll``, or the
    connection broken): its remaining answers read, as a blocking call would have read them
    before the interrupt was seen, so the connection goes on (the transaction's owner rolls
    it back); if they cannot be, the connection is closed, and the pool opens another.
    Stopped before its sync point was queued, the pipeline is not completed (its COMMIT
    might be in it): the connection is closed, which ends its transaction unfinished."""
    if not synced:
        connection.close()
        return
    pgconn = connection.pgconn
    try:
        pgconn.flush()
        _read_to_sync(pgconn, answers)
        pgconn.exit_pipeline_mode()
    except BaseException:  # broken, or interrupted again: nothing later could trust it
        connection.close()


def _begin(connection: psycopg.Connection[Any]) -> bytes:
    """The BEGIN psycopg would send: the connection's isolation level and access mode."""
    words = ["BEGIN"]
    if connection.isolation_level is not None:
        level = psycopg.IsolationLevel(connection.isolation_level)
        words.append("ISOLATION LEVEL " + level.name.replace("_", " "))
    if connection.read_only is not None:
        words.append("READ ONLY" if connection.read_only else "READ WRITE")
    if connection.deferrable is not None:
        words.append("DEFERRABLE" if connection.deferrable else "NOT DEFERRABLE")
    return " ".join(words).encode()


def _raise_failure(connection: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
    if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise errors.error_from_result(result, encoding=connection.info.encoding)
