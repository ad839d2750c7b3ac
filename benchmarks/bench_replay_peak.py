"""Round 1's peak hour at ten times its rate: Locust with two workers against two platform
workers on PostgreSQL.

The peak hour is the busiest hour of ``scenarios/round1.toml``'s arrival curve (launch day of
the point period, 2020-09-01 11:00 JST, about 81,000 holders an hour). Compressing an hour
``--times``-fold sends its holders ``--times`` as fast, so the replay runs at ``compress =
--times`` for ``--seconds`` of wall time: the first ``seconds x times`` seconds of that hour
(the curve is one figure per hour, so the rate is the same throughout). The default, x10 for
60 s, is the first 10 minutes of the hour in one minute: about 225 holders a second, each
reserving a MyKey ID and logging in with its card (five requests, two RSA verifications).

One run: a new PostgreSQL schema; ``mynahil serve --workers 2`` on it (replaying 2020-09-01);
``mynahil loadtest --master --expect-workers 2`` following the plan, and two ``mynahil
loadtest --worker`` processes each issuing ``--cards`` cards from the platform's CA (a card is
dealt again once all were used: re-reserving returns the holder's ID, and the run says how
many were). Prints the master's progress, then the figures; the last line is JSON. When the
machine cannot send the target rate, ``achieved_over_target`` says how much of it was sent.

With ``--report DIR`` the load test's report (``report.md``, ``stats.json`` with its
per-second timeline, the timeline plotted as ``loadtest.png``) and the Locust workers' logs
are kept in ``DIR``; otherwise they go with the run's temporary folder.

Run: ``python benchmarks/bench_replay_peak.py [--times 10] [--seconds 60] [--cards 400]
[--report DIR]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from scratch_postgres import POSTGRES, scratch_schema

from mynahil.reference_impl.platform import free_port, serve_process
from mynahil.simulator import load_scenario
from mynahil.simulator.loadtest.plan import LoadPlan, peak_replay

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "round1.toml"
PLATFORM_WORKERS = 2
LOCUST_WORKERS = 2
REQUESTS_PER_HOLDER = 5  # reserve: challenge, id; login: challenge, session, me


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def replay(url: str, ca: Path, plan: LoadPlan, out: Path, args: argparse.Namespace) -> int:
    """The master and its workers against ``url``; the master's exit code."""
    port = str(free_port())
    common = [sys.executable, "-m", "mynahil", "loadtest", str(SCENARIO), "--platform", url,
              "--start", plan.start.isoformat(timespec="minutes"), "--hours", repr(plan.hours),
              "--compress", repr(plan.compress), "--max-users", str(plan.max_users),
              "--pacing", repr(plan.pacing), "--master-port", port]  # fmt: skip
    master = subprocess.Popen(
        [*common, "--master", "--expect-workers", str(LOCUST_WORKERS), "--out", str(out),
         "--max-error-rate", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    logs = [out.parent / f"locust-worker-{n}.log" for n in range(1, LOCUST_WORKERS + 1)]
    processes: list[subprocess.Popen[Any]] = [master]
    with ExitStack() as files:
        for n, log in enumerate(logs, start=1):
            argv = [*common, "--worker", "--ca", str(ca), "--cards", str(args.cards),
                    "--seed", str(n)]  # fmt: skip
            stderr = files.enter_context(log.open("w"))
            processes.append(
                subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
            )
        # Issuing the cards, joining, the run itself and the master's last reports.
        deadline = args.cards * 0.2 + plan.duration_s + 180
        try:
            stdout, _ = master.communicate(timeout=deadline)
            for worker in processes[1:]:
                worker.wait(timeout=30)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    say(stdout.rstrip())
    if master.returncode != 0:
        for log in logs:
            say(f"--- {log.name}\n{log.read_text()[-2000:]}")
    return master.returncode


def figures_of(stats: dict[str, Any], plan: LoadPlan, cards: int, exit_code: int) -> dict[str, Any]:
    total = stats["total"]
    run_s = int(stats["plan"]["duration_s"])
    target_holders = float(plan.peak_people_per_hour) * plan.compress / 3600 * plan.scale
    holders = stats["requests"].get("reserve: id", {}).get("requests", 0)
    achieved_holders = holders / run_s
    return {
        "scenario": "round1",
        "peak_hour": plan.start.isoformat(timespec="minutes"),
        "peak_people_per_hour": round(float(plan.peak_people_per_hour)),
        "times": plan.compress,
        "compress": plan.compress,
        "replayed_minutes_of_the_hour": round(plan.hours * 60, 2),
        "run_s": run_s,
        "platform_workers": PLATFORM_WORKERS,
        "locust_workers": stats["workers"],
        "store": "postgresql",
        "users": plan.max_users,
        "pacing_s": plan.pacing,
        "holders": holders,
        "requests": total["requests"],
        "errors": total["failures"],
        "p50_ms": total["p50_ms"],
        "p95_ms": total["p95_ms"],
        "p99_ms": total["p99_ms"],
        "stages": {
            name: {key: row[key] for key in ("requests", "failures", "p50_ms", "p95_ms", "p99_ms")}
            for name, row in stats["stages"].items()
        },
        "target_holders_per_s": round(target_holders, 1),
        "achieved_holders_per_s": round(achieved_holders, 1),
        "target_requests_per_s": round(target_holders * REQUESTS_PER_HOLDER, 1),
        "achieved_requests_per_s": round(total["requests"] / run_s, 1),
        "achieved_over_target": round(achieved_holders / target_holders, 3),
        "error_kinds": stats["errors"],
        # Each worker deals its own cards, again once all were used.
        "cards_issued": LOCUST_WORKERS * cards,
        "cards_dealt_again": max(0, holders - LOCUST_WORKERS * cards),
        "loadtest_exit_code": exit_code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=float, default=10.0, help="x the peak hour's rate")
    parser.add_argument("--seconds", type=int, default=60, help="wall time of the replay")
    parser.add_argument("--cards", type=int, default=400, help="cards each Locust worker issues")
    parser.add_argument("--pacing", type=float, default=1.0, help="seconds between holders")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument(
        "--report", type=Path, help="keep the load test's report and the workers' logs here"
    )
    args = parser.parse_args()
    if args.report is not None and args.report.exists() and any(args.report.iterdir()):
        parser.error(f"--report {args.report} is not empty")
    plan = peak_replay(load_scenario(SCENARIO), times=args.times, seconds=args.seconds,
                       pacing=args.pacing)  # fmt: skip
    load = os.getloadavg()[0]
    say(
        f"round 1's peak hour {plan.start:%Y-%m-%d %H:%M} ({plan.peak_people_per_hour:,.0f} "
        f"holders/h) x{plan.compress:g}: {plan.hours * 60:.1f} min of it in {plan.duration_s} s, "
        f"{plan.max_users} users; load average {load:.1f} on {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp, scratch_schema(args.postgres) as db_url:
        if db_url is None:
            raise SystemExit(f"error: PostgreSQL at {args.postgres} is needed")
        folder = Path(tmp)
        say(f"starting mynahil serve --workers {PLATFORM_WORKERS} on a new PostgreSQL schema")
        with serve_process(db_url, folder / "jlis", as_of=plan.start.date().isoformat(),
                           workers=PLATFORM_WORKERS) as (url, _process):  # fmt: skip
            say(f"platform at {url}; {LOCUST_WORKERS} Locust workers issue {args.cards} cards each")
            started = time.perf_counter()
            exit_code = replay(url, folder / "jlis", plan, folder / "report", args)
            wall = time.perf_counter() - started
        if args.report is not None:  # kept before anything can fail: a failed run's logs too
            args.report.mkdir(parents=True, exist_ok=True)
            if (folder / "report").is_dir():
                shutil.copytree(folder / "report", args.report, dirs_exist_ok=True)
            for log in folder.glob("locust-worker-*.log"):
                shutil.copy2(log, args.report)
            say(f"report kept in {args.report}")
        stats_file = folder / "report" / "stats.json"
        if not stats_file.exists():
            raise SystemExit(f"error: the replay wrote nothing (exit {exit_code})")
        stats = json.loads(stats_file.read_text())
    figures = figures_of(stats, plan, args.cards, exit_code)
    figures["wall_s"] = round(wall, 1)
    figures["load_average_at_start"] = round(load, 1)
    ratio = figures["achieved_over_target"]
    for kind, count in figures["error_kinds"].items():
        print(f"error: {kind} ({count}x)")
    reached = ratio >= 0.95
    print(
        f"{figures['requests']:,} requests, {figures['errors']} errors; p50/p95/p99 "
        f"{_ms(figures['p50_ms'])}/{_ms(figures['p95_ms'])}/{_ms(figures['p99_ms'])} ms"
    )
    print(
        f"holders/s: target {figures['target_holders_per_s']} (x{plan.compress:g} the peak hour), "
        f"achieved {figures['achieved_holders_per_s']} = {ratio:.1%} of it"
        + ("" if reached else ": this machine did not reach the target rate")
    )
    figures["target_reached"] = reached
    print(json.dumps(figures))


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.0f}"


if __name__ == "__main__":
    main()
