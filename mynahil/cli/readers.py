"""``mynahil readers``: the PC/SC readers pcscd knows."""

from __future__ import annotations

import typer

from ._common import err, fail


def readers() -> None:
    """List the PC/SC readers pcscd knows."""
    from ..transports import TransportError, list_readers

    try:
        names = list_readers()
    except TransportError as exc:
        fail(str(exc))
    for name in names:
        typer.echo(name)
    if not names:
        err.print("no readers")
