"""``mynahil staff …``: the platform's own staff credentials (hotline, municipal window,
help desk). A token is printed once, when it is made; the database keeps only its hash."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._common import console, err, fail, opened_store

if TYPE_CHECKING:
    from mynahil.reference_impl.staff import StaffDirectory

__all__ = ["staff_app"]

staff_app = typer.Typer(
    help="Staff credentials for the platform's own staff: the J-LIS hotline, municipal "
    "windows, the MyKey help desk.",
    no_args_is_help=True,
)

DbUrl = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: the local SQLite).")
]


@contextmanager
def _directory(db: str | None) -> Iterator[StaffDirectory]:
    from mynahil.reference_impl.staff import StaffDirectory

    with opened_store(db) as store:
        yield StaffDirectory(store)


@staff_app.command("add")
def staff_add(
    role: Annotated[
        str, typer.Option(help="jlis-hotline, municipal-window or helpdesk.", show_default=False)
    ],
    name: Annotated[str, typer.Option(help="Who holds the credential.", show_default=False)],
    db: DbUrl = None,
) -> None:
    """Make a staff credential and print its bearer token (once: it is not kept)."""
    from mynahil.reference_impl.staff import Role

    if role not in {r.value for r in Role}:
        fail(f"--role must be one of {', '.join(r.value for r in Role)}, not {role!r}")
    with _directory(db) as directory:
        try:
            member, token = directory.add(name, role)
        except ValueError as exc:
            fail(f"--name: {exc}")
    err.print(
        f"staff member {member.staff_id} ({escape(member.name)}, {member.role.value}); "
        "the token below is shown only now:"
    )
    typer.echo(token)  # plain, last line: scripts read it


@staff_app.command("list")
def staff_list(db: DbUrl = None) -> None:
    """The staff members (never their tokens)."""
    with _directory(db) as directory:
        members = directory.members()
    table = Table()
    for column in ("id", "name", "role", "created", "disabled"):
        table.add_column(column)
    for m in members:
        table.add_row(
            str(m.staff_id),
            escape(m.name),
            m.role.value,
            m.created_at.isoformat(timespec="seconds"),
            m.disabled_at.isoformat(timespec="seconds") if m.disabled_at else "",
        )
    console.print(table)


@staff_app.command("disable")
def staff_disable(
    staff_id: Annotated[int, typer.Argument(help="The member's id (see: mynahil staff list).")],
    db: DbUrl = None,
) -> None:
    """Disable a staff credential for good (a lost or leaked token)."""
    with _directory(db) as directory:
        try:
            member = directory.disable(staff_id)
        except LookupError:
            fail(f"STAFF_ID: no staff member {staff_id}")
    console.print(f"disabled staff member {member.staff_id} ({escape(member.name)})")
