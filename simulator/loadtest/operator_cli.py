"""``mynahil loadtest SCENARIO --operators N --db URL``: the operator replay, end to end.

Setup (local or master): N operators with holders go into the platform's database and their
identities into ``operators.json`` in the output folder. A worker reads that file
(``--operators-file``). The run follows the scenario's report curve; the report adds reports
per second, decision latency per operator, errors, and the end-of-run check: the ledger
invariants and every acknowledged report decided once, with the answer the operator got.
"""

from __future__ import annotations

import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from ..operators.registration import set_up_operators
from ..scenario import Scenario, ScenarioError, load_scenario
from .operators import (
    Acknowledged,
    build_operator_plan,
    check_decided_once,
    load_identities,
    save_identities,
)

__all__ = ["operator_loadtest"]

#: Share of batches an operator sends again (its last, acknowledged one): replays.
RESEND_SHARE = 0.05


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def operator_loadtest(
    scenario_path: Path,
    platform: str,
    *,
    db: str | None,
    count: int,
    operators_file: Path | None,
    batch: int,
    start: str | None,
    hours: float,
    compress: float,
    max_users: int,
    pacing: float,
    out: Path | None,
    max_error_rate: float,
    mode: str,
    master_host: str,
    master_port: int,
    expect_workers: int,
    seed: int,
) -> None:
    if mode == "worker" and operators_file is None:
        raise _fail("--worker with operators needs --operators-file (the master's operators.json)")
    if mode != "worker" and (db is None or count < 1):
        raise _fail("--operators N needs --db URL (the platform's database, to register them)")
    try:
        scenario: Scenario = load_scenario(scenario_path)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    try:
        first = datetime.fromisoformat(start) if start else datetime(2020, 9, 1, 12, 0)
    except ValueError:
        raise _fail(f"--start {start!r}: give an ISO time, e.g. 2020-09-01T12:00") from None
    try:
        plan = build_operator_plan(scenario, first, hours, compress=compress,
                                   max_users=max_users, pacing=pacing, batch=batch)  # fmt: skip
    except (ValueError, ScenarioError) as exc:
        raise _fail(str(exc)) from None
    folder = out or Path("reports") / f"loadtest-operators-{datetime.now():%Y%m%d-%H%M%S}"
    if operators_file is not None:
        try:
            identities = load_identities(operators_file)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    else:
        assert db is not None
        identities = set_up_operators(db, count, holders=200, seed=seed)
        save_identities(folder / "operators.json", identities)
        print(f"registered {len(identities)} operators in the platform's database; "
              f"identities in {folder / 'operators.json'}", file=sys.stderr)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gevent's "ssl imported before patching" notice
        from .operator_user import OperatorReplay, run_operator_replay
        from .report import summary, write_report
        from .runner import LoadTestConfig

    acknowledged = Acknowledged()
    replay = OperatorReplay(identities, batch, RESEND_SHARE, acknowledged, plan)
    config = LoadTestConfig(
        platform_url=platform, ca=Path(), stages=("report",), mode=mode,
        master_host=master_host, master_port=master_port, expect_workers=expect_workers,
        seed=seed,
    )  # fmt: skip
    try:
        outcome = run_operator_replay(replay, config, say=lambda t: print(t, file=sys.stderr))
    except OSError as exc:
        raise _fail(f"--platform {platform}: {exc}") from None
    if outcome is None:
        return
    figures = summary(outcome, scenario_path.stem, max_error_rate)
    figures["operators"] = _operator_figures(figures, acknowledged, db)
    figures["passed"] = figures["passed"] and not figures["operators"]["problems"]
    files = write_report(folder, figures)
    ops = figures["operators"]
    once = "not checked" if not ops["checked"] else "NO" if ops["problems"] else "yes"
    print(
        f"operators: {ops['acknowledged_reports']:,} reports acknowledged "
        f"({ops['reports_per_s']:.0f}/s), {ops['replayed_answers']:,} replayed answers; "
        f"report p95 {figures['stages'].get('report', {}).get('p95_ms') or 0:.0f} ms; "
        f"error rate {figures['total']['error_rate']:.2%}; decided once: "
        f"{once}; "
        f"report: {files['report']}"
    )
    for problem in ops["problems"][:10]:
        print(f"  problem: {problem}", file=sys.stderr)
    if not figures["passed"]:
        raise typer.Exit(1)


def _operator_figures(
    figures: dict[str, Any], acknowledged: Acknowledged, db: str | None
) -> dict[str, Any]:
    seconds = max(float(figures["wall_s"]), 1e-9)
    per_operator = {
        name.removeprefix("report: "): row
        for name, row in figures["requests"].items()
        if name.startswith("report: ")
    }
    problems: list[str] = []
    checked = False
    if db is not None:
        # A master has its workers' acknowledgements (sent with their stats reports).
        problems = check_decided_once(db, acknowledged)
        checked = True
    return {
        "acknowledged_reports": len(acknowledged.answers),
        "reports_per_s": len(acknowledged.answers) / seconds,
        "replayed_answers": acknowledged.replays,
        "per_operator": per_operator,
        "checked": checked,
        "problems": problems,
    }
