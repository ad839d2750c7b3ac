"""A longer soak: throughput, p99 latency per operation and the server's memory drift.

Reservations, applications, report batches, refunds and retries from several client threads
against the platform replaying round 1 (one uvicorn worker on loopback, SQLite by default),
for ``--duration`` seconds; see ``simulator/loadtest/soak.py``. The files go to
``reports/soak-bench-<time>/``; the exit status is 1 if anything broke.

Run: ``python benchmarks/bench_soak.py [--duration 60] [--workers 4] [--subprocess]
[--db URL]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from mynahil.simulator.loadtest.soak import SoakConfig, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in --out)")
    parser.add_argument("--subprocess", action="store_true", help="serve in a child process")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path("reports") / f"soak-bench-{datetime.now():%Y%m%d-%H%M%S}"

    def progress(elapsed: float, row: dict[str, object]) -> None:
        if int(elapsed) % 10 == 0:
            print(f"{elapsed:6.0f} s  {row['ops']} ops/s  p99 {row['p99_ms']} ms  "
                  f"RSS {row['rss_mb']} MB", file=sys.stderr)  # fmt: skip

    result = run_soak(
        SoakConfig(args.duration, out, db_url=args.db, subprocess=args.subprocess,
                   workers=args.workers),
        progress,
    )  # fmt: skip
    figures = result.figures
    print(f"report: {out / 'report.md'}")
    print(
        json.dumps(
            {
                "mode": figures["mode"],
                "duration_s": figures["duration_s"],
                "workers": figures["workers"],
                "operations": figures["operations"],
                "throughput_per_s": figures["throughput_per_s"],
                "errors": figures["errors"],
                "p99_ms": {op: f["p99_ms"] for op, f in figures["per_operation"].items()},
                "rss_start_mb": figures["memory"]["rss_start_mb"],
                "rss_end_mb": figures["memory"]["rss_end_mb"],
                "memory_drift_mb_per_min": figures["memory"]["drift_mb_per_min"],
                "sound": result.ok,
            }
        )
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
