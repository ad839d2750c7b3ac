"""Simulated holders per second: the cohort model against a naive one-process-per-person model.

Both simulate the same arrivals (the cohort model's own hourly arrivals for one region over the
launch week): the naive model starts one SimPy process per holder, who reads the card with
retries, queues at a pooled ``simpy.Resource`` for procedure spots (leaving when patience runs
out) and types the PIN. Then the full round-1 run (2020-07-01..2021-12-31, nationwide) is timed
on local processes, with its peak memory.

Run: ``python benchmarks/bench_simulator.py [--quick] [--workers N]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from collections.abc import Generator
from pathlib import Path

import numpy as np
import simpy

from simulator import load_scenario, run
from simulator.engine import open_executor
from simulator.metrics import summarize
from simulator.region import RegionResult, simulate_region
from simulator.scenario import CHANNELS, Scenario

ROOT = Path(__file__).resolve().parent.parent


def naive_model(scenario: Scenario, region: str, arrivals: np.ndarray, seed: int) -> int:
    """One SimPy process per holder; returns how many holders were simulated."""
    env = simpy.Environment()
    rng = random.Random(seed)
    share = scenario.population.region_share(region)
    spots: dict[str, simpy.Resource] = {}
    for channel in scenario.channels:
        if channel.station is not None:
            count = channel.station.spots * share or scenario.population.municipalities_in(region)
            capacity = max(1, round(count * channel.station.servers_per_spot))
            spots[channel.name] = simpy.Resource(env, capacity=capacity)
    pin = scenario.pin

    def holder(at: float, name: str) -> Generator[simpy.Event, object, None]:
        channel = scenario.channel(name)
        yield env.timeout(at)
        for _ in range(channel.read_retries + 1):
            if rng.random() >= channel.read_failure:
                break
        else:
            return
        station = channel.station
        if station is not None:
            with spots[name].request() as request:
                patience = rng.expovariate(60 / station.patience_minutes)
                got = yield request | env.timeout(patience)
                if request not in got:  # type: ignore[operator]
                    return
                yield env.timeout(rng.expovariate(60 / station.service_minutes))
        forgot = rng.random() < pin.forgot_share
        wrong = pin.forgot_wrong_probability if forgot else pin.wrong_probability
        for _ in range(pin.entries_per_application):
            streak = 0
            while rng.random() < wrong:
                streak += 1
                if streak == pin.lockout_after:
                    return

    people = 0
    for hour, row in enumerate(arrivals):
        for c, count in enumerate(row):
            for _ in range(int(count)):
                env.process(holder(hour + rng.random(), CHANNELS[c]))
                people += 1
    env.run()
    return people


def measure_rates(scenario: Scenario, region: str) -> dict[str, float]:
    start = time.perf_counter()
    result: RegionResult = simulate_region(scenario, region, seed=1)
    model_seconds = time.perf_counter() - start
    people = int(result.arrivals.sum())
    start = time.perf_counter()
    naive_people = naive_model(scenario, region, result.arrivals, seed=1)
    naive_seconds = time.perf_counter() - start
    return {
        "subset_people": people,
        "model_people_per_s": people / model_seconds,
        "naive_people_per_s": naive_people / naive_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller subset, no round-1 run")
    parser.add_argument("--workers", type=int, default=2, help="processes for the round-1 run")
    args = parser.parse_args()
    week = load_scenario(ROOT / "scenarios" / "launch-week.toml")
    region = "chugoku" if args.quick else "kinki"
    rates = measure_rates(week, region)
    speedup = rates["model_people_per_s"] / rates["naive_people_per_s"]
    figures: dict[str, object] = {
        "subset": f"launch week, {region}",
        "subset_people": rates["subset_people"],
        "model_people_per_s": round(rates["model_people_per_s"]),
        "naive_people_per_s": round(rates["naive_people_per_s"]),
        "speedup": round(speedup, 1),
    }
    print(
        f"launch week, {region}: {rates['subset_people']:,} holders; cohort model "
        f"{rates['model_people_per_s']:,.0f}/s, naive SimPy {rates['naive_people_per_s']:,.0f}/s "
        f"({speedup:.1f}x)"
    )
    if not args.quick:
        round1 = load_scenario(ROOT / "scenarios" / "round1.toml")
        start = time.perf_counter()
        with open_executor("process", args.workers) as pool:
            result = run(round1, seed=1, executor=pool)
        summary = summarize(result)
        seconds = time.perf_counter() - start
        people = summary["metrics"]["arrivals"]["mean"]
        rss_mb = (
            max(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            )
            / 1024
        )  # ru_maxrss is in KiB on Linux
        figures.update(
            round1_seconds=round(seconds, 1),
            round1_people=round(people),
            round1_people_per_s=round(people / seconds),
            round1_workers=args.workers,
            round1_peak_rss_mb=round(rss_mb),
        )
        print(
            f"round 1 nationwide: {people:,.0f} holders in {seconds:.1f} s on {args.workers} "
            f"processes; peak RSS {rss_mb:,.0f} MB"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
