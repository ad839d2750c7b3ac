"""``mynahil soak``: a bounded mixed load on the platform for a while, with latency, memory
and the ledger's and audit log's soundness checked at the end
(see :mod:`mynahil.simulator.loadtest.soak`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import console, err, fail

__all__ = ["soak"]

OPTION_BY_FIELD = {
    "duration": "--duration",
    "workers": "--workers",
    "cards": "--cards",
    "platform_url": "--platform",
    "subprocess": "--subprocess",
}


def soak(
    duration: Annotated[
        float, typer.Option("--duration", min=1, help="Seconds of load (after preparation).")
    ] = 60,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for soak.json/csv/png and report.md (default: reports/soak-<time>).",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="The platform's database (default: a SQLite file in --out); "
            "with --platform, the server's own database.",
        ),
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            help="A running platform's base URL (default: serve one here, replaying round 1).",
        ),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="The J-LIS CA folder the platform trusts (default: in --out)."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Client threads.")] = 4,
    cards: Annotated[
        int | None,
        typer.Option("--cards", min=1, help="Cards issued beforehand (default 40 per worker)."),
    ] = None,
    apart: Annotated[
        bool,
        typer.Option(
            "--subprocess/--thread",
            help="Serve with `mynahil serve` in a child "
            "process (its RSS sampled through /proc) or in a thread here.",
        ),
    ] = False,
) -> None:
    """Soak the platform: reservations, applications, reports, refunds and retries for a while;
    latency percentiles, throughput and the server's memory drift; fails if anything broke."""
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from sqlalchemy.exc import SQLAlchemyError

    from mynahil.simulator.loadtest.soak import SoakConfig, run_soak

    folder = out or Path("reports") / f"soak-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        config = SoakConfig(
            duration=duration,
            out=folder,
            db_url=db,
            platform_url=platform,
            jlis_folder=ca,
            subprocess=apart,
            workers=workers,
            cards=cards,
        )
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        fail(f"{OPTION_BY_FIELD.get(field, field)}: {message}")
    with Progress(
        TextColumn("[bold]soak[/]"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("soak", total=duration, status="preparing cards and servers…")

        def progress(elapsed: float, row: dict[str, Any]) -> None:
            rss = "RSS not sampled" if row["rss_mb"] is None else f"RSS {row['rss_mb']:.0f} MB"
            status = (f"{row['ops']} ops/s, p99 {row['p99_ms']:.0f} ms, "
                      f"{rss}, errors {row['errors']}")  # fmt: skip
            bar.update(task, completed=min(elapsed, duration), status=status)

        try:
            result = run_soak(config, progress)
        except (RuntimeError, ValueError, SQLAlchemyError, OSError) as exc:
            fail(f"the soak could not run: {exc}", code=1)
    figures = result.figures
    memory = figures["memory"]
    rss = (
        "server memory not sampled (the platform runs elsewhere)"
        if memory["sampled"] == "none"
        else f"RSS {memory['rss_start_mb']}→{memory['rss_end_mb']} MB, drift "
        f"{memory['drift_mb_per_min']} MB/min"
    )
    console.print(
        f"{figures['operations']:,} operations in {figures['duration_s']} s "
        f"({figures['throughput_per_s']}/s), {figures['errors']} errors; {rss}"
    )
    for op, f in figures["per_operation"].items():
        console.print(
            f"  {op:<14} {f['count']:>7}  p50 {f['p50_ms']:>8} ms  p99 {f['p99_ms']:>8} ms"
        )
    console.print(f"report: {escape(str(result.out / 'report.md'))}")
    if not result.ok:
        for problem in result.problems:
            err.print(f"[bold red]FAILED[/]: {escape(problem)}")
        for line in figures["first_errors"][:5]:
            err.print(f"  {escape(line)}")
        raise typer.Exit(1)
