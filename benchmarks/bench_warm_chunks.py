"""Do a store's alternating chunks start cold? The evidence for ``bench_mykey.py``'s warm-ups.

``bench_mykey.py`` measures PostgreSQL per SQLite (in process) in alternating chunks, each
store idle while the other is timed. This script times, on one pair of platforms, the same
alternation two ways interleaved pair by pair: *cold* (each timed chunk straight after the
other store's, as ``bench_mykey`` did until the fifteenth session) and *warm* (each timed
chunk after ``--warm`` untimed issuances to the same store). It also times one long run on
each store from idle and prints its rate in tenths: how many issuances each store takes to
reach its steady rate.

PostgreSQL runs with ``--clients`` threads (4, as ``bench_mykey``'s better figure), SQLite
with one.

Run: ``python benchmarks/bench_warm_chunks.py [--pairs N] [--chunk N] [--warm N] [--long N]
[--plot FILE.png]``; ``--plot`` draws the long runs' tenths and every chunk's rate.
The last line is JSON: per way, the median of the pairs' ratios (PostgreSQL per SQLite) and of
each store's chunk rates; per store, the long run's rate in each tenth.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_mykey import CLIENTS, Proof, card_proofs, in_process_rate, make_cards
from scratch_postgres import POSTGRES, scratch_schema

from mynahil.reference_impl.jlis import KeyPool
from mynahil.reference_impl.platform import ReferencePlatform, build_platform

WAYS = ("cold", "warm")


def tenths(
    platform: ReferencePlatform, proofs: list[Proof], clients: int
) -> list[tuple[float, int]]:
    """Each tenth of one run of ``proofs`` (by completion time): the seconds from the run's
    start to its end, and its issuances per second."""
    done: list[float] = []

    def issue(share: list[Proof]) -> None:
        for challenge_id, certificate, signature in share:
            platform.mykey.issue(challenge_id, certificate, signature)
            done.append(time.perf_counter())  # list.append is atomic under the GIL

    gc.collect()
    gc.freeze()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as threads:
        list(threads.map(issue, [proofs[i::clients] for i in range(clients)]))
    done.sort()
    tenth = len(done) // 10
    edges = [start] + [done[(i + 1) * tenth - 1] for i in range(10)]
    return [(edges[i + 1] - start, round(tenth / (edges[i + 1] - edges[i]))) for i in range(10)]


def plot(
    path: Path,
    rates: dict[str, dict[str, list[float]]],
    long_runs: dict[str, list[tuple[float, int]]],
    chunk: int,
) -> None:
    """Two panels: each store's long run from idle by tenths, and every chunk's rate, cold
    and warm."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    climb, chunks = figure.subplots(1, 2)
    for store, colour in (("sqlite", "tab:blue"), ("postgres", "tab:orange")):
        ends = [0.0] + [end for end, _ in long_runs[store]]
        climb.stairs([rate for _, rate in long_runs[store]], ends, color=colour, label=store)
        for column, way in enumerate(WAYS):
            x = column + (0.1 if store == "postgres" else -0.1)
            values = rates[way][store]
            label = store if column == 0 else None
            chunks.scatter([x] * len(values), values, color=colour, alpha=0.6, s=18, label=label)
            chunks.hlines(statistics.median(values), x - 0.08, x + 0.08, color=colour)
    climb.set(title="One run from 1 s idle, by tenths", xlabel="seconds", ylabel="issuances/s")
    climb.set_ylim(bottom=0)
    climb.legend()
    chunks.set(
        title=f"Alternating chunks of {chunk}: each chunk, and the median",
        xticks=range(len(WAYS)), xticklabels=["after the other store", "after a warm-up"],
        ylabel="issuances/s",
    )  # fmt: skip
    chunks.set_ylim(bottom=0)
    chunks.legend()
    figure.savefig(path, dpi=110)


