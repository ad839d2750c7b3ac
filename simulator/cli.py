"""``mynahil simulate``: plain functions the main typer app registers.

``app.command("simulate")(simulate)`` in ``mynahil/cli/__init__.py``.
"""

from __future__ import annotations

import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mynahil.extras import require
from mynahil.paths import scenarios_dir

from .loadtest.plan import build_plan
from .scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario, scenario_path

__all__ = ["calibrate", "loadtest", "scenarios_app", "simulate"]


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def _default_out(scenario: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"sim-{scenario.stem}-{stamp}"


def simulate(
    scenario: Annotated[
        Path,
        typer.Argument(
            help="Scenario TOML file, or a bundled one by name (mynahil scenarios list)."
        ),
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
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="With --platform: its J-LIS CA folder, to issue trusted cards."),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            envvar="MYNAHIL_CA_FILE",
            help="With --platform: the CA (PEM) an https platform's certificate must chain to "
            "(default: the system's trust store).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    operators: Annotated[
        bool | None,
        typer.Option(
            "--operators/--no-operators",
            help="Simulate the operator load too (default: if the scenario has an operator part).",
        ),
    ] = None,
    hil_operators: Annotated[
        int,
        typer.Option(min=0, help="Run N sampled operators for real: signed report batches."),
    ] = 0,
    operator_platform: Annotated[
        str | None,
        typer.Option(help="With --hil-operators: a running platform's URL (default: in-process)."),
    ] = None,
    operator_db: Annotated[
        str | None,
        typer.Option(help="With --operator-platform: its database URL, to register operators."),
    ] = None,
) -> None:
    """Simulate a sign-up scenario: queues, lockouts, platform load; CSV, JSON, plots, HTML."""
    from .engine import open_executor, run
    from .metrics import hourly_table, summarize
    from .report import write_outputs
    from .sweep import run_sweep

    loaded, sweeps, goal, plan = _inputs(scenario, sweep, target, operators, hil_operators)
    plan.hil_target = (operator_platform, operator_db)
    _check_hil_platform(hil, platform, ca)
    if platform:
        _check_ca_file(ca_file)
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
                    loaded,
                    hil,
                    seed=seed,
                    platform_url=platform,
                    ca=ca,
                    ca_file=ca_file,
                    progress=progress.update,
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
    operator_part = plan.run(loaded, result, out, seed=seed, quiet=quiet)
    files = write_outputs(
        out, loaded, summary, hourly_table(result), outcome, hil_report, operator_part
    )
    if not quiet:
        _print_headline(summary, files, outcome, loaded)
    plan.exit_if_failed()
    if outcome is not None and outcome.target is not None and outcome.best is None:
        values = ", ".join(f"{v:g}" for v in outcome.sweep.values)
        print(
            f"error: --target {outcome.target.text!r}: no value of --sweep {outcome.sweep.field} "
            f"({values}) meets it; report: {files['report']}",
            file=sys.stderr,
        )
        raise typer.Exit(1)


def calibrate(
    scenario: Annotated[
        Path,
        typer.Argument(help="Scenario TOML with a [calibration] table (scenarios/round1.toml)."),
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Published figures CSV (default: calibration.data)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder (default: reports/calibrate-<scenario>-<time>)."),
    ] = None,
    write: Annotated[
        bool,
        typer.Option("--write/--no-write", help="Write the fitted values into the scenario file."),
    ] = True,
    max_fit_error: Annotated[
        float, typer.Option(help="Exit 1 if a fit row is further off than this share.")
    ] = 0.10,
    max_holdout_error: Annotated[
        float, typer.Option(help="Exit 1 if a holdout row is further off than this share.")
    ] = 0.20,
) -> None:
    """Fit the demand to published figures; report every row's error, fit and holdout apart.

    The fitted parameters, the holdout cut-off, the seed and the number of starts come from
    the scenario's [calibration] table; the same inputs give the same fit.
    """
    from .calibration import calibrate as fit
    from .calibration import update_scenario_text
    from .published import DatasetError
    from .report import write_calibration

    try:
        scenario = scenario_path(scenario)
        loaded = load_scenario(scenario)
        result = fit(loaded, data)
    except (ScenarioError, DatasetError) as exc:
        raise _fail(str(exc)) from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out or Path("reports") / f"calibrate-{scenario.stem}-{stamp}"
    files = write_calibration(folder, result)
    for path, value in result.values.items():
        print(f"{path} = {value:.4g} (was {result.initial[path]:.4g})")
    for row in result.rows:
        print(
            f"  {row.row.day} {row.row.kind}: model {row.simulated:,.0f} vs published "
            f"{row.row.value:,.0f} ({row.error:+.1%}, {row.role})"
        )
    if write and result.values:
        try:
            text = update_scenario_text(scenario.read_text(), result.values)
        except ScenarioError as exc:
            raise _fail(str(exc)) from None
        scenario.write_text(text)
        print(f"fitted values written into {scenario}")
    print(f"report: {files['markdown']} ({result.seconds:.1f} s)")
    worst_fit, worst_holdout = result.worst("fit"), result.worst("holdout")
    if (worst_fit or 0) > max_fit_error or (worst_holdout or 0) > max_holdout_error:
        print(
            f"error: worst fit row {worst_fit or 0:.1%} (limit {max_fit_error:.0%}), worst "
            f"holdout row {worst_holdout or 0:.1%} (limit {max_holdout_error:.0%})",
            file=sys.stderr,
        )
        raise typer.Exit(1)


