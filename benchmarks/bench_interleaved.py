"""MyKey issuance on SQLite (or PostgreSQL), this checkout against an earlier one, in
interleaved chunks.

On a shared machine whose speed drifts by a third within minutes, two whole benchmark runs
one after the other say little (``bench_mykey.py``'s rounds gave ratios from 0.70x to 0.98x
for the same two commits). Here each checkout runs in a worker process of its own, with its
platform, cards and server set up beforehand, and the two take turns: a chunk of issuances
by one, then a chunk by the other, the order swapped every pair so neither always goes first.
Each pair's ratio (this checkout's rate per the earlier one's) is measured within a few
seconds, and the median of the pairs is the figure.

In process, each chunk is ``--chunk`` issuances with one client; over HTTP (``--http``), the
same through ``mynahil serve`` (one worker) in its own process, four keep-alive
``http.client`` connections sending back to back. Both checkouts are driven by the same code
(this file), importing each checkout's own package: ``mynahil.reference_impl`` or, before
the package was renamed, the top-level ``reference_impl``. With ``--postgres [URL]`` each
checkout's platform runs on a throw-away schema of its own in that PostgreSQL database
(``benchmarks/scratch_postgres.py``) instead of a SQLite file.

Run: ``git worktree add /tmp/before 9cb7ee5``, then
``python benchmarks/bench_interleaved.py --before /tmp/before [--chunks 15] [--chunk 300]
[--http] [--postgres [URL]]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from scratch_postgres import POSTGRES

CLIENTS = 4
WARM_UP = 50
"""Issuances each way (in process, over HTTP) before the first chunk: caches filled,
statements compiled, the server's first requests paid."""


# --- the worker: one checkout's platform, driven one chunk at a time ------------------------


def _platform_module(tree: Path) -> Any:
    """The checkout's platform module, whichever name its package had then."""
    if (tree / "reference_impl").is_dir() and not (tree / "mynahil" / "reference_impl").exists():
        # By name, not by an import statement: this checkout's own code never uses that name.
        return importlib.import_module("reference_impl.platform")
    import mynahil.reference_impl.platform as new

    return new


