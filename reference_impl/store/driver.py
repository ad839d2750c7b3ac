"""Core statements compiled once per dialect and run straight on the DBAPI cursor.

For the hot paths (a MyKey issuance, every audit append): SQLAlchemy's per-execution work
(cache key, parameter processing, result set-up) cost more than SQLite took to run the
statement. Here the statement is still written in SQLAlchemy Core, compiled once, and only
executed by the driver, inside the same connection and transaction. Values are converted the
way the store's column types convert them (:func:`to_driver`, :func:`utc`), so rows written
here and rows written through SQLAlchemy read back the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["DriverStatement", "to_driver", "utc"]


def to_driver(value: Any, dialect: str) -> Any:
    """A value as the driver takes it, stored exactly as :class:`~.tables.UTCDateTime` stores it."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware time")
        moment = value.astimezone(UTC)
        if dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME text, naive UTC
            # "YYYY-MM-DD HH:MM:SS.ffffff", as SQLAlchemy writes it (isoformat: one C call)
            return moment.replace(tzinfo=None).isoformat(" ", "microseconds")
        return moment
    return value


def utc(value: Any) -> datetime | None:
    """A time column as read by the driver: aware UTC, whichever backend stored it."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DriverStatement:
    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def _for(self, conn: Connection) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        dialect = conn.dialect.name
        if dialect not in self._compiled:
            compiled = cast(SQLCompiler, self._statement.compile(dialect=conn.dialect))
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            self._compiled[dialect] = (compiled.string, order, dict(compiled.params))
        return self._compiled[dialect]

    def _arguments(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        sql, order, defaults = self._for(conn)
        values = {**defaults, **params}
        dialect = conn.dialect.name
        try:
            if order is not None:
                return tuple(to_driver(values[name], dialect) for name in order)
            return {name: to_driver(value, dialect) for name, value in values.items()}
        except ValueError as exc:  # as SQLAlchemy reports a bind parameter it cannot take
            raise StatementError(str(exc), sql, dict(params), exc) from exc

    def rows(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run once; the rows it returns (if any) as dicts by column name."""
        cursor = conn.connection.cursor()
        sql, arguments = self._for(conn)[0], self._arguments(conn, params or {})
        try:
            cursor.execute(sql, arguments)
            if cursor.description is None:
                return []
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemy_error(conn, sql, arguments, exc) from exc
        finally:
            cursor.close()

    def many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        cursor = conn.connection.cursor()
        sql, arguments = self._for(conn)[0], [self._arguments(conn, p) for p in params]
        try:
            cursor.executemany(sql, arguments)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemy_error(conn, sql, arguments, exc) from exc
        finally:
            cursor.close()


def _as_sqlalchemy_error(conn: Connection, sql: str, arguments: Any, exc: Exception) -> Exception:
    """The driver's error as SQLAlchemy would have raised it (IntegrityError, …), so callers
    handle it the same whichever path ran the statement."""
    return DBAPIError.instance(sql, arguments, exc, conn.dialect.loaded_dbapi.Error)
