"""The load replay against a local platform: launch day of round 1, compressed into ~40 s.

``mynahil serve`` (one uvicorn worker, SQLite, its CA in a temp folder, replaying 2020-07-01)
runs in its own process; ``mynahil loadtest`` (Locust in-process, one load process) replays
24 hours of ``scenarios/launch-week.toml`` from 2020-07-01 00:00 at x2160 (40 s), scaled to
``--max-users`` users, each bringing one holder per second: reserve a MyKey ID with a card
issued from the platform's CA, then log in with it and show the ID.

Run: ``python benchmarks/bench_loadtest.py [--max-users 40] [--seconds 40]``. Prints per-stage
rps and p50/p95/p99; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mynahil.reference_impl.platform import serve_process

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "launch-week.toml"


@contextmanager
def server(folder: Path) -> Iterator[str]:
    with serve_process(f"sqlite:///{folder}/bench.db", folder / "jlis", as_of="2020-07-01") as (
        url,
        _process,
    ):
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-users", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=40, help="run length (24 h compressed)")
    args = parser.parse_args()
    compress = 24 * 3600 / args.seconds
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as url:
        out = Path(tmp) / "report"
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "mynahil", "loadtest", str(SCENARIO), "--platform", url,
             "--ca", str(Path(tmp) / "jlis"), "--start", "2020-07-01T00:00", "--hours", "24",
             "--compress", f"{compress:g}", "--max-users", str(args.max_users), "--out", str(out)],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if not (out / "stats.json").exists():
            raise SystemExit(f"the load test wrote nothing: {result.stderr}")
        stats = json.loads((out / "stats.json").read_text())
    figures: dict[str, object] = {
        "max_users": args.max_users,
        "run_s": stats["plan"]["duration_s"],
        "wall_s": round(wall, 1),
        "exit_code": result.returncode,
        "cards_issued": stats["cards_issued"],
        "total_requests": stats["total"]["requests"],
        "total_failures": stats["total"]["failures"],
        "total_rps": round(stats["total"]["rps"], 1),
    }
    peak = max((row["rps"] for row in stats["timeline"]), default=0)
    figures["peak_rps_1s"] = peak
    print(
        f"{stats['plan']['duration_s']} s run, at most {args.max_users} users, "
        f"{stats['cards_issued']:,} cards; wall {wall:.1f} s (serve start, issuance, run)"
    )
    for name, row in [*stats["stages"].items(), ("total", stats["total"])]:
        print(
            f"{name:>8}: {row['requests']:>6,} requests, {row['failures']} failed, "
            f"{row['rps']:6.1f}/s, p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, "
            f"p99 {row['p99_ms']:.0f} ms"
        )
        if name != "total":
            for key in ("rps", "p95_ms", "p99_ms"):
                figures[f"{name}_{key}"] = round(row[key], 1)
    print(f"peak 1-s throughput: {peak} requests/s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
