"""What a DBA asks of the schema: its revision, the newest one, and the SQL a migration runs.

The platform migrates itself on start (:func:`~reference_impl.store.sql.migrate`); a DBA who
applies schema changes by hand reads the SQL first (:func:`migration_sql`, Alembic's offline
mode) and checks where a database stands (:func:`current_revision`).
"""

from __future__ import annotations

import io

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .sql import MIGRATIONS, make_engine

__all__ = ["current_revision", "display_url", "head_revision", "migration_sql"]


def display_url(url: str) -> str:
    """``url`` fit to print or log: the password, if any, replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy can parse: show nothing of it
        return "<unparsable database URL>"


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    """The newest schema revision this version of mynahil knows."""
    head = _script().get_current_head()
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
    ``end``, without connecting to it (Alembic's offline mode)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", parsed.render_as_string(hide_password=False))
    command.upgrade(config, f"{start}:{end}" if start else end, sql=True)
    return buffer.getvalue()
