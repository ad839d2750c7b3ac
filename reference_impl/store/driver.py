"""The stores' one way to run a statement: SQLAlchemy Core, compiled once per dialect, run
straight on the DBAPI cursor.

For the hot paths (a MyKey issuance, every audit append, a batch of point reports),
SQLAlchemy's per-execution work (cache key, parameter processing, result set-up) cost more
than SQLite took to run the statement. Here the statement is still written in SQLAlchemy
Core (no SQL text, no f-strings), compiled once per dialect, and only executed by the
driver, inside the caller's connection and transaction: on PostgreSQL as a statement prepared
on libpq itself (:mod:`.prepared`; psycopg's cursor cost more than the server's work), else on
the connection's cursor.

Every conversion between Python and the database lives here: values going in through
:func:`to_driver` (stored exactly as :class:`~.tables.UTCDateTime` stores them), values
coming out through the result processors of the statement's own column types, the same
ones SQLAlchemy applies. So a row read here and a row read through
``connection.execute(...)._mapping`` hold the same Python values, and one row mapper per
entity serves both.

Use: ``_STATEMENT = DriverStatement(select(...).where(t.c.x == bindparam("x")))`` at module
level, then ``_STATEMENT.rows(conn, {"x": 1})`` (or ``one``, ``scalar``, ``run``, ``many``).
A statement that differs per dialect (``INSERT … ON CONFLICT``) is given as a function of
the dialect's name (see :func:`insert_new`). ``bindparam(name, expanding=True)`` takes a
list (``IN``); its SQL is expanded once per list length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    PoolProxiedConnection,
    Select,
    Table,
    any_,
    bindparam,
    func,
    select,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement, sqltypes
from sqlalchemy.sql.compiler import SQLCompiler

from . import prepared

__all__ = [
    "DriverStatement",
    "any_of",
    "as_date",
    "as_utc",
    "column_params",
    "dialect_insert",
    "each_key",
    "forget_ahead",
    "insert_new",
    "insert_new_statement",
    "lookup_keys",
    "to_driver",
    "unnest_rows",
    "utc",
]

Row = dict[str, Any]
_NOTHING: Any = object()  # a value no parameter holds


def as_utc(moment: datetime) -> datetime:
    """A time about to be stored, in UTC; a naive time is refused (its zone is unknown)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware time")
    return moment.astimezone(UTC)


# The last time converted to SQLite's text, and its text: a unit of work binds its one "now"
# to most of its statements (six times an issuance). One tuple, replaced whole, so threads
# sharing it never see a time with another's text (the tuple holds the time, so no other
# time can be allocated where it lives).
_last_sqlite_time: list[tuple[datetime, str]] = [(datetime.min.replace(tzinfo=UTC), "")]


def to_driver(value: Any, dialect: str) -> Any:
    """A value as the driver takes it, stored exactly as :class:`~.tables.UTCDateTime` stores it."""
    if isinstance(value, datetime):
        if dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME text, naive UTC
            last = _last_sqlite_time[0]
            if last[0] is value:
                return last[1]
            # "YYYY-MM-DD HH:MM:SS.ffffff", as SQLAlchemy writes it (isoformat: one C call); a
            # time already in UTC (the platform's clock, most reports) is written as it is,
            # less its "+00:00" (cheaper than converting it or replacing its zone)
            if value.tzinfo is UTC:
                text = value.isoformat(" ", "microseconds")[:-6]
            else:
                text = as_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")
            _last_sqlite_time[0] = (value, text)
            return text
        return as_utc(value)
    if isinstance(value, date) and dialect == "sqlite":  # SQLAlchemy's SQLite DATE text
        return value.isoformat()
    return value


def utc(value: Any) -> datetime | None:
    """A time as a driver or SQLAlchemy returns it (text, naive or aware): aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:  # text without a zone is UTC (SQLite's): parsed with it, aware at once
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:  # text with a zone of its own
            value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_date(value: Any) -> date | None:
    """A date as a driver or SQLAlchemy returns it (SQLite: ISO text)."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(f"not a date: {value!r}")


