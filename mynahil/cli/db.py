"""``mynahil db``: the platform's schema for a DBA (Alembic underneath, configured in code)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ._common import console, default_db_url, display_url, fail, sqlite_path

__all__ = ["db_app"]

db_app = typer.Typer(
    help="The platform's database schema: upgrade it, show its revision, print the SQL.",
    no_args_is_help=True,
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: the local SQLite; $MYNAHIL_DB)."),
]


def _url(db: str | None, *, create: bool = False) -> str:
    """The database URL; a default SQLite file's folder is made when ``create``, and a
    SQLite file that does not exist is named rather than created empty."""
    url = db or default_db_url()
    if url.startswith("sqlite:///"):
        path = sqlite_path(url)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            fail(f"{path}: no such database (mynahil db upgrade creates it)", code=1)
    return url


def _reason(exc: Exception) -> str:
    """One line: the driver's own words, without SQLAlchemy's background link."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply every pending migration (what `mynahil serve` also does on start)."""
    from sqlalchemy.exc import SQLAlchemyError

    from mynahil.reference_impl.store import upgrade
    from mynahil.reference_impl.store.admin import current_revision

    url = _url(db, create=True)
    try:
        upgrade(url)
        revision = current_revision(url)
    except (SQLAlchemyError, ValueError) as exc:
        fail(f"cannot upgrade {display_url(url)}: {_reason(exc)}", code=1)
    console.print(f"{escape(display_url(url))}: at revision {revision}")


@db_app.command("current")
def db_current(
    db: DbOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless the database is at the newest revision.")
    ] = False,
) -> None:
    """The database's schema revision and the newest this mynahil knows."""
    from sqlalchemy.exc import SQLAlchemyError

    from mynahil.reference_impl.store.admin import current_revision, head_revision

    url = _url(db)
    try:
        revision = current_revision(url)
    except (SQLAlchemyError, ValueError) as exc:
        fail(f"cannot read {display_url(url)}: {_reason(exc)}", code=1)
    head = head_revision()
    state = "up to date" if revision == head else "behind: run mynahil db upgrade"
    console.print(f"current {revision or 'none (never migrated)'}, head {head}: {state}")
    if check and revision != head:
        raise typer.Exit(1)


@db_app.command("sql")
def db_sql(
    db: DbOption = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Revision the database is at (default: an empty database)."),
    ] = None,
    end: Annotated[str, typer.Option("--to", help="Revision to reach.")] = "head",
) -> None:
    """Print the SQL a migration runs, for the database kind of --db, without connecting."""
    from alembic.util import CommandError

    from mynahil.reference_impl.store.admin import migration_sql

    try:
        print(migration_sql(db or default_db_url(), start=start, end=end), end="")
    except (CommandError, ValueError) as exc:
        fail(f"db sql: {exc}")
