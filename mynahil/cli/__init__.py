"""The ``mynahil`` command line: one entry point, a subcommand for each job.

The roof of the project: each command group lives in its own module here and may import any
layer below; nothing below imports this package. ``_common`` holds what the groups share."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from ..extras import MissingExtra
from ._common import console, err

__all__ = ["app", "main"]


Loader = Callable[[], "TyperGroup | TyperCommand"]


def _group(module: str, attribute: str) -> Loader:
    return lambda: typer.main.get_group(getattr(import_module(module), attribute))


def _single(module: str, attribute: str) -> Loader:
    def load() -> TyperCommand:
        one = typer.Typer(add_completion=False)
        one.command()(getattr(import_module(module), attribute))
        command = typer.main.get_command(one)
        assert isinstance(command, TyperCommand)
        return command

    return load


def _scenarios() -> TyperGroup:
    from mynahil.simulator.cli import scenarios_app

    from .schemas import schema

    if all(info.name != "schema" for info in scenarios_app.registered_commands):
        scenarios_app.command("schema")(schema)
    return typer.main.get_group(scenarios_app)


# Each command's module is imported only when that command runs (or when help lists them all):
# imported together they are most of the project, 0.6 s of every start-up.
# In the order `mynahil --help` lists them: the single commands, then the groups.
_COMMANDS: dict[str, Loader] = {
    "serve": _single("mynahil.cli.serve", "serve"),
    "readers": _single("mynahil.cli.readers", "readers"),
    "demo": _single("mynahil.cli.demo", "demo"),
    "simulate": _single("mynahil.simulator.cli", "simulate"),
    "calibrate": _single("mynahil.simulator.cli", "calibrate"),
    "soak": _single("mynahil.cli.soak", "soak"),
    "loadtest": _single("mynahil.simulator.cli", "loadtest"),
    "card": _group("mynahil.cli.card", "card_app"),
    "client": _group("mynahil.cli.client", "client_app"),
    "audit": _group("mynahil.cli.audit", "audit_app"),
    "operator": _group("mynahil.cli.points", "operator_app"),
    "points": _group("mynahil.cli.points", "points_app"),
    "staff": _group("mynahil.cli.staff", "staff_app"),
    "registry": _group("mynahil.cli.registry", "registry_app"),
    "helpdesk": _group("mynahil.cli.helpdesk", "helpdesk_app"),
    "scenarios": _scenarios,
    "conformance": _group("mynahil.conformance.cli", "app"),
    "db": _group("mynahil.cli.db", "db_app"),
}


class _LazyCommands(TyperGroup):
    """The root group: builds a sub-command from its module when it is asked for."""

    def list_commands(self, ctx: object) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: object, cmd_name: str) -> TyperGroup | TyperCommand | None:
        if cmd_name not in _COMMANDS:
            return None
        command = _COMMANDS[cmd_name]()
        command.name = cmd_name  # help and usage name it as the root lists it
        return command


app = typer.Typer(
    cls=_LazyCommands,
    name="mynahil",
    help="MyNa Point hardware-in-the-loop simulator and conformance harness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
