"""MyKey issuance (or point reports) on SQLite (or PostgreSQL), this checkout against an
earlier one, in interleaved chunks.

On a shared machine whose speed drifts by a third within minutes, two whole benchmark runs
one after the other say little (``bench_mykey.py``'s rounds gave ratios from 0.70x to 0.98x
for the same two commits). Here each checkout runs in a worker process of its own, with its
platform, cards and server set up beforehand, and the two take turns: a chunk of issuances
by one, then a chunk by the other, the order swapped every pair so neither always goes first.
Each pair's ratio (this checkout's rate per the earlier one's) is measured within a few
seconds, and the median of the pairs is the figure.

In process, each chunk is ``--chunk`` issuances with one client (``--clients N``: N threads
issuing at once, sharing the chunk); over HTTP (``--http``), the
same through ``mynahil serve`` (one worker) in its own process, four keep-alive
``http.client`` connections sending back to back. Both checkouts are driven by the same code
(this file), importing each checkout's own package: ``mynahil.reference_impl`` or, before
the package was renamed, the top-level ``reference_impl``. With ``--postgres [URL]`` each
checkout's platform runs on a throw-away schema of its own in that PostgreSQL database
(``benchmarks/scratch_postgres.py``) instead of a SQLite file; ``--sqlite-options
synchronous=full`` adds that query to the SQLite file's URL (every commit synced).

With ``--points`` a chunk is ``--chunk`` reports (5,000 by default) in batches of 1,000,
decided as ``bench_points.py`` decides them: each checkout's own ``bench_points`` sets up
its operator and 5,000 people and makes the batches (the same seeds for both); over HTTP
each batch is signed by the operator and sent to the checkout's own in-process server
(``serving``), as ``bench_points.py`` does. After the run the ledger's invariants are checked.

With ``--instructions`` each worker runs under valgrind's callgrind and a chunk is measured
in instructions instead of seconds (in process only): the work the process did, Python and
the C it calls (SQLite's included, PostgreSQL's server not), counted between two markers
around the chunk. The same chunk counts the same to ~0.1% whatever else the machine runs,
where chunks' timings here spread by ±15%, so a few chunks settle a change of a few percent;
it does not see waits (a disk's sync, a server's answer), which timings do. The figures are
then operations per million instructions, and the ratios read as the timed ones do (above 1:
this checkout does less work). Under callgrind everything runs ~50x slower: use small
``--chunks``, and ``--chunk`` 50 or so for issuances.

Run: ``git worktree add /tmp/before 9cb7ee5``, then
``python benchmarks/bench_interleaved.py --before /tmp/before [--chunks 15] [--chunk N]
[--http] [--postgres [URL]] [--points] [--clients N] [--sqlite-options Q]
[--instructions]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import base64
import gc
import http.client
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from scratch_postgres import POSTGRES

CLIENTS = 4
WARM_UP = 50
"""Issuances each way (in process, over HTTP) before the first chunk: caches filled,
statements compiled, the server's first requests paid (with ``--points``, one chunk)."""
REPORT_BATCH = 1000
REPORT_PEOPLE = 5000


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


Runner = Callable[[], float]