def dialect_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` with the dialect's ``ON CONFLICT`` clauses (SQLite or PostgreSQL)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def insert_new(table: Table, columns: Sequence[str]) -> DriverStatement:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING`` the primary key, of ``columns`` bound by
    their own names: a clash is "no row returned", so no SAVEPOINT is needed to keep the
    transaction usable."""
    names = tuple(columns)
    return DriverStatement(lambda dialect: insert_new_statement(dialect, table, names))


def insert_new_statement(dialect: str, table: Table, columns: Sequence[str]) -> ClauseElement:
    """:func:`insert_new`'s statement for one dialect."""
    return (
        dialect_insert(dialect, table)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )


class _LookupKeys(ARRAY[Any]):
    """The type of an array parameter a statement looks rows up by (see :func:`any_of`)."""

    cache_ok = True


def any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """PostgreSQL's ``column = ANY(:name)``, ``name`` an array parameter of ``column``'s values.
    A statement with one is planned for its keys every time it runs (never prepared)."""
    keys = bindparam(name, type_=_LookupKeys(column.type))
    return column == any_(sql_cast(keys, ARRAY(column.type)))


def lookup_keys(columns: Mapping[str, ColumnElement[Any]]) -> Any:
    """PostgreSQL: array parameters of the columns' values (parameter name -> column), of one
    length, as a table ``k`` whose columns are named as the parameters (``unnest``), to join
    against; a statement with one is never prepared, as with :func:`any_of`."""
    arrays = [
        sql_cast(bindparam(name, type_=_LookupKeys(column.type)), ARRAY(column.type))
        for name, column in columns.items()
    ]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name="k")


def each_key(keys: Any, probe: Select[Any]) -> Select[Any]:
    """PostgreSQL: ``probe`` run once per row of ``keys`` (:func:`lookup_keys`), its columns
    referring to ``keys``' (a LATERAL join). OFFSET 0 keeps the planner from flattening it into
    a join, which it may plan as a read of the whole table when the table's statistics lag its
    growth (a fresh database filling fast, as on a launch day): an index probe per key, at any
    table size."""
    each = probe.offset(0).lateral("found")
    return select(each).select_from(keys).join(each, true())


def column_params(table: Table, names: Sequence[str]) -> dict[str, Any]:
    """Parameters named and typed as ``table``'s columns ``names``, for the values of an
    ``INSERT … SELECT`` (which, unlike ``INSERT … VALUES``, does not type them itself)."""
    return {name: bindparam(name, type_=table.c[name].type) for name in names}


def unnest_rows(types: Mapping[str, Any]) -> Any:
    """PostgreSQL's rows from one array parameter per column (parameter name -> SQL type): many
    rows in one statement, where an executemany sends one per row. The arrays travel in
    psycopg's binary format (see :meth:`DriverStatement._compile`)."""
    arrays = [
        sql_cast(bindparam(name, type_=ARRAY(type_)), ARRAY(type_)) for name, type_ in types.items()
    ]
    return func.unnest(*arrays).table_valued(*types).render_derived()


# Column types whose values every driver takes as Python gives them: only times, dates and
# untyped parameters go through to_driver (a batch's executemany converts ~20,000 values).
_AS_GIVEN = (sqltypes.Integer, sqltypes.String, sqltypes.LargeBinary, sqltypes.Boolean)


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where one placeholder of an expanded statement takes its value from."""

    name: str
    index: int | None  # position in the list of an expanding parameter, else None


@dataclass(slots=True)
class _Compiled:
    """One statement compiled for one dialect."""

    sql: str
    order: tuple[str, ...] | None  # positional placeholders' names; None: named placeholders
    defaults: dict[str, Any]
    expanding: tuple[str, ...]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column position, converter)
    passthrough: frozenset[str]  # parameters whose type the driver takes as given (no to_driver)
    compiler: SQLCompiler
    run_options: dict[str, Any]  # the driver's execute() keywords for this statement
    # PostgreSQL: the statement for libpq's own prepared statements (None: the cursor runs it)
    numbered: prepared.NumberedSql | None
    expanded: dict[tuple[int, ...], tuple[str, tuple[_Slot, ...] | dict[str, _Slot]]] = field(
        default_factory=dict
    )
    # The names of the columns it returns (None: it returns no rows), read off the cursor the
    # first time it runs: psycopg builds a Column object per column at every look at
    # ``cursor.description`` (~60 an issuance, ~8% of its Python time on PostgreSQL).
    seen: bool = False
    columns: tuple[str, ...] | None = None


class DriverStatement:
    """A Core statement compiled once per dialect and executed on the driver's connection.

    ``statement`` is the statement, or a function of the dialect's name building it (for
    dialect-specific clauses). Errors are raised as SQLAlchemy raises them (``IntegrityError``,
    ``StatementError`` for a value it cannot bind, …), whichever path ran the statement.
    """

    __slots__ = ("_build", "_compiled")

    def __init__(self, statement: ClauseElement | Callable[[str], ClauseElement]) -> None:
        self._build = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        build = self._build
        statement = build if isinstance(build, ClauseElement) else build(dialect.name)
        compiler = cast(SQLCompiler, statement.compile(dialect=dialect))
        expanding = tuple(name for name, bind in compiler.binds.items() if bind.expanding)
        processors = []
        for position, column in enumerate(getattr(statement, "exported_columns", ())):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                processors.append((position, processor))
        sql = compiler.string
        run_options: dict[str, Any] = {}
        numbered = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            # Arrays go in psycopg's binary format: its text format quotes each element
            # through a regular expression, a third of a report batch's time (thousands of
            # elements a batch, one array per column).
            for name, bind in compiler.binds.items():
                if isinstance(bind.type, sqltypes.ARRAY):
                    sql = sql.replace(f"%({name})s", f"%({name})b")
            if expanding or any(isinstance(b.type, _LookupKeys) for b in compiler.binds.values()):
                # Not prepared, so planned for the keys it is given every time: a generic plan
                # for "key = ANY(array)" knows no array size and once scanned a whole table
                # for a batch's lookups.
                run_options["prepare"] = False
            else:
                # Every other statement is prepared on first use, on libpq directly (see
                # .prepared), and may keep a generic plan.
                numbered = prepared.numbered(sql)
        return _Compiled(
            sql=sql,
            order=tuple(compiler.positiontup or ()) if compiler.positional else None,
            defaults={k: v for k, v in compiler.params.items() if k not in expanding},
            expanding=expanding,
            processors=tuple(processors),
            passthrough=frozenset(
                name for name, bind in compiler.binds.items() if isinstance(bind.type, _AS_GIVEN)
            ),
            compiler=compiler,
            run_options=run_options,
            numbered=numbered,
        )

    def _arguments(
        self,
        dialect_name: str,
        compiled: _Compiled,
        params: Mapping[str, Any],
        order: tuple[str, ...] | None = None,
    ) -> tuple[str, Any]:
        """The SQL to run and the driver's arguments for it; positional in ``order`` if given
        (else in the compiled statement's own)."""
        values = {**compiled.defaults, **params} if compiled.defaults else params
        dialect = dialect_name
        try:
            if compiled.expanding:
                return self._expanded(compiled, values, dialect)
            given = compiled.passthrough
            order = compiled.order if order is None else order
            if order is not None:
                return compiled.sql, tuple(
                    values[n] if n in given else to_driver(values[n], dialect) for n in order
                )
            return compiled.sql, {
                n: v if n in given else to_driver(v, dialect) for n, v in values.items()
            }
        except ValueError as exc:  # as SQLAlchemy reports a bind parameter it cannot take
            raise StatementError(str(exc), compiled.sql, dict(params), exc) from exc

    def _many_arguments(
        self, dialect: str, compiled: _Compiled, params: Sequence[Mapping[str, Any]]
    ) -> list[Any]:
        """The driver's arguments for many parameter sets. With positional placeholders that
        the sets fill themselves (the sets of one call share their keys), the values are
        picked by position and only those whose type needs it are converted: a batch's
        executemany converts ~20,000 values."""
        order = compiled.order
        if order is None or any(name not in params[0] for name in order):
            return [self._arguments(dialect, compiled, p)[1] for p in params]
        convert = [i for i, name in enumerate(order) if name not in compiled.passthrough]
        try:
            if len(order) == 1:  # itemgetter of one name gives the value, not a tuple
                picked = [(p[order[0]],) for p in params]
            else:
                pick = itemgetter(*order)
                picked = [pick(p) for p in params]
            if not convert:
                return picked
            # Per column, the last value and its conversion: a batch's rows share one time
            # (its decision's "now"), which to_driver's own one-value memory would lose to
            # the row's other time column in between.
            last: list[tuple[Any, Any]] = [(_NOTHING, None)] * len(convert)
            converted = []
            for values in picked:
                row = list(values)
                for slot, i in enumerate(convert):
                    value = row[i]
                    seen, as_given = last[slot]
                    if value is not seen:
                        as_given = to_driver(value, dialect)
                        last[slot] = (value, as_given)
                    row[i] = as_given
                converted.append(row)
            return converted
        except ValueError as exc:  # as SQLAlchemy reports a bind parameter it cannot take
            raise StatementError(str(exc), compiled.sql, None, exc) from exc

    @staticmethod
    def _expanded(compiled: _Compiled, values: Mapping[str, Any], dialect: str) -> tuple[str, Any]:
        lengths = tuple(len(values[name]) for name in compiled.expanding)
        known = compiled.expanded.get(lengths)
        if known is None:
            # Let SQLAlchemy expand the placeholders once per list length, with markers for
            # values: the markers say which parameter (and list item) fills each placeholder.
            markers = {
                name: (
                    [_Slot(name, i) for i in range(len(values[name]))]
                    if name in compiled.expanding
                    else _Slot(name, None)
                )
                for name in values
            }
            state = compiled.compiler.construct_expanded_state(markers)
            slots: tuple[_Slot, ...] | dict[str, _Slot]
            if compiled.order is not None:
                slots = tuple(state.parameters[name] for name in state.positiontup or ())
            else:
                slots = dict(state.parameters)
            known = compiled.expanded[lengths] = (state.statement, slots)
        sql, slots = known

        def value(slot: _Slot) -> Any:
            given = values[slot.name]
            return to_driver(given if slot.index is None else given[slot.index], dialect)

        if isinstance(slots, tuple):
            return sql, tuple(value(slot) for slot in slots)
        return sql, {name: value(slot) for name, slot in slots.items()}

    def _run(
        self,
        driver: PoolProxiedConnection,
        dialect: Dialect,
        params: Mapping[str, Any] | None,
        then_commit: bool = False,
    ) -> tuple[Any, _Compiled]:
        compiled = self._for(dialect)
        numbered = compiled.numbered
        if numbered is not None:
            sql, values = self._arguments(dialect.name, compiled, params or {}, numbered.order)
            try:
                executed = prepared.execute(driver, numbered, values, then_commit=then_commit)
                return executed, compiled
            except dialect.loaded_dbapi.Error as exc:
                raise _as_sqlalchemy_error(dialect, sql, values, exc) from exc
        sql, arguments = self._arguments(dialect.name, compiled, params or {})
        cursor = driver.cursor()
        try:
            cursor.execute(sql, arguments, **compiled.run_options)
        except dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise _as_sqlalchemy_error(dialect, sql, arguments, exc) from exc
        except BaseException:
            cursor.close()
            raise
        return cursor, compiled

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run once; the rows it returns (if any) as dicts by column name, values converted
        by their columns' types."""
        return self.rows_on(conn.connection, conn.dialect, params)

    def rows_on(
        self,
        driver: PoolProxiedConnection,
        dialect: Dialect,
        params: Mapping[str, Any] | None,
        *,
        then_commit: bool = False,
    ) -> list[Row]:
        """:meth:`rows` on a pooled driver connection (``Engine.raw_connection()``), for a
        question that needs no SQLAlchemy connection (nor its transaction) around it.
        ``then_commit``: see :meth:`one_then_commit`."""
        cursor, compiled = self._run(driver, dialect, params, then_commit)
        try:
            if not compiled.seen:
                description = cursor.description
                compiled.columns = None if description is None else tuple(d[0] for d in description)
                compiled.seen = True
            names = compiled.columns
            if names is None:
                return []
            fetched = cursor.fetchall()
        except dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemy_error(dialect, compiled.sql, params, exc) from exc
        finally:
            cursor.close()
        if not compiled.processors:
            return [dict(zip(names, row, strict=True)) for row in fetched]
        converted = []
        for row in fetched:
            values = list(row)
            for position, processor in compiled.processors:
                values[position] = processor(values[position])
            converted.append(dict(zip(names, values, strict=True)))
        return converted

    def send_ahead(self, conn: Connection, params: Mapping[str, Any] | None = None) -> bool:
        """Send this question with the next statement run on ``conn`` (one round trip for
        both), where the statement is prepared on libpq (PostgreSQL; see :mod:`.prepared`):
        asked next, with the same ``params``, :meth:`rows` then takes that answer. Whether it
        went; elsewhere it does not, and :meth:`rows` asks as ever. The caller must ask it
        before anything else runs on ``conn``, or it is asked again, and drop it
        (:func:`forget_ahead`) when its unit of work ends."""
        compiled = self._for(conn.dialect)
        numbered = compiled.numbered
        if numbered is None:
            return False
        _, values = self._arguments(conn.dialect.name, compiled, params or {}, numbered.order)
        return prepared.send_ahead(conn.connection, numbered, values)

    def one(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Row | None:
        """The one row the statement returns, or None when it returns none."""
        return _at_most_one(self.rows(conn, params))

    def one_then_commit(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> Row | None:
        """:meth:`one` as the transaction's last statement. Where the statement is prepared
        on libpq (PostgreSQL), the transaction's COMMIT is sent with it, in one round trip,
        and has succeeded when this returns: the caller's commit then finds nothing left to
        send. Elsewhere the statement runs alone and the caller's commit commits, as ever;
        either way the caller commits after it and runs nothing else in the transaction."""
        return _at_most_one(self.rows_on(conn.connection, conn.dialect, params, then_commit=True))

    def scalar(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the one row returned; None when there is no row."""
        row = self.one(conn, params)
        return None if row is None else next(iter(row.values()))

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Run a write once; the number of rows it changed."""
        cursor, _compiled = self._run(conn.connection, conn.dialect, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a write once per parameter set, in one ``executemany``."""
        if not params:
            return
        compiled = self._for(conn.dialect)
        if compiled.expanding:
            raise ValueError("many() takes no expanding (IN list) parameters")
        sql = compiled.sql
        arguments = self._many_arguments(conn.dialect.name, compiled, params)
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, arguments)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemy_error(conn.dialect, sql, arguments, exc) from exc
        finally:
            cursor.close()


def forget_ahead(conn: Connection) -> None:
    """Drop what :meth:`DriverStatement.send_ahead` sent on ``conn`` and its answers. Nothing
    to drop on a closed or invalidated connection (its driver connection is gone, and asking
    for it would open another)."""
    if conn.dialect.name == "postgresql" and not (conn.closed or conn.invalidated):
        prepared.forget_ahead(conn.connection)


def _at_most_one(found: list[Row]) -> Row | None:
    if len(found) > 1:
        raise LookupError(f"expected at most one row, got {len(found)}")
    return found[0] if found else None


def _as_sqlalchemy_error(dialect: Dialect, sql: str, arguments: Any, exc: Exception) -> Exception:
    """The driver's error as SQLAlchemy would have raised it (IntegrityError, …), so callers
    handle it the same whichever path ran the statement; a lost connection is flagged as
    SQLAlchemy flags it (``connection_invalidated``: the store answers busy)."""
    return DBAPIError.instance(
        sql,
        arguments,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=bool(dialect.is_disconnect(cast(Any, exc), None, None)),
        dialect=dialect,
    )
