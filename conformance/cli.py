"""``mynahil conformance …``: run the suite against a target, replay a trace, run the defect
matrix. Each run is a pytest session in its own process of this interpreter (so runs never
share state, and it works whether or not the plugin's entry point is installed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mynahil.extras import require

if TYPE_CHECKING:
    from .defects import MatrixRow
    from .targets import Target

__all__ = ["app", "run_matrix", "run_target"]


app = typer.Typer(
    help="The conformance suite: certify a reader, a phone, a platform or the emulated card.",
    no_args_is_help=True,
)


def run_target(
    target: str,
    report: Path,
    *,
    device_profile: Path | None = None,
    allow_destructive: bool = False,
    fresh_card: str | None = None,
    pin: str | None = None,
    sign_password: str | None = None,
    card_info_pin: str | None = None,
    trace_dir: Path | None = None,
    platform_ca: Path | None = None,
    operator_profile: Path | None = None,
    ca_file: Path | None = None,
    quiet: bool = True,
    extra: list[str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run the suite on ``target``; (pytest's exit code, ``results.json`` as read back).

    Raises RuntimeError with pytest's last words when the run wrote no results (a usage error).
    """
    report.mkdir(parents=True, exist_ok=True)
    (report / "results.json").unlink(missing_ok=True)
    # -P: the installed package, never a checkout that happens to be the cwd; the child finds
    # its suites beside that package (mynahil.conformance.run_suites).
    argv = [
        sys.executable, "-P", "-m", "mynahil.conformance.run_suites",
        "--conformance-target", target, "--conformance-report", str(report.resolve()),
        "--alluredir", str((report / "allure-results").resolve()),
    ]  # fmt: skip
    if device_profile:
        argv += ["--conformance-device-profile", str(device_profile)]
    if allow_destructive:
        argv.append("--conformance-allow-destructive")
    if fresh_card:
        argv += ["--conformance-fresh-card", fresh_card]
    if pin:
        argv += ["--conformance-pin", pin]
    if sign_password:
        argv += ["--conformance-sign-password", sign_password]
    if card_info_pin:
        argv += ["--conformance-card-info-pin", card_info_pin]
    if trace_dir:
        argv += ["--conformance-trace-dir", str(trace_dir)]
    if platform_ca:
        argv += ["--conformance-platform-ca", str(platform_ca)]
    if operator_profile:
        argv += ["--conformance-operator-profile", str(operator_profile)]
    if ca_file:
        argv += ["--conformance-ca-file", str(ca_file)]
    argv += ["-q"] if quiet else ["-v"]
    argv += extra or []
    completed = subprocess.run(argv, capture_output=quiet, text=True, check=False)
    results_path = report / "results.json"
    if not results_path.exists():
        output = (completed.stdout or "") + (completed.stderr or "")
        lines = [line for line in output.strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"pytest exited {completed.returncode}")
    results: dict[str, Any] = json.loads(results_path.read_text(encoding="utf-8"))
    return completed.returncode, results