def _issuances(
    tree: Path,
    db_url: str,
    folder: Path,
    stack: ExitStack,
    options: argparse.Namespace,
) -> tuple[Runner, Runner, Callable[[], str]]:
    """Issuance chunks: the checkout's platform, its cards, and (over HTTP) its server."""
    import bench_mykey

    chunks, chunk, http, clients = options.chunks, options.chunk, options.http, options.clients
    from_tree = _platform_module(tree)
    jlis = importlib.import_module(from_tree.__name__.rsplit(".", 1)[0] + ".jlis")
    platform = from_tree.build_platform(db_url, folder)
    stack.callback(platform.close)
    ways = 2 if http else 1
    cards = bench_mykey.make_cards(
        platform, ways * (WARM_UP + chunks * chunk), jlis.KeyPool.generate(64, seed=5)
    )
    proofs = bench_mykey.card_proofs(platform, cards[: WARM_UP + chunks * chunk])
    for proof in proofs[:WARM_UP]:
        platform.mykey.issue(*proof)
    inproc = iter(proofs[WARM_UP + i * chunk : WARM_UP + (i + 1) * chunk] for i in range(chunks))

    threads = stack.enter_context(ThreadPoolExecutor(clients))

    def issue(proofs: list[Any]) -> None:
        for proof in proofs:
            platform.mykey.issue(*proof)

    def in_process() -> float:
        share = next(inproc)
        start = time.perf_counter()
        if clients == 1:
            issue(share)
        else:
            list(threads.map(issue, [share[i::clients] for i in range(clients)]))
        return len(share) / (time.perf_counter() - start)

    def over_http() -> float:
        return _send_all(port, next(http_chunks))

    http_chunks: Any = iter(())
    port = 0
    if http:
        url, _process = stack.enter_context(from_tree.serve_process(db_url, folder))
        port = int(urlsplit(url).port or 0)
        bodies = [
            json.dumps(
                {
                    "challenge_id": c,
                    "certificate": base64.b64encode(cert).decode(),
                    "signature": base64.b64encode(sig).decode(),
                }
            ).encode()
            for c, cert, sig in bench_mykey.card_proofs(platform, cards[WARM_UP + chunks * chunk :])
        ]
        _send_all(port, bodies[:WARM_UP])
        http_chunks = iter(
            bodies[WARM_UP + i * chunk : WARM_UP + (i + 1) * chunk] for i in range(chunks)
        )

    def check() -> str:
        checked, problem = platform.store.verify_audit()
        if problem is not None:
            raise SystemExit(f"audit chain broken after the run: {problem}")
        return f"audited {checked}"

    return in_process, over_http, check


