"""What a DBA asks of the schema: its revision, the newest one, and the SQL a migration runs.

One-off administration: it runs Alembic and SQLAlchemy directly, never the stores' executor.

The platform migrates itself on start (:func:`~mynahil.reference_impl.store.engine.migrate`); a DBA
who applies schema changes by hand reads the SQL first (:func:`migration_sql`, Alembic's offline
mode) and checks where a database stands (:func:`current_revision`).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .engine import alembic_config, make_engine

__all__ = ["current_revision", "display_url", "head_revision", "migration_sql"]


def display_url(url: str) -> str:
    """``url`` fit to print or log: the password, if any, replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy can parse: show nothing of it
        return "<unparsable database URL>"


def head_revision() -> str:
    """The newest schema revision this version of mynahil knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError("no migrations are installed")
    return head


def current_revision(url: str) -> str | None:
    """The schema revision of the database at ``url``; None for a database never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def migration_sql(url: str, *, start: str | None = None, end: str = "head") -> str:
    """The SQL that brings a database of ``url``'s kind from ``start`` (None: empty) to
    ``end``, without touching that database.

    PostgreSQL: Alembic's offline mode. SQLite: its migrations rebuild tables (Alembic's batch
    mode), which needs a live schema to reflect, so they run on a scratch SQLite file and every
    statement sent to it is recorded.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _recorded_sqlite_sql(start, end)
    if backend != "postgresql":
        raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")
    buffer = io.StringIO()
    config = alembic_config(output_buffer=buffer)
    # Alembic's options are configparser values: a percent-encoded URL's "%" must be doubled.
    url_option = parsed.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url_option)
    command.upgrade(config, f"{start}:{end}" if start else end, sql=True)
    return buffer.getvalue()


def _recorded_sqlite_sql(start: str | None, end: str) -> str:
    recorded: list[str] = []

    def record(
        _conn: object, _cursor: object, statement: str, parameters: object, *_: object
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "PRAGMA")):
            return  # Alembic reading the schema, not changing it
        text = statement.strip()
        if parameters:
            text += f"  -- parameters: {parameters!r}"
        recorded.append(text + ";")

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
        try:
            if start is not None:
                with engine.begin() as connection:
                    command.upgrade(alembic_config(connection), start)
            event.listen(engine, "before_cursor_execute", record)
            with engine.begin() as connection:
                command.upgrade(alembic_config(connection), end)
        finally:
            engine.dispose()
    header = f"-- SQLite: {start or 'empty'} -> {end}, as run on a scratch database"
    return "\n\n".join([header, *recorded]) + "\n"
