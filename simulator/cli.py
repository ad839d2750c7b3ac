"""``mynahil simulate``: plain functions the main typer app registers.

``app.command("simulate")(simulate)`` in ``mynahil/cli.py``.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from .scenario import Scenario, ScenarioError, load_scenario

__all__ = ["simulate"]


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def _default_out(scenario: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"sim-{scenario.stem}-{stamp}"


def simulate(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario TOML file (see scenarios/round1.toml).")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: reports/sim-<scenario>-<timestamp>)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same results.")] = 1,
    replications: Annotated[
        int, typer.Option(min=1, help="Independent replications (95% CIs need 2 or more).")
    ] = 1,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes (0: one per CPU).")] = 0,
    sweep: Annotated[
        list[str] | None,
        typer.Option(help="FIELD=A..B or FIELD=A,B,C, e.g. servers=2..32 or window_staff=1,2,4."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help='What a sweep must meet, e.g. "platform_p95<2s@2020-07-01".'),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="process (default), serial, or dask://HOST:PORT (a Dask scheduler)."),
    ] = None,
    hil: Annotated[
        int, typer.Option(min=0, help="Send N sampled holders through the real MyKey reservation.")
    ] = 0,
    platform: Annotated[
        str | None,
        typer.Option(help="With --hil: a running platform's URL instead of an in-process one."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Simulate a sign-up scenario: queues, lockouts, platform load; CSV, JSON, plots, HTML."""
    from .engine import open_executor, run
    from .metrics import hourly_table, summarize
    from .report import write_outputs
    from .sweep import parse_sweep, parse_target, run_sweep

    try:
        loaded: Scenario = load_scenario(scenario)
        sweeps = [parse_sweep(s) for s in sweep or []]
        goal = parse_target(target) if target else None
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    if len(sweeps) > 1:
        raise _fail("--sweep: one field at a time")
    if goal is not None and not sweeps:
        raise _fail("--target needs a --sweep")
    if platform and not hil:
        raise _fail("--platform needs --hil N")
    if executor not in (None, "process", "serial") and not executor.startswith("dask://"):
        raise _fail(f"--executor {executor!r}: use process, serial or dask://HOST:PORT")
    out = out or _default_out(scenario)
    notes: dict[str, Any] = {}
    hil_report: dict[str, Any] | None = None
    try:
        with open_executor(executor, workers) as pool, _Progress(quiet) as progress:
            if hil:
                from .hil import measure

                progress.start(f"HIL: {hil} holders through the MyKey reservation", hil)
                measured = measure(
                    loaded, hil, seed=seed, platform_url=platform, progress=progress.update
                )
                loaded = measured.apply(loaded)
                notes["hil"] = measured.as_dict()
                hil_report = {**notes["hil"], "latencies_ms": measured.latencies_ms}
            progress.start("simulating regions", 0)
            result = run(
                loaded,
                seed=seed,
                replications=replications,
                executor=pool,
                progress=progress.update,
            )
            result.notes.update(notes)
            outcome = None
            if sweeps:
                progress.start(f"sweeping {sweeps[0].field}", len(sweeps[0].values))
                outcome = run_sweep(
                    loaded, sweeps[0], goal, seed=seed, replications=replications,
                    executor=pool, progress=progress.update,
                )  # fmt: skip
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise _fail(f"{exc}") from None
    summary = summarize(result)
    files = write_outputs(out, loaded, summary, hourly_table(result), outcome, hil_report)
    if not quiet:
        _print_headline(summary, files, outcome)


def _print_headline(summary: dict[str, Any], files: dict[str, Path], outcome: Any) -> None:
    from rich.console import Console

    from .calibration import calibration_check

    console = Console()
    metrics = summary["metrics"]
    console.print(
        f"applications: {metrics['applications']['mean']:,.0f}; lockouts: "
        f"{metrics['lockouts']['mean']:,.0f}; worst window p95 wait: "
        f"{metrics['peak_wait_p95_municipal_window_min']['mean']:.1f} min; worst platform p95: "
        f"{metrics['platform_peak_p95_s']['mean']:.3f} s"
    )
    for row in calibration_check(summary):
        if row.simulated is not None:
            mark = "ok" if row.ok else "OFF"
            console.print(
                f"  {row.label}: {row.simulated:,} vs published {row.published:,} "
                f"({row.error:+.1%}, {mark})"
            )
    if outcome is not None and outcome.target is not None:
        best = outcome.best
        console.print(
            f"sweep {outcome.sweep.field}: "
            + (f"smallest value meeting {outcome.target.text}: {best:g}" if best is not None
               else f"no value meets {outcome.target.text}")
        )  # fmt: skip
    console.print(f"report: {files['report']}")


class _Progress:
    """A rich progress bar, or nothing with --quiet (or when stderr is not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.bar: Any = None
        self.task: Any = None
        if not quiet and (sys.stderr.isatty() or os.environ.get("MYNAHIL_PROGRESS")):
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, description: str, total: int) -> None:
        if self.bar is not None:
            self.task = self.bar.add_task(description, total=total or None)

    def update(self, done: int, total: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, total=total)