def _reports(
    db_url: str, folder: Path, stack: ExitStack, chunks: int, chunk: int, http: bool
) -> tuple[Runner, Runner, Callable[[], str]]:
    """Report chunks: the checkout's own ``bench_points`` sets up its platform, operator and
    people and makes the batches (the same seeds for both checkouts), in batches of
    ``REPORT_BATCH``; over HTTP the batches are signed and sent through its ``serving``."""
    # Whichever version the checkout has: its names are looked up, not checked here.
    bp: Any = importlib.import_module("bench_points")

    key = bp.Ed25519PrivateKey.generate()
    platform = bp.build_platform(db_url, folder, accounts=bp.LocalAccountCheck({}), as_of=bp.AS_OF)
    stack.callback(platform.close)
    platform.points.register_operator(
        bp.Operator(bp.OPERATOR, "Bench", bp.public_key_bytes(key)),
        [bp.PaymentService(bp.SERVICE, bp.OPERATOR, "Bench Pay")],
    )
    accounts = bp.populate(platform.store, REPORT_PEOPLE)
    per_chunk = max(1, chunk // REPORT_BATCH)
    total = (chunks + 1) * per_chunk * REPORT_BATCH  # one chunk's worth to warm up

    def chunked(tag: str) -> Iterator[list[Any]]:
        work = bp.batches(accounts, total, REPORT_BATCH, tag)
        return iter(work[i * per_chunk : (i + 1) * per_chunk] for i in range(chunks + 1))

    def timed(send: Callable[[Any], Sequence[Any]], batches: list[Any]) -> float:
        decided, start = 0, time.perf_counter()
        for batch in batches:
            decided += len(send(batch))
        return decided / (time.perf_counter() - start)

    def report(batch: Any) -> Sequence[Any]:
        decisions: Sequence[Any] = platform.points.report(bp.OPERATOR, batch)
        return decisions

    inproc = chunked("in")
    timed(report, next(inproc))
    http_chunks: Iterator[list[Any]] = iter(())
    client: Any = None
    if http:
        base = stack.enter_context(bp.serving(platform.app))
        client = bp.OperatorClient.connect(base, bp.Signer(bp.OPERATOR, key))
        http_chunks = chunked("http")
        timed(client.report, next(http_chunks))

    def check() -> str:
        problems = platform.points.violations()
        if problems:
            raise SystemExit(f"ledger invariants broken after the run: {problems[:3]}")
        return "ledger sound"

    return (
        lambda: timed(report, next(inproc)),
        lambda: timed(client.report, next(http_chunks)),
        check,
    )


def worker(tree: Path, options: argparse.Namespace) -> None:
    """Set up, say "ready", then answer each line of stdin ("inproc", "http") with the rate
    of the next chunk; "quit" checks the run (audit chain, ledger) and ends."""
    # The checkout's own bench_mykey, bench_points and package, not this file's neighbours
    # (but this file's scratch schemas, the same for both).
    sys.path[0] = str(tree / "benchmarks")
    sys.path.append(str(Path(__file__).resolve().parent))
    from scratch_postgres import scratch_schema

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        db_url = f"sqlite:///{tmp}/bench.db"
        if options.sqlite_options:
            db_url += f"?{options.sqlite_options}"
        if options.postgres is not None:
            schema_url = stack.enter_context(scratch_schema(options.postgres))
            if schema_url is None:
                raise SystemExit(f"PostgreSQL at {options.postgres} does not answer")
            db_url = schema_url
        folder = Path(tmp) / "jlis"
        if options.points:
            ways = _reports(db_url, folder, stack, options.chunks, options.chunk, options.http)
        else:
            ways = _issuances(tree, db_url, folder, stack, options)
        in_process, over_http, check = ways
        # The run's prepared cards or reports, and everything set up, out of the cyclic
        # collector's way: its full passes walked them, ~100 ms every ~10 report batches,
        # a cost of the harness holding its input, not of the platform.
        gc.collect()
        gc.freeze()
        print("ready", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "inproc" and options.instructions:
                os.getppid()  # callgrind zeroes its counts here (--zero-before)
                in_process()
                os.getpgrp()  # and writes them out here (--dump-before)
                print(0.0, flush=True)
            elif command == "inproc":
                print(in_process(), flush=True)
            elif command == "http":
                print(over_http(), flush=True)
            else:
                break
        print(check(), flush=True)


# --- the coordinator ------------------------------------------------------------------------


def instructions_in(dump: Path) -> int:
    """The instructions counted in one callgrind dump (its ``summary:`` or ``totals:`` line)."""
    found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"no instruction count in {dump}")
    return int(found.group(1))


class _Worker:
    def __init__(self, tree: Path, options: argparse.Namespace) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree),
                "--chunks", str(options.chunks), "--chunk", str(options.chunk)]  # fmt: skip
        if options.http:
            argv.append("--http")
        if options.points:
            argv.append("--points")
        if options.postgres is not None:
            argv += ["--postgres", options.postgres]
        argv += ["--clients", str(options.clients)]
        if options.sqlite_options:
            argv += ["--sqlite-options", options.sqlite_options]
        self.counts: Path | None = None
        self.chunks_run = 0
        if options.instructions:
            argv.append("--instructions")
            self.counts = Path(tempfile.mkdtemp(prefix="callgrind-")) / "counts"
            argv = [
                "valgrind", "--quiet", "--tool=callgrind", "--zero-before=os_getppid",
                "--dump-before=os_getpgrp", f"--callgrind-out-file={self.counts}", *argv,
            ]  # fmt: skip
        self.chunk: int = options.chunk
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
        """The next chunk's rate: per second, or (under callgrind) per million instructions."""
        assert self.process.stdin is not None
        self.process.stdin.write(way + "\n")
        self.process.stdin.flush()
        rate = float(self._line())
        if self.counts is None:
            return rate
        self.chunks_run += 1
        return self.chunk / (instructions_in(Path(f"{self.counts}.{self.chunks_run}")) / 1e6)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        print(f"  {self._line()}", file=sys.stderr)
        self.process.wait(timeout=60)


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of the earlier commit")
    parser.add_argument("--chunks", type=int, default=15, help="pairs of chunks, each way")
    parser.add_argument(
        "--chunk", type=int, default=None,
        help=f"issuances per chunk (300), or with --points reports ({5 * REPORT_BATCH:,})",
    )  # fmt: skip
    parser.add_argument(
        "--points", action="store_true",
        help=f"point reports (batches of {REPORT_BATCH:,}) instead of issuances",
    )  # fmt: skip
    parser.add_argument("--http", action="store_true", help="over HTTP as well")
    parser.add_argument("--clients", type=int, default=1, help="threads issuing at once in process")
    parser.add_argument(
        "--sqlite-options", default="", help="query for the SQLite URL, e.g. synchronous=full"
    )
    parser.add_argument(
        "--postgres", nargs="?", const=POSTGRES, metavar="URL",
        help=f"on PostgreSQL instead of SQLite (default URL: {POSTGRES})",
    )  # fmt: skip
    parser.add_argument(
        "--instructions", action="store_true",
        help="count each chunk's instructions under callgrind instead of timing it",
    )  # fmt: skip
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chunk is None:
        args.chunk = 5 * REPORT_BATCH if args.points else 300
    if args.chunks < 1 or args.chunk < 1 or args.clients < 1:
        parser.error("--chunks, --chunk and --clients: give positive numbers")
    if args.points and args.chunk % REPORT_BATCH:
        parser.error(f"--chunk: with --points, a multiple of {REPORT_BATCH:,} reports")
    if args.instructions and args.http:
        parser.error("--instructions counts in process only: drop --http")
    if args.worker is not None:
        return args
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    needed = "bench_points.py" if args.points else "bench_mykey.py"
    if args.before is None or not (args.before / "benchmarks" / needed).exists():
        parser.error("--before: give a checkout of the earlier commit (git worktree add …)")
    return args


