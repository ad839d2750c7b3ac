"""``mynahil demo``: the main job, cards through every wire this machine has, and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._common import console


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("reports"),
    runs: Annotated[int, typer.Option(min=1, max=10_000, help="Flows per transport.")] = 20,
) -> None:
    """The main job: cards through every wire this machine has, and a report under reports/."""
    from mynahil.demo import run_demo

    with console.status("starting") as status:
        report = run_demo(out, runs=runs, progress=status.update)
    table = Table(title="MyKey card flow (read certificate, verify PIN, sign)")
    for column in ("transport", "card", "median ms", "p95 ms", "APDUs", "signatures"):
        table.add_column(column)
    for t in report.transports:
        table.add_row(
            t.transport,
            t.card,
            f"{t.median_ms:.2f}",
            f"{t.p95_ms:.2f}",
            str(t.apdus_per_flow),
            "all valid" if t.all_signatures_valid else "[red]INVALID[/]",
        )
    console.print(table)
    for story in report.stories:
        mark = "[green]ok[/]" if story["outcome"] == "as expected" else "[red]UNEXPECTED[/]"
        console.print(f"{mark} {escape(story['story'])}: {escape(story['observed'])}")
    if report.opensc:
        console.print(
            f"OpenSC: {report.opensc['certificates_listed']}; "
            f"signature {report.opensc['signature']}"
        )
    for what, why in report.skipped.items():
        console.print(f"[yellow]skipped {what}[/]: {escape(why)}")
    console.print(f"report: [bold]{report.report_dir}/report.md[/] (and report.json)")
    if not report.ok:
        raise typer.Exit(1)