def _send_all(port: int, bodies: list[bytes]) -> float:
    """The bodies over ``CLIENTS`` keep-alive connections at once; issuances per second."""

    def send(share: list[bytes]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for payload in share:
                connection.request(
                    "POST", "/v1/mykey/ids", payload, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                answer = response.read()
                if response.status != 201:
                    raise SystemExit(f"issuance failed: {response.status} {answer!r}")
        finally:
            connection.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(send, [bodies[i::CLIENTS] for i in range(CLIENTS)]))
    return len(bodies) / (time.perf_counter() - start)


def worker(tree: Path, chunks: int, chunk: int, over_http: bool, postgres: str | None) -> None:
    """Set up, say "ready", then answer each line of stdin ("inproc", "http") with the rate
    of the next chunk; "quit" checks the audit chain and ends."""
    # The checkout's own bench_mykey and package, not this file's neighbours (but this file's
    # scratch schemas, the same for both).
    sys.path[0] = str(tree / "benchmarks")
    sys.path.append(str(Path(__file__).resolve().parent))
    import bench_mykey
    from scratch_postgres import scratch_schema

    from_tree = _platform_module(tree)
    jlis = __import__(from_tree.__name__.rsplit(".", 1)[0] + ".jlis", fromlist=["KeyPool"])
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        db_url = f"sqlite:///{tmp}/bench.db"
        if postgres is not None:
            schema_url = stack.enter_context(scratch_schema(postgres))
            if schema_url is None:
                raise SystemExit(f"PostgreSQL at {postgres} does not answer")
            db_url = schema_url
        platform = from_tree.build_platform(db_url, Path(tmp) / "jlis")
        stack.callback(platform.close)
        ways = 2 if over_http else 1
        cards = bench_mykey.make_cards(
            platform, ways * (WARM_UP + chunks * chunk), jlis.KeyPool.generate(64, seed=5)
        )
        proofs = bench_mykey.card_proofs(platform, cards[: WARM_UP + chunks * chunk])
        for proof in proofs[:WARM_UP]:
            platform.mykey.issue(*proof)
        inproc = iter(
            proofs[WARM_UP + i * chunk : WARM_UP + (i + 1) * chunk] for i in range(chunks)
        )
        http_chunks: Any = iter(())
        port = 0
        if over_http:
            url, _process = stack.enter_context(from_tree.serve_process(db_url, Path(tmp) / "jlis"))
            port = int(urlsplit(url).port or 0)
            bodies = [
                json.dumps(
                    {
                        "challenge_id": c,
                        "certificate": base64.b64encode(cert).decode(),
                        "signature": base64.b64encode(sig).decode(),
                    }
                ).encode()
                for c, cert, sig in bench_mykey.card_proofs(
                    platform, cards[WARM_UP + chunks * chunk :]
                )
            ]
            _send_all(port, bodies[:WARM_UP])
            http_chunks = iter(
                bodies[WARM_UP + i * chunk : WARM_UP + (i + 1) * chunk] for i in range(chunks)
            )
        print("ready", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "inproc":
                share = next(inproc)
                start = time.perf_counter()
                for proof in share:
                    platform.mykey.issue(*proof)
                print(len(share) / (time.perf_counter() - start), flush=True)
            elif command == "http":
                print(_send_all(port, next(http_chunks)), flush=True)
            else:
                break
        checked, problem = platform.store.verify_audit()
        if problem is not None:
            raise SystemExit(f"audit chain broken after the run: {problem}")
        print(f"audited {checked}", flush=True)


# --- the coordinator ------------------------------------------------------------------------


class _Worker:
    def __init__(
        self, tree: Path, chunks: int, chunk: int, over_http: bool, postgres: str | None
    ) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree),
                "--chunks", str(chunks), "--chunk", str(chunk)]  # fmt: skip
        if over_http:
            argv.append("--http")
        if postgres is not None:
            argv += ["--postgres", postgres]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.process = subprocess.Popen(
            argv, cwd=tree / "benchmarks", env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        self._expect("ready")

    def _line(self) -> str:
        out: IO[str] | None = self.process.stdout
        assert out is not None
        line = out.readline()
        if not line:
            raise SystemExit(f"a worker ended early (exit status {self.process.wait()})")
        return line.strip()

    def _expect(self, word: str) -> None:
        while (line := self._line()) != word:
            if line:  # the cards' progress bar draws on stdout too
                print(f"  worker: {line}", file=sys.stderr)

    def run(self, way: str) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(way + "\n")
        self.process.stdin.flush()
        return float(self._line())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        print(f"  {self._line()}", file=sys.stderr)
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of the earlier commit")
    parser.add_argument("--chunks", type=int, default=15, help="pairs of chunks, each way")
    parser.add_argument("--chunk", type=int, default=300, help="issuances per chunk")
    parser.add_argument("--http", action="store_true", help="over HTTP as well")
    parser.add_argument(
        "--postgres", nargs="?", const=POSTGRES, metavar="URL",
        help=f"on PostgreSQL instead of SQLite (default URL: {POSTGRES})",
    )  # fmt: skip
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker.resolve(), args.chunks, args.chunk, args.http, args.postgres)
        return
    if args.before is None or not (args.before / "benchmarks" / "bench_mykey.py").exists():
        parser.error("--before: give a checkout of the earlier commit (git worktree add …)")
    here = Path(__file__).resolve().parent.parent
    before = _Worker(args.before.resolve(), args.chunks, args.chunk, args.http, args.postgres)
    after = _Worker(here, args.chunks, args.chunk, args.http, args.postgres)
    ways = ["inproc", "http"] if args.http else ["inproc"]
    rates: dict[str, dict[str, list[float]]] = {w: {"before": [], "after": []} for w in ways}
    try:
        for i in range(args.chunks):
            for way in ways:
                pair = (before, after) if i % 2 == 0 else (after, before)
                for side in pair:
                    rate = side.run(way)
                    rates[way]["before" if side is before else "after"].append(rate)
                b, a = rates[way]["before"][-1], rates[way]["after"][-1]
                print(f"pair {i + 1} {way}: before {b:,.0f}/s, after {a:,.0f}/s, {a / b:.2f}x")
    finally:
        before.close()
        after.close()
    store = "postgresql" if args.postgres is not None else "sqlite"
    figures: dict[str, Any] = {"store": store, "chunks": args.chunks, "chunk": args.chunk}
    for way, sides in rates.items():
        ratios = sorted(a / b for a, b in zip(sides["after"], sides["before"], strict=True))
        quartiles = statistics.quantiles(ratios, n=4)
        figures[f"{way}_before_median_per_s"] = round(statistics.median(sides["before"]))
        figures[f"{way}_after_median_per_s"] = round(statistics.median(sides["after"]))
        figures[f"{way}_ratio_median"] = round(statistics.median(ratios), 3)
        figures[f"{way}_ratio_quartiles"] = [round(quartiles[0], 3), round(quartiles[2], 3)]
        print(
            f"{way}: after/before median {statistics.median(ratios):.3f}x "
            f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}, {len(ratios)} pairs)"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