def _summary(args: argparse.Namespace, rates: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """The run's figures: each way's medians, the median of the pairs' ratios and more."""
    store = "postgresql" if args.postgres is not None else "sqlite"
    what = "reports" if args.points else "issuances"
    unit = "per_million_instructions" if args.instructions else "per_s"
    figures: dict[str, Any] = {
        "what": what, "store": store, "chunks": args.chunks, "chunk": args.chunk,
        "inproc_clients": args.clients, "sqlite_options": args.sqlite_options,
        "measured": "instructions" if args.instructions else "time",
    }  # fmt: skip
    for way, sides in rates.items():
        ratios = sorted(a / b for a, b in zip(sides["after"], sides["before"], strict=True))
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        figures[f"{way}_before_median_{unit}"] = round(statistics.median(sides["before"]), 3)
        figures[f"{way}_after_median_{unit}"] = round(statistics.median(sides["after"]), 3)
        figures[f"{way}_ratio_median"] = round(statistics.median(ratios), 3)
        figures[f"{way}_ratio_quartiles"] = [round(quartiles[0], 3), round(quartiles[2], 3)]
        # Every chunk is the same size, so a side's rate over all its chunks is the harmonic
        # mean of its chunks' rates: the ratio of the totals counts a chunk that paid for a
        # rare, large cost (a checkpoint) in full, where the median of the pairs may skip it.
        totals = statistics.harmonic_mean(sides["after"]) / statistics.harmonic_mean(
            sides["before"]
        )
        figures[f"{way}_ratio_of_totals"] = round(totals, 3)
        print(
            f"{way}: after/before median {statistics.median(ratios):.3f}x "
            f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}, {len(ratios)} pairs); "
            f"all chunks together {totals:.3f}x"
        )
    return figures


def main() -> None:
    args = _options()
    if args.worker is not None:
        worker(args.worker.resolve(), args)
        return
    here = Path(__file__).resolve().parent.parent
    before = _Worker(args.before.resolve(), args)
    after = _Worker(here, args)
    ways = ["inproc", "http"] if args.http else ["inproc"]
    per, places = (" per million instructions", 3) if args.instructions else ("/s", 0)
    rates: dict[str, dict[str, list[float]]] = {w: {"before": [], "after": []} for w in ways}
    try:
        for i in range(args.chunks):
            for way in ways:
                pair = (before, after) if i % 2 == 0 else (after, before)
                for side in pair:
                    rate = side.run(way)
                    rates[way]["before" if side is before else "after"].append(rate)
                b, a = rates[way]["before"][-1], rates[way]["after"][-1]
                shown = f"before {b:,.{places}f}{per}, after {a:,.{places}f}{per}"
                print(f"pair {i + 1} {way}: {shown}, {a / b:.3f}x")
    finally:
        before.close()
        after.close()
    print(json.dumps(_summary(args, rates)))


if __name__ == "__main__":
    main()
