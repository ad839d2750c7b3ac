"""``mynahil audit``: the platform's hash-chained audit log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ._common import console, default_db_url, display_url, err, fail, opened_store

audit_app = typer.Typer(help="The platform's hash-chained audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    db: Annotated[
        str | None, typer.Option(help="Database URL (default: the local SQLite).")
    ] = None,
) -> None:
    """Prove the audit chain intact, or name the first record that was tampered with."""
    from sqlalchemy.exc import SQLAlchemyError

    url = db or default_db_url()
    with opened_store(url, migrate=False) as store:
        try:
            count, problem = store.verify_audit()
        except SQLAlchemyError as exc:
            fail(f"cannot read the audit log of {display_url(url)}: {exc}")
    if problem is not None:
        err.print(
            f"[bold red]TAMPERED[/]: {escape(str(problem))} ({count} records before it are intact)"
        )
        raise typer.Exit(1)
    console.print(f"audit log intact: {count} records, every hash links")


# --- readers and demo ----------------------------------------------------------------------
