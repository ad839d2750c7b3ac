"""``mynahil conformance …``: run the suite against a target, replay a trace, run the defect
matrix. Each run is a pytest session in its own process, so runs never share state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["app", "run_target"]

SUITES = Path(__file__).with_name("suites")

app = typer.Typer(
    help="The conformance suite: certify a reader, a phone or the emulated card.",
    no_args_is_help=True,
)


def run_target(
    target: str,
    report: Path,
    *,
    device_profile: Path | None = None,
    allow_destructive: bool = False,
    pin: str | None = None,
    platform_ca: Path | None = None,
    quiet: bool = True,
    extra: list[str] | None = None,
) -> tuple[int, dict[str, object]]:
    """Run the suite; (pytest's exit code, results.json as read back)."""
    # -P: import this same installed package, never a checkout that happens to be the cwd.
    argv = [
        sys.executable, "-P", "-m", "pytest", str(SUITES), "-p", "conformance.plugin",
        "-p", "no:cacheprovider", "--rootdir", str(SUITES.parent),
        "--conformance-target", target, "--conformance-report", str(report),
        "--alluredir", str(report / "allure-results"),
    ]  # fmt: skip
    if device_profile:
        argv += ["--device-profile", str(device_profile)]
    if allow_destructive:
        argv.append("--allow-destructive")
    if pin:
        argv += ["--conformance-pin", pin]
    if platform_ca:
        argv += ["--platform-ca", str(platform_ca)]
    argv += ["-q"] if quiet else ["-v"]
    argv += extra or []
    completed = subprocess.run(argv, capture_output=quiet, text=True, check=False)
    results_path = report / "results.json"
    if not results_path.exists():
        output = (completed.stdout or "") + (completed.stderr or "")
        raise RuntimeError(output.strip().splitlines()[-1] if output.strip() else "no results")
    results: dict[str, object] = json.loads(results_path.read_text())
    return completed.returncode, results


def _err(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("run")
def run(
    target: Annotated[
        str,
        typer.Option(
            help="card:inproc, card:vpcd, card:defect:NAME, pcsc[:READER], phone[:HOST:PORT], "
            "operator:sample, operator:defect:NAME, platform:sample, platform:URL"
        ),
    ],
    report: Annotated[Path, typer.Option(help="Folder for index.html and results.json.")] = Path(
        "reports/conformance"
    ),
    device_profile: Annotated[
        Path | None, typer.Option(help="Device profile (scenarios/devices/*.toml).")
    ] = None,
    allow_destructive: Annotated[
        bool, typer.Option(help="Also run PIN-lockout tests on a real card (it WILL lock).")
    ] = False,
    pin: Annotated[str | None, typer.Option(help="The real card's PIN (signing tests).")] = None,
    ca: Annotated[
        Path | None, typer.Option(help="platform:URL: the server's J-LIS CA folder.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Certify a target: exit 0 only when every selected requirement passes."""
    from .targets import TargetError, parse_target

    try:
        parse_target(target)
    except TargetError as exc:
        raise _err(f"--target: {exc}") from None
    if device_profile is not None and not device_profile.is_file():
        raise _err(f"--device-profile {device_profile}: no such file")
    report.mkdir(parents=True, exist_ok=True)
    (report / "results.json").unlink(missing_ok=True)
    try:
        code, results = run_target(
            target, report, device_profile=device_profile,
            allow_destructive=allow_destructive, pin=pin, platform_ca=ca, quiet=not verbose,
        )  # fmt: skip
    except RuntimeError as exc:
        raise _err(str(exc)) from None
    requirements = results["requirements"]
    assert isinstance(requirements, dict)
    counts: dict[str, int] = {}
    for verdict in requirements.values():
        counts[verdict["verdict"]] = counts.get(verdict["verdict"], 0) + 1
        if verdict["verdict"] in ("failed", "untested"):
            typer.echo(f"{verdict['verdict'].upper():9} {verdict['title']}", err=True)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    typer.echo(f"{target}: {summary} -> {report / 'index.html'}")
    raise typer.Exit(0 if results["passed"] and code == 0 else 1)


@app.command("replay")
def replay(
    trace: Annotated[Path, typer.Argument(help="A trace (.jsonl) from a conformance run.")],
    exact: Annotated[bool, typer.Option(help="Compare whole responses, not status words.")] = False,
) -> None:
    """Play a recorded trace against a fresh emulated card; name the first divergence."""
    from .replay import replay_trace
    from .targets import parse_target

    if not trace.is_file():
        raise _err(f"{trace}: no such trace")
    card = parse_target("card:inproc").emulated_card()
    from card_emulator import EmulatedCard

    assert isinstance(card, EmulatedCard)
    card.reset()
    try:
        result = replay_trace(trace, card, exact=exact)
    except ValueError as exc:
        raise _err(str(exc)) from None
    if result.divergence is None:
        typer.echo(f"{trace.name}: {result.commands} commands, the emulated card answers alike")
        return
    d = result.divergence
    typer.echo(
        f"{trace.name}: line {d.index} diverges: command {d.command}\n"
        f"  recorded {d.recorded[-4:]} ({len(d.recorded) // 2} bytes), "
        f"emulated {d.emulated[-4:]} ({len(d.emulated) // 2} bytes)"
    )
    raise typer.Exit(1)


@app.command("defects")
def defects(
    report: Annotated[Path, typer.Option(help="Folder for each run and defects.json.")] = Path(
        "reports/conformance-defects"
    ),
    vpcd: Annotated[bool, typer.Option(help="Also the correct card through pcscd.")] = False,
) -> None:
    """The defect matrix: each defective card caught under its requirement, correct ones pass."""
    from .defects import DEFECTS

    rows: list[dict[str, Any]] = []
    correct = [
        "card:inproc",
        *(["card:vpcd"] if vpcd else []),
        "operator:sample",
        "platform:sample",
    ]
    for target in correct:
        start = time.perf_counter()
        code, results = run_target(target, report / target.replace(":", "_"))
        ok = code == 0 and bool(results["passed"])
        rows.append({"target": target, "expected": "pass", "ok": ok,
                     "seconds": round(time.perf_counter() - start, 2)})  # fmt: skip
    from .operator_harness import OPERATOR_DEFECTS

    matrix = [(f"card:defect:{n}", d.caught_by) for n, d in sorted(DEFECTS.items())]
    matrix += [(f"operator:defect:{n}", d[1]) for n, d in sorted(OPERATOR_DEFECTS.items())]
    for target, caught_by in matrix:
        start = time.perf_counter()
        _code, results = run_target(target, report / target.replace(":", "_"))
        requirements = results["requirements"]
        assert isinstance(requirements, dict)
        failed = sorted(r for r, v in requirements.items() if v["verdict"] == "failed")
        ok = set(caught_by) <= set(failed)
        rows.append({"target": target, "expected": ", ".join(caught_by), "failed": failed,
                     "ok": ok, "seconds": round(time.perf_counter() - start, 2)})  # fmt: skip
    caught = sum(1 for r in rows if ":defect:" in r["target"] and r["ok"])
    detection = caught / len(matrix)
    report.mkdir(parents=True, exist_ok=True)
    summary = {"rows": rows, "detection_rate": detection, "passed": all(r["ok"] for r in rows)}
    (report / "defects.json").write_text(json.dumps(summary, indent=2))
    for row in rows:
        mark = "ok  " if row["ok"] else "FAIL"
        detail = f"failed {', '.join(row.get('failed', []))}" if "failed" in row else "passed"
        typer.echo(f"{mark} {row['target']:38} expected {row['expected']:16} {detail}")
    typer.echo(
        f"detection rate {detection:.0%}; matrix {'passed' if summary['passed'] else 'FAILED'}"
    )
    raise typer.Exit(0 if summary["passed"] else 1)