def _summary(way: str, rates: dict[str, list[float]]) -> dict[str, Any]:
    """One way's figures, printed: the median ratio and quartiles, each store's median rate."""
    quartiles = statistics.quantiles(rates["ratio"], n=4)
    figures: dict[str, Any] = {
        f"{way}_postgres_per_sqlite_median": round(statistics.median(rates["ratio"]), 3),
        f"{way}_postgres_per_sqlite_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)],
    }
    for store in ("sqlite", "postgres"):
        figures[f"{way}_{store}_median_per_s"] = round(statistics.median(rates[store]))
    print(
        f"{way}: PostgreSQL per SQLite median {figures[f'{way}_postgres_per_sqlite_median']}x "
        f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}); SQLite "
        f"{figures[f'{way}_sqlite_median_per_s']:,}/s, PostgreSQL "
        f"{figures[f'{way}_postgres_median_per_s']:,}/s"
    )
    return figures


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="pairs of each way")
    parser.add_argument("--chunk", type=int, default=200, help="timed issuances a chunk")
    parser.add_argument("--warm", type=int, default=200, help="untimed before a warm chunk")
    parser.add_argument("--long", type=int, default=2000, help="issuances of each long run")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="PostgreSQL's threads")
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--plot", type=Path, help="draw both measurements to this PNG")
    args = parser.parse_args()
    if args.pairs < 2 or min(args.chunk, args.long // 10) < 1 or args.warm < 0:
        parser.error(
            "--pairs must be at least 2, --chunk and --long/10 at least 1, --warm not below 0"
        )
    if args.plot is not None and not args.plot.parent.is_dir():
        parser.error(f"--plot: no folder {args.plot.parent} to write it in")
    return args


def main() -> None:
    args = _options()
    with tempfile.TemporaryDirectory() as tmp, scratch_schema(args.postgres) as pg_url:
        if pg_url is None:
            raise SystemExit(f"no PostgreSQL at {args.postgres}")
        pool = KeyPool.generate(64, seed=5)
        lite = build_platform(f"sqlite:///{tmp}/bench.db", Path(tmp) / "jlis-a")
        pg = build_platform(pg_url, Path(tmp) / "jlis-b")
        try:
            clients = {"sqlite": 1, "postgres": args.clients}
            platforms = {"sqlite": lite, "postgres": pg}
            need = 100 + args.pairs * (2 * args.chunk + args.warm) + args.long
            cards = {name: make_cards(p, need, pool) for name, p in platforms.items()}
            # The challenges last minutes: asked for once every card is made.
            proofs = {name: card_proofs(p, cards[name]) for name, p in platforms.items()}
            for name, platform in platforms.items():  # each statement prepared, each pool full
                in_process_rate(platform, proofs[name][:100], clients[name])
            used = dict.fromkeys(platforms, 100)

            def run(store: str, count: int) -> float:
                share = proofs[store][used[store] : used[store] + count]
                used[store] += count
                return in_process_rate(platforms[store], share, clients[store])

            rates: dict[str, dict[str, list[float]]] = {
                way: {"sqlite": [], "postgres": [], "ratio": []} for way in WAYS
            }
            for pair in range(args.pairs):
                # Swapped every pair: which way goes first, and which store within it.
                for way in WAYS if pair % 2 == 0 else WAYS[::-1]:
                    turn: dict[str, float] = {}
                    for store in (
                        ("sqlite", "postgres") if pair % 2 == 0 else ("postgres", "sqlite")
                    ):
                        if way == "warm" and args.warm:
                            run(store, args.warm)
                        turn[store] = run(store, args.chunk)
                    rates[way]["sqlite"].append(turn["sqlite"])
                    rates[way]["postgres"].append(turn["postgres"])
                    rates[way]["ratio"].append(turn["postgres"] / turn["sqlite"])
            figures: dict[str, Any] = {
                "pairs": args.pairs, "chunk": args.chunk, "warm": args.warm,
                "postgres_clients": args.clients,
            }  # fmt: skip
            for way in WAYS:
                figures.update(_summary(way, rates[way]))
            long_runs = {}
            for store, platform in platforms.items():
                time.sleep(1.0)  # from idle, as a turn starts
                share = proofs[store][used[store] : used[store] + args.long]
                long_runs[store] = tenths(platform, share, clients[store])
                figures[f"{store}_long_run_tenths_per_s"] = [rate for _, rate in long_runs[store]]
                print(f"{store}, one run of {args.long} from idle, by tenths: "
                      f"{figures[f'{store}_long_run_tenths_per_s']}")  # fmt: skip
            if args.plot is not None:
                plot(args.plot, rates, long_runs, args.chunk)
                print(f"plotted: {args.plot}")
        finally:
            lite.close()
            pg.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