def _seconds(p95: float | None, saturated_hours: dict[str, Any]) -> str:
    """A p95 in seconds, or the saturation it stands for (JSON writes +inf as null)."""
    hours = saturated_hours["mean"]
    if p95 is None or math.isinf(p95) or hours > 0:
        return f"saturated ({hours:,.0f} hours with more than 5% of requests timing out)"
    return f"{p95:.3f} s"


def _inputs(
    scenario: Path,
    sweep: list[str] | None,
    target: str | None,
    operators: bool | None,
    hil_operators: int,
) -> tuple[Scenario, list[Any], Any, Any]:
    """The scenario, the sign-up sweeps and target, and the operator part's plan."""
    from .operators.cli import OperatorPlan
    from .sweep import parse_sweep, parse_target

    try:
        loaded: Scenario = load_scenario(scenario)
        sweeps = [parse_sweep(s) for s in sweep or []]
        plan, sweeps = OperatorPlan.of(loaded, sweeps, target, operators, hil_operators)
        goal = parse_target(target) if target and plan.sweep is None else None
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    if len(sweeps) > 1:
        raise _fail("--sweep: one field at a time")
    if goal is not None and not sweeps:
        raise _fail("--target needs a --sweep")
    return loaded, sweeps, goal, plan


def _print_headline(
    summary: dict[str, Any], files: dict[str, Path], outcome: Any, scenario: Scenario
) -> None:
    from rich.console import Console

    from .calibration import calibration_check, measure_shares, published_for

    console = Console()
    metrics = summary["metrics"]
    console.print(
        f"applications: {metrics['applications']['mean']:,.0f}; lockouts: "
        f"{metrics['lockouts']['mean']:,.0f}; worst window p95 wait: "
        f"{metrics['peak_wait_p95_municipal_window_min']['mean']:.1f} min; worst platform p95: "
        + _seconds(metrics["platform_peak_p95_s"]["mean"], metrics["platform_saturated_hours"])
    )
    rows, cut = published_for(scenario)
    for row in calibration_check(summary, rows, cut, measures=measure_shares(scenario)):
        if row.simulated is not None:
            mark = "ok" if row.ok else "OFF"
            console.print(
                f"  {row.label}: {row.simulated:,} vs published {row.published:,} "
                f"({row.error:+.1%}, {row.role}, {mark})"
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


def _check_hil_platform(hil: int, platform: str | None, ca: Path | None) -> None:
    """``--platform URL`` goes with ``--hil N`` and the platform's ``--ca DIR``."""
    if platform and not hil:
        raise _fail("--platform needs --hil N")
    if platform and ca is None:
        raise _fail("--platform needs --ca DIR: the platform's J-LIS CA folder, to issue its cards")
    if ca is not None and not platform:
        raise _fail("--ca goes with --platform URL (the in-process platform has its own CA)")
    if platform and not platform.startswith(("http://", "https://")):
        raise _fail(f"--platform {platform!r}: give the platform's http(s):// URL")
    if ca is not None:
        _check_ca(ca)


def _parse_rate(text: str) -> float:
    """``1%`` or ``0.01``."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise _fail(f"--max-error-rate {text!r}: give a share like 1% or 0.01") from None
    if not 0 <= value <= 1:
        raise _fail(f"--max-error-rate {text!r}: must be between 0% and 100%")
    return value


def loadtest(
    scenario: Annotated[
        Path,
        typer.Argument(
            help="Scenario TOML file (or bundled name) whose arrival curve is replayed."
        ),
    ],
    platform: Annotated[
        str, typer.Option("--platform", help="The running platform's URL (mynahil serve).")
    ],
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca", help="The platform's J-LIS CA folder: cards are issued from it (not --master)."
        ),
    ] = None,
    compress: Annotated[
        float, typer.Option(help="Time compression: 3600 replays one hour per second.")
    ] = 3600.0,
    start: Annotated[
        str | None,
        typer.Option(
            help="First hour replayed, ISO (JST), e.g. 2020-07-01T08:00 (default: "
            "the scenario's first day, 00:00)."
        ),
    ] = None,
    hours: Annotated[float, typer.Option(help="Hours of the curve replayed.")] = 24.0,
    max_users: Annotated[
        int, typer.Option(help="Most concurrent users; the curve is scaled down to fit.")
    ] = 50,
    pacing: Annotated[float, typer.Option(help="Seconds between two holders of one user.")] = 1.0,
    stages: Annotated[
        str, typer.Option(help="Comma-separated: reserve, login (card login + GET /me).")
    ] = "reserve,login",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: reports/loadtest-<timestamp>)."),
    ] = None,
    max_error_rate: Annotated[
        str, typer.Option(help="Exit 1 above this share of failed requests, e.g. 1% or 0.01.")
    ] = "1%",
    cards: Annotated[
        int | None,
        typer.Option(help="Cards issued by this process (default: what the plan needs)."),
    ] = None,
    master: Annotated[
        bool, typer.Option("--master", help="Run the shape and the report; workers send load.")
    ] = False,
    worker: Annotated[
        bool, typer.Option("--worker", help="Send load for a --master (same scenario options).")
    ] = False,
    master_host: Annotated[str, typer.Option(help="With --worker: the master's host.")] = (
        "127.0.0.1"
    ),
    master_port: Annotated[int, typer.Option(help="Master/worker port.")] = 5557,
    expect_workers: Annotated[
        int, typer.Option(min=1, help="With --master: start once this many workers joined.")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed for the holders' identities.")] = 1,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            envvar="MYNAHIL_CA_FILE",
            help="The CA (PEM) an https platform's certificate must chain to "
            "(default: the system's trust store).",
        ),
    ] = None,
    operators: Annotated[
        int,
        typer.Option(
            min=0,
            help="Replay the operators' report curve instead of holders: register N operators "
            "in --db and send signed batches.",
        ),
    ] = 0,
    db: Annotated[
        str | None,
        typer.Option("--db", help="With --operators: the platform's database URL (staff setup)."),
    ] = None,
    operators_file: Annotated[
        Path | None,
        typer.Option(help="With --worker: the operators.json a --master's setup wrote."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="With --operators: reports per batch.")] = 100,
) -> None:
    """Replay a scenario's arrival curve as HTTP load on a running platform, with Locust."""
    # httpcore before Locust: it imports trio where trio is installed, and trio needs the
    # select.epoll that gevent's patching removes (httpx imports httpcore lazily, later).
    import httpcore  # noqa: F401

    require("locust")  # before any other check: the whole command needs it

    _check_platform(platform, master, worker)
    if operators or operators_file is not None:
        from .loadtest.operator_cli import operator_loadtest

        operator_loadtest(
            scenario, platform, db=db, count=operators, operators_file=operators_file,
            batch=batch, start=start, hours=hours, compress=compress, max_users=max_users,
            pacing=pacing, out=out, max_error_rate=_parse_rate(max_error_rate),
            mode="master" if master else "worker" if worker else "local",
            master_host=master_host, master_port=master_port, expect_workers=expect_workers,
            seed=seed,
        )  # fmt: skip
        return
    wanted = _stages(stages)
    limit = _parse_rate(max_error_rate)
    try:
        loaded: Scenario = load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    try:
        first = (
            datetime.fromisoformat(start)
            if start
            else datetime.combine(loaded.run.start, datetime.min.time())
        )
    except ValueError:
        raise _fail(f"--start {start!r}: give an ISO date or time, e.g. 2020-07-01T08:00") from None
    if ca is None and not master:
        raise _fail("--ca DIR is needed: the platform's J-LIS CA folder, to issue trusted cards")
    if ca is not None:
        _check_ca(ca)
    _check_ca_file(ca_file)
    try:
        plan = build_plan(loaded, first, hours, compress=compress, max_users=max_users,
                          pacing=pacing)  # fmt: skip
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if cards is not None and cards < 1:
        raise _fail("--cards must be at least 1")

    # Locust monkey-patches the process with gevent on import: only here, never at the top.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gevent's "ssl imported before patching" notice
        from .loadtest.report import summary, write_report
        from .loadtest.runner import LoadTestConfig, run

    config = LoadTestConfig(
        platform_url=platform, ca=ca or Path(), stages=wanted,
        mode="master" if master else "worker" if worker else "local",
        master_host=master_host, master_port=master_port, expect_workers=expect_workers,
        cards=cards, seed=seed, ca_file=str(ca_file) if ca_file else None,
    )  # fmt: skip
    try:
        outcome = run(plan, config, say=lambda text: print(text, file=sys.stderr))
    except OSError as exc:
        raise _fail(f"--platform {platform}: {exc}") from None
    if outcome is None:
        return
    figures = summary(outcome, scenario.stem, limit)
    folder = out or Path("reports") / f"loadtest-{datetime.now():%Y%m%d-%H%M%S}"
    files = write_report(folder, figures)
    for name, row in figures["stages"].items():
        print(
            f"{name}: {row['requests']:,} requests, {row['failures']:,} failed, "
            f"p50 {_ms(row['p50_ms'])} / p95 {_ms(row['p95_ms'])} / p99 {_ms(row['p99_ms'])} ms, "
            f"{row['rps']:.1f}/s"
        )
    total = figures["total"]
    print(f"error rate {total['error_rate']:.2%} (limit {limit:.2%}); report: {files['report']}")
    if not figures["passed"]:
        raise typer.Exit(1)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _stages(stages: str) -> tuple[str, ...]:
    wanted = tuple(s.strip() for s in stages.split(",") if s.strip())
    unknown = [s for s in wanted if s not in ("reserve", "login")]
    if unknown or not wanted:
        raise _fail(f"--stages {stages!r}: use reserve and/or login")
    if "login" in wanted and "reserve" not in wanted:
        raise _fail("--stages: login needs reserve (a card logs in once it has a MyKey ID)")
    return wanted


def _check_platform(platform: str, master: bool, worker: bool) -> None:
    if master and worker:
        raise _fail("--master and --worker: choose one")
    if not platform.startswith(("http://", "https://")):
        raise _fail(f"--platform {platform!r}: give the platform's http(s):// URL")


def _check_ca_file(ca_file: Path | None) -> None:
    """A missing or unreadable --ca-file is named before any load is sent."""
    from mynahil.tls import TlsConfigError, client_verify

    try:
        client_verify(ca_file)
    except TlsConfigError as exc:
        raise _fail(str(exc)) from None


def _check_ca(folder: Path) -> None:
    from mynahil.reference_impl.jlis import CAFolderError, JlisCA

    try:
        JlisCA.load(folder)
    except CAFolderError as exc:
        raise _fail(f"--ca {exc}") from None


scenarios_app = typer.Typer(
    help="The bundled load scenarios: list them, copy one to edit.", no_args_is_help=True
)


@scenarios_app.command("list")
def scenarios_list() -> None:
    """The bundled scenarios by name, with what each describes."""
    for name, path in bundled_scenarios().items():
        try:
            description = load_scenario(path).description
        except ScenarioError as exc:
            description = f"(does not load: {exc})"
        print(f"{name:<24} {description}")


# The bundled profiles a vendor starts from (``devices/generic-reader``, ``operators/example``):
# an installed wheel has them under share/, where nobody would look without reading code.
PROFILE_KINDS = ("devices", "operators", "faults")


def _bundled_profile(name: str) -> Path | None:
    """The bundled profile ``KIND/NAME`` names; None when ``name`` is not of that form."""
    kind, slash, stem = name.partition("/")
    if not slash or kind not in PROFILE_KINDS or not stem or "/" in stem or "." in stem:
        return None
    found = scenarios_dir() / kind / f"{stem}.toml"
    if not found.is_file():
        known = ", ".join(f"{kind}/{p.stem}" for p in sorted(found.parent.glob("*.toml")))
        raise _fail(f"{name}: no such bundled profile (bundled: {known or 'none'})")
    return found


@scenarios_app.command("copy")
def scenarios_copy(
    name: Annotated[
        str,
        typer.Argument(
            help="A bundled scenario's name (mynahil scenarios list), or a bundled profile to "
            "start from: devices/generic-reader, devices/phone, operators/example, faults/NAME."
        ),
    ],
    folder: Annotated[Path, typer.Argument(help="Where to write NAME.toml.")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Copy a bundled scenario or profile to edit; a scenario's ``extends`` keeps finding the
    bundled parent."""
    try:
        source = _bundled_profile(name) or scenario_path(name)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    if not source.exists():
        raise _fail(f"{name}: no such bundled scenario (see mynahil scenarios list)")
    target = folder / source.name
    if target.exists() and not force:
        raise _fail(f"{target} exists: pass --force to overwrite it")
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(_schema_beside(source.read_text(encoding="utf-8"), source), encoding="utf-8")
    print(target)


def _schema_beside(text: str, source: Path) -> str:
    """The file with its ``#:schema ./…`` directive pointing at the bundled schema, which the
    copy is no longer beside (editors resolve a relative schema path from the file)."""
    first, newline, rest = text.partition("\n")
    relative = first.removeprefix("#:schema ").strip()
    if first.startswith("#:schema ") and relative.startswith("."):
        first = f"#:schema {(source.parent / relative).resolve().as_uri()}"
    return first + newline + rest
