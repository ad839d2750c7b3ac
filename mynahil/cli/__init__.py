"""The ``mynahil`` command line: one entry point, a subcommand for each job.

The roof of the project: each command group lives in its own module here and may import any
layer below; nothing below imports this package. ``_common`` holds what the groups share."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from mynahil.conformance.cli import app as conformance_app
from mynahil.simulator.cli import calibrate, loadtest, scenarios_app, simulate

from ..extras import MissingExtra
from . import (
    audit,
    card,
    client,
    db,
    demo,
    helpdesk,
    points,
    readers,
    registry,
    schemas,
    serve,
    soak,
    staff,
)
from ._common import console, err

__all__ = ["app", "main"]

app = typer.Typer(
    name="mynahil",
    help="MyNa Point hardware-in-the-loop simulator and conformance harness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(card.card_app, name="card")
app.add_typer(client.client_app, name="client")
app.add_typer(audit.audit_app, name="audit")
app.command("serve")(serve.serve)
app.command("readers")(readers.readers)
app.command("demo")(demo.demo)
app.add_typer(points.operator_app, name="operator")
app.add_typer(points.points_app, name="points")
app.add_typer(staff.staff_app, name="staff")
app.add_typer(registry.registry_app, name="registry")
app.add_typer(helpdesk.helpdesk_app, name="helpdesk")
app.command("simulate")(simulate)
scenarios_app.command("schema")(schemas.schema)
app.add_typer(scenarios_app, name="scenarios")
app.command("calibrate")(calibrate)
app.command("soak")(soak.soak)
app.command("loadtest")(loadtest)
app.add_typer(conformance_app, name="conformance")
app.add_typer(db.db_app, name="db")


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"mynahil {version('mynahil')}")
        except PackageNotFoundError:  # a checkout on sys.path, never installed
            console.print("mynahil (not installed)")
        raise typer.Exit


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """MyNa Point hardware-in-the-loop simulator and conformance harness."""


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.exit(0)
    except MissingExtra as exc:  # an optional part a command needs is not installed
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(2)