def _err(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("run", context_settings={"allow_extra_args": True})
def run(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Option(
            help="card:inproc, card:vpcd, card:defect:NAME, card:reader-defect:NAME, "
            "pcsc[:READER], phone[:HOST:PORT], "
            "platform:sample|URL, operator:sample|defect:NAME|URL (default: the device or "
            "operator profile's)"
        ),
    ] = None,
    report: Annotated[Path, typer.Option(help="Folder for index.html and results.json.")] = Path(
        "reports/conformance"
    ),
    device_profile: Annotated[
        Path | None, typer.Option(help="Device profile (scenarios/devices/*.toml).")
    ] = None,
    allow_destructive: Annotated[
        bool,
        typer.Option(help="Also run PIN-lockout tests on a non-card:* target (its PIN WILL lock)."),
    ] = False,
    fresh_card: Annotated[
        str | None,
        typer.Option(
            metavar="COMMAND|prompt",
            help="With --allow-destructive through a reader: before each destructive test run "
            "COMMAND (it returns once a fresh test card is in the reader), or 'prompt' to be "
            "asked at the terminal. Without it they run last on the one card, lockout last.",
        ),
    ] = None,
    pin: Annotated[str | None, typer.Option(help="The real card's auth PIN.")] = None,
    sign_password: Annotated[
        str | None, typer.Option(help="The real card's signing password.")
    ] = None,
    card_info_pin: Annotated[
        str | None,
        typer.Option(help="The real card's card-info AP PIN (DF21 check; no personal data read)."),
    ] = None,
    trace_dir: Annotated[
        Path | None, typer.Option(help="Folder for the APDU traces (default REPORT/traces).")
    ] = None,
    ca: Annotated[
        Path | None, typer.Option(help="platform:URL: the server's J-LIS CA folder.")
    ] = None,
    operator_profile: Annotated[
        Path | None,
        typer.Option(help="operator:URL: the vendor's service (docs/operator-conformance.md)."),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            envvar="MYNAHIL_CA_FILE",
            help="platform:https://…: the CA (PEM) its TLS certificate must chain to "
            "(default: the system's trust store).",
        ),
    ] = None,
    golden: Annotated[
        Path | None,
        typer.Option(
            help="A reference run's verdicts (conformance/goldens/*.json): list every "
            "requirement whose verdict changed, exit 1 on any change."
        ),
    ] = None,
    update_golden: Annotated[
        bool, typer.Option(help="Write this run's verdicts to --golden instead of comparing.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Certify a target: exit 0 only when every selected requirement passes.

    Arguments after ``--`` go to pytest as they are (``-- -k JPKI-PIN-003 --junitxml x.xml``).
    """
    from .golden import GoldenError, changed_verdicts, golden_of, load_golden
    from .operator_profile import OperatorProfileError, load_operator_profile
    from .targets import TargetError, load_device_profile, parse_target

    if update_golden and golden is None:
        raise _err("--update-golden needs --golden FILE (where to write the verdicts)")
    try:
        reference = load_golden(golden) if golden is not None and not update_golden else None
    except GoldenError as exc:
        raise _err(str(exc)) from None
    try:
        device = load_device_profile(device_profile) if device_profile else None
        operator = load_operator_profile(operator_profile, target) if operator_profile else None
        target = target or (device.target if device else None)
        target = target or (operator.target if operator else None)
        if not target:
            raise _err("--target is needed (or a device or operator profile with a target)")
        parsed = parse_target(target, device)
        if parsed.kind == "operator" and parsed.wire != "sample" and operator is None:
            raise _err(f"{target} needs --operator-profile FILE (docs/operator-conformance.md)")
    except (TargetError, OperatorProfileError) as exc:
        raise _err(str(exc)) from None
    _check_the_way_there(parsed, ca_file)
    if operator is not None:
        typer.echo(
            f"harness platform for {operator.name}: listening on {operator.platform_host}:"
            f"{operator.platform_port}, reached by your service at {operator.platform_url}",
            err=True,
        )
    try:
        code, results = run_target(
            target, report, device_profile=device_profile, allow_destructive=allow_destructive,
            fresh_card=fresh_card, pin=pin, sign_password=sign_password,
            card_info_pin=card_info_pin, trace_dir=trace_dir, platform_ca=ca,
            operator_profile=operator_profile, ca_file=ca_file, quiet=not verbose,
            extra=list(ctx.args),
        )  # fmt: skip
    except RuntimeError as exc:
        raise _err(str(exc)) from None
    if results.get("refused"):
        typer.echo(results["refused"], err=True)
    for rid, verdict in results["requirements"].items():
        if verdict["verdict"] in ("failed", "untested"):
            typer.echo(f"{verdict['verdict'].upper():9} {rid}  {verdict['title']}", err=True)
            for failure in verdict.get("failures", []):
                typer.echo(f"{'':9} {failure['test']}: {failure['reason']}", err=True)
    summary = ", ".join(f"{n} {k}" for k, n in results["counts"].items() if n)
    typer.echo(f"{target}: {summary}: {results['verdict_label']} -> {report / 'index.html'}")
    if golden is not None and update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(golden_of(results), indent=2) + "\n", encoding="utf-8")
        typer.echo(f"golden verdicts written to {golden}")
    elif golden is not None and reference is not None:
        changes = changed_verdicts(reference, results)
        if reference.get("target") and reference["target"] != results["target"]:
            typer.echo(f"note: the golden run was of {reference['target']}", err=True)
        for change in changes:
            typer.echo(f"CHANGED   {change}", err=True)
        typer.echo(f"golden {golden}: {len(changes) or 'no'} changed verdict(s)")
        if changes:
            raise typer.Exit(1)
    raise typer.Exit(0 if results["passed"] and code == 0 else 1)


def _check_the_way_there(target: Target, ca_file: Path | None) -> None:
    """What every test of ``target`` needs, checked once: a failure here is one line, not the
    same failure under every test."""
    if target.kind == "platform" and target.wire.startswith("https://"):
        _check_tls(target.wire, ca_file)
    if target.wire == "vpcd" or target.wire.startswith("pcsc"):
        require("smartcard")  # MissingExtra: one line naming the extra (mynahil.cli.main)
    if target.wire.startswith("listen:"):
        _check_listen(target.wire.removeprefix("listen:"))


def _check_listen(address: str) -> None:
    """Refuse a phone target whose port is taken, in one line, before every test fails on it."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_server((host, int(port))):
            pass
    except OSError as exc:
        raise _err(
            f"cannot listen on {address}: {exc.strerror or exc}; pcscd's vpcd driver, when it "
            "runs, holds 35963 and 35964: listen on another port and set it in the phone's app"
        ) from None
    except ValueError:
        raise _err(f"{address}: not HOST:PORT") from None


def _check_tls(url: str, ca_file: Path | None) -> None:
    """Before a run: the platform's certificate verifies, or one line says why not."""
    import httpx

    from mynahil.tls import TlsConfigError, client_verify, tls_failure

    try:
        httpx.get(f"{url.rstrip('/')}/v1/health", timeout=10, verify=client_verify(ca_file))
    except TlsConfigError as exc:
        raise _err(str(exc)) from None
    except httpx.HTTPError as exc:
        failure = tls_failure(exc)
        if failure is not None:
            raise _err(f"platform:{url}: {failure}") from None  # else the suite reports it


@app.command("operator-setup")
def operator_setup(
    operator_profile: Annotated[
        Path, typer.Option(help="The vendor's operator profile (docs/operator-conformance.md).")
    ],
) -> None:
    """What a payment vendor configures before certifying: the harness platform's URL and its
    public key (created once in the profile's harness_dir). Prints the key alone on stdout."""
    import base64

    from mynahil.reference_impl.platform import platform_key
    from mynahil.reference_impl.points.signing import public_key_bytes

    from .operator_profile import OperatorProfileError, load_operator_profile

    try:
        profile = load_operator_profile(operator_profile)
    except OperatorProfileError as exc:
        raise _err(str(exc)) from None
    try:
        key = base64.b64encode(public_key_bytes(platform_key(profile.harness_dir))).decode()
    except OSError as exc:
        raise _err(f"harness_dir {profile.harness_dir}: {exc.strerror}") from None
    ops = f"{profile.platform_url}/v1/operators/{profile.operator_id}"
    typer.echo(
        f"""Configure {profile.name} ({profile.operator_id}, service {profile.service_id}):
  the harness's platform  {profile.platform_url}  (listens on {profile.platform_host}:\
{profile.platform_port} during a run)
  report transactions to  POST {ops}/transactions, signed with your key
  trust the platform key  {key}
                          (Ed25519, base64; the platform signs its POST {profile.verify_url})
  conformance hooks       POST {profile.url}/v1/accounts, POST {profile.url}/v1/till,
                          GET {profile.url}/v1/accounts/{{account_id}}
Then: mynahil conformance run --operator-profile {operator_profile}""",
        err=True,
    )
    typer.echo(key)


@app.command("replay")
def replay(
    trace: Annotated[Path, typer.Argument(help="A trace (.jsonl) from a conformance run.")],
    against: Annotated[
        str, typer.Option(help="The emulated card to replay on: card:inproc or card:defect:NAME.")
    ] = "card:inproc",
    exact: Annotated[bool, typer.Option(help="Compare whole responses, not status words.")] = False,
) -> None:
    """Play a recorded trace against a fresh emulated card; name the first divergence.

    Exit 0 when every answer matches (the failure reproduces here), 1 at a divergence.
    """
    from .replay import replay_trace
    from .targets import TargetError, parse_target

    if not trace.is_file():
        raise _err(f"{trace}: no such trace")
    try:
        target = parse_target(against)
    except TargetError as exc:
        raise _err(str(exc)) from None
    if not target.drives_emulated_card:
        raise _err(f"--against {against}: replay needs an emulated card (card:…)")
    try:
        result = replay_trace(trace, target.emulated_card(faults=""), exact=exact)
    except ValueError as exc:
        raise _err(str(exc)) from None
    if result.divergence is None:
        typer.echo(f"{trace.name}: {result.commands} commands, {against} answers alike")
        return
    typer.echo(f"{trace.name}: diverges from {against} at {result.divergence.describe()}")
    raise typer.Exit(1)


def _pcscd_available() -> bool:
    try:
        from mynahil.transports import pcsc_available

        return pcsc_available()
    except Exception:
        return False


def _matrix_row(row: MatrixRow, report: Path, pcsc: bool) -> dict[str, Any]:
    expected = ", ".join(row.must_fail) or "pass"
    if row.needs == "pcsc" and not pcsc:
        return {"target": row.target, "expected": expected, "ok": True, "failed": [],
                "skipped": "pcscd is not running", "seconds": 0.0}  # fmt: skip
    start = time.perf_counter()
    try:
        code, results = run_target(row.target, report / row.target.replace(":", "_"))
    except RuntimeError as exc:
        return {"target": row.target, "expected": expected, "ok": False, "failed": [],
                "error": str(exc), "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
    failed = sorted(
        r for r, v in results["requirements"].items() if v["verdict"] in ("failed", "untested")
    )
    ok = (code == 0 and results["passed"]) if row.correct else set(row.must_fail) <= set(failed)
    return {"target": row.target, "expected": expected, "failed": failed, "ok": bool(ok),
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


SERVICE_ROWS_AT_ONCE = 4
"""Rows of the defect matrix against a service run at once: a defective operator's row spends
~80% of its ~25 s waiting (timed on 2 cores), so two at a time left the cores idle."""


def run_matrix(
    report: Path, *, with_pcsc: bool | None = None, rows: list[MatrixRow] | None = None
) -> dict[str, Any]:
    """Every row of the defect matrix: (target, requirements that must fail). A correct
    target must pass; a defective one must fail at least the requirements its row names.

    Rows run side by side in separate processes, except the ones through pcscd: its one vpcd
    slot takes one card at a time. A card's rows keep the cores busy, one per core; a
    service's rows (``operator:…``, ``platform:…``) mostly wait, for a defective service's
    answers that never come, so :data:`SERVICE_ROWS_AT_ONCE` of them run at once besides.
    Writes ``defects.json`` and returns the same summary.
    """
    from . import defects

    pcsc = _pcscd_available() if with_pcsc is None else with_pcsc
    matrix = defects.full_matrix() if rows is None else rows
    start = time.perf_counter()
    done: dict[int, dict[str, Any]] = {}
    with (
        ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 2))) as cards,
        ThreadPoolExecutor(max_workers=SERVICE_ROWS_AT_ONCE) as services,
    ):
        futures = {
            i: (cards if r.target.startswith("card:") else services).submit(
                _matrix_row, r, report, pcsc
            )
            for i, r in enumerate(matrix)
            if r.needs != "pcsc"
        }
        for i, row in enumerate(matrix):
            if row.needs == "pcsc":
                done[i] = _matrix_row(row, report, pcsc)
        for i, future in futures.items():
            done[i] = future.result()
    rows_out = [done[i] for i in range(len(matrix))]
    # A row's expectation says whether it is a defect (card:reader-defect:… is one too); a
    # row skipped for want of pcscd caught nothing and counts for neither side.
    ran = [(row, out) for row, out in zip(matrix, rows_out, strict=True) if "skipped" not in out]
    defective = [out for row, out in ran if not row.correct]
    caught = sum(1 for r in defective if r["ok"])
    summary = {
        "rows": rows_out,
        "defects": len(defective),
        "caught": caught,
        "detection_rate": round(caught / len(defective), 4) if defective else 1.0,
        "correct_targets_pass": all(out["ok"] for row, out in ran if row.correct),
        "passed": all(r["ok"] for r in rows_out),
        "seconds": round(time.perf_counter() - start, 2),
    }
    report.mkdir(parents=True, exist_ok=True)
    (report / "defects.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


@app.command("defects")
def defects(
    report: Annotated[Path, typer.Option(help="Folder for each run and defects.json.")] = Path(
        "reports/conformance-defects"
    ),
    pcsc: Annotated[
        bool | None,
        typer.Option(
            "--pcsc/--no-pcsc",
            help="Run the rows through pcscd too, card:vpcd and the defective readers "
            "(default: if pcscd is there).",
        ),
    ] = None,
) -> None:
    """The defect matrix: each defect caught under its requirement, correct targets pass."""
    from rich.console import Console
    from rich.table import Table

    summary = run_matrix(report, with_pcsc=pcsc)
    table = Table(title="conformance defect matrix")
    for column in ("", "target", "must fail", "failed", "s"):
        table.add_column(column, overflow="fold")
    for row in summary["rows"]:
        mark = "[green]ok[/]" if row["ok"] else "[red]FAIL[/]"
        if row.get("skipped"):
            mark = "[yellow]skip[/]"
        failed = row.get("error") or row.get("skipped") or ", ".join(row["failed"]) or "-"
        table.add_row(mark, row["target"], row["expected"], failed, f"{row['seconds']:.1f}")
    console = Console(width=140)
    console.print(table)
    console.print(
        f"detection rate {summary['detection_rate']:.0%} ({summary['caught']}/"
        f"{summary['defects']}); correct targets "
        f"{'pass' if summary['correct_targets_pass'] else 'FAIL'}; matrix "
        f"{'passed' if summary['passed'] else 'FAILED'} -> {report / 'defects.json'}"
    )
    raise typer.Exit(0 if summary["passed"] else 1)
