"""Alembic's entry point for the platform's store.

Normally run through :func:`mynahil.reference_impl.store.migrate`, which hands over an open
connection in ``config.attributes["connection"]``; the ``alembic`` command line works too,
given ``-x url=...`` or ``sqlalchemy.url`` (``alembic -c <ini>`` with ``script_location``
pointing here).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from mynahil.reference_impl.store.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
    else:
        engine = create_engine(_url())
        try:
            with engine.connect() as connection:
                _run(connection)
                connection.commit()
        finally:
            engine.dispose()
