"""The operator replay against one platform worker: signed reports per second and decision
latency, on SQLite and on PostgreSQL.

``mynahil serve`` (one uvicorn worker, replaying 2020-09-01) runs in its own process;
``mynahil loadtest --operators N --db URL`` registers N operators with holders in its database
and replays the busiest hours of ``scenarios/round1.toml``'s report curve (2020-09-01 from
12:00) compressed into ``--seconds``, at most ``--max-users`` operator users, each sending a
signed batch of ``--batch`` charges every ``--pacing`` seconds. Afterwards it checks the
ledger and that every acknowledged report was decided once.

Run: ``python benchmarks/bench_operator_replay.py [--seconds 30] [--batch 100]``. The last
line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from scratch_postgres import POSTGRES, scratch_schema

from mynahil.reference_impl.platform import serve_process

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "round1.toml"


def replay(db_url: str, folder: Path, args: argparse.Namespace) -> dict[str, object]:
    hours = 2.0
    compress = hours * 3600 / args.seconds
    with serve_process(db_url, folder / "jlis", as_of="2020-09-01") as (url, _process):
        out = folder / "report"
        result = subprocess.run(
            [sys.executable, "-m", "mynahil", "loadtest", str(SCENARIO), "--platform", url,
             "--operators", str(args.operators), "--db", db_url, "--start", "2020-09-01T12:00",
             "--hours", f"{hours:g}", "--compress", f"{compress:g}", "--max-users",
             str(args.max_users), "--pacing", str(args.pacing), "--batch", str(args.batch),
             "--out", str(out)],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        if not (out / "stats.json").exists():
            raise SystemExit(f"the replay wrote nothing: {result.stderr}")
        stats = json.loads((out / "stats.json").read_text())
    ops = stats["operators"]
    report = stats["stages"].get("report", {})
    return {
        "exit_code": result.returncode,
        "reports_per_s": round(ops["reports_per_s"], 1),
        "acknowledged_reports": ops["acknowledged_reports"],
        "batches": report.get("requests", 0),
        "p50_ms": report.get("p50_ms"),
        "p95_ms": report.get("p95_ms"),
        "p99_ms": report.get("p99_ms"),
        "failures": report.get("failures", 0),
        "decided_once": ops["checked"] and not ops["problems"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="run length (2 h compressed)")
    parser.add_argument("--operators", type=int, default=4)
    parser.add_argument("--max-users", type=int, default=8)
    parser.add_argument("--pacing", type=float, default=0.2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    figures: dict[str, object] = {"seconds": args.seconds, "batch": args.batch,
                                  "max_users": args.max_users}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sqlite"
        folder.mkdir()
        figures["sqlite"] = replay(f"sqlite:///{folder}/bench.db", folder, args)
        with scratch_schema(args.postgres) as url:
            if url is not None:
                folder = Path(tmp) / "postgres"
                folder.mkdir()
                figures["postgres"] = replay(url, folder, args)
    for store in ("sqlite", "postgres"):
        row = figures.get(store)
        if isinstance(row, dict):
            print(
                f"{store}: {row['reports_per_s']} signed reports/s ({row['batches']} batches), "
                f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms; "
                f"decided once: {row['decided_once']}"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
