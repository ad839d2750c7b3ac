"""What every command group shares: the consoles, failing with a message, secrets, defaults."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from mynahil.paths import mynahil_home

if TYPE_CHECKING:
    from mynahil.reference_impl.store import SqlStore

console = Console()
err = Console(stderr=True, soft_wrap=True)  # errors stay on one greppable line


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def display_url(url: str) -> str:
    """A database URL fit to print: never its password."""
    from mynahil.reference_impl.store.admin import display_url as shown

    return shown(url)


@contextmanager
def opened_store(db: str | None, *, migrate: bool = True) -> Iterator[SqlStore]:
    """The platform's store at ``db`` (default: the local SQLite), disposed afterwards; a
    database that cannot be opened, or fails while used, is one line naming it (no password)."""
    from sqlalchemy.exc import SQLAlchemyError

    from mynahil.reference_impl.store import SqlStore

    url = db or default_db_url()
    try:
        store = SqlStore.open(url, migrate=migrate)
    except (ValueError, SQLAlchemyError) as exc:
        fail(f"cannot open {display_url(url)}: {exc}")
    try:
        yield store
    except SQLAlchemyError as exc:
        fail(f"cannot use the database at {display_url(url)}: {exc}")
    finally:
        store.dispose()


def read_secret(given: str | None, *, option: str, env: str, prompt: str) -> str:
    """A PIN or password: from ``$env``, else a hidden prompt in a terminal. On the command
    line it still works, with a warning: argv is visible to every user (``ps``)."""
    if given is not None:
        err.print(
            f"[yellow]warning:[/] {option} on the command line is visible to other users of "
            f"this machine (ps); set ${env} or let mynahil ask for it"
        )
        return given
    from_env = os.environ.get(env)
    if from_env is not None:
        return from_env
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True))
    fail(f"{option}: not given; set ${env}, or run in a terminal to be asked")


def default_home() -> Path:
    return mynahil_home()


def default_db_url() -> str:
    """The platform's database when --db is not given: $MYNAHIL_DB, else the local SQLite."""
    return os.environ.get("MYNAHIL_DB") or f"sqlite:///{default_home() / 'platform.db'}"


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///path[?options]`` URL."""
    from sqlalchemy.engine import make_url

    return Path(make_url(url).database or "").expanduser()


def parse_date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a date (YYYY-MM-DD)")


CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="MYNAHIL_CA_FILE",
        help="CA certificate(s), PEM, that an https server's certificate must chain to "
        "(default: the system's trust store).",
    ),
]
