"""Simulated holders per second: the cohort model against a naive one-process-per-person model.

The operator load likewise: reports decided per second by the intake model against a naive
SimPy model with one process per report (same arrivals: the busiest hours of 2020-09-01, from
the spending of the sign-up model's applications), and the full round-1 operator load (every
applicant's spending to the end of 2021) with its wall time and peak traced memory.

Both simulate the same arrivals (the cohort model's own hourly arrivals for one region over the
launch week): the naive model starts one SimPy process per holder, who reads the card with
retries, queues at a pooled ``simpy.Resource`` for procedure spots (leaving when patience runs
out) and types the PIN. Then the full round-1 and round-2 runs (nationwide) are timed on local
processes, with their peak memory and their error at every published row (round 1: fit rows
within 10%, holdout rows within 20%), and ``mynahil calibrate``'s fit of round 1 is timed.
Each model's side of a speed-up is the median of ``MODEL_REPEATS`` timings after an untimed
run; the naive side, seconds long, is timed once.

Run: ``python benchmarks/bench_simulator.py [--quick] [--workers N]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TypeVar

import numpy as np
import simpy

from mynahil.simulator import load_scenario, run
from mynahil.simulator.calibration import (
    CalibrationRow,
    calibrate,
    calibration_check,
    measure_shares,
    published_for,
)
from mynahil.simulator.engine import open_executor
from mynahil.simulator.metrics import summarize
from mynahil.simulator.operator_model import OperatorModel
from mynahil.simulator.operators.ingestion import IngestionLoad, simulate_ingestion
from mynahil.simulator.operators.run import prepare_load, simulate_operators
from mynahil.simulator.region import RegionResult, simulate_region
from mynahil.simulator.scenario import CHANNELS, Scenario

ROOT = Path(__file__).resolve().parent.parent
MODEL_REPEATS = 9
"""Timings of each model's side (tens of milliseconds for the cohort model, about one for the
intake model), after one untimed run: one cold timing of so short a run once read 42x where
the next two read 77x and 83x."""

T = TypeVar("T")


def median_seconds(work: Callable[[], T], repeats: int = MODEL_REPEATS) -> tuple[T, float]:
    """``work()``'s result and the median of ``repeats`` timings of it, after one untimed
    run (first-call costs: imports, caches, numpy's set-up) that a long run would not see."""
    result = work()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


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
    result: RegionResult
    result, model_seconds = median_seconds(lambda: simulate_region(scenario, region, seed=1))
    people = int(result.arrivals.sum())
    start = time.perf_counter()
    naive_people = naive_model(scenario, region, result.arrivals, seed=1)
    naive_seconds = time.perf_counter() - start
    return {
        "subset_people": people,
        "model_people_per_s": people / model_seconds,
        "naive_people_per_s": naive_people / naive_seconds,
    }


def naive_operators(model: OperatorModel, reports: np.ndarray, seed: int) -> int:
    """One SimPy process per report: it arrives uniformly in its hour, takes a worker for its
    request's cost (a real-time report is a request of its own; a batch report its share of
    a full batch) and is done. Returns how many reports were simulated."""
    env = simpy.Environment()
    rng = random.Random(seed)
    ing = model.ingestion
    workers = simpy.Resource(env, capacity=ing.workers)
    costs = []
    for _, kind, _ in model.services():
        size = 1 if kind.reporting == "realtime" else kind.batch_size
        costs.append((ing.request_overhead_ms / size + ing.per_report_ms) / 1000)

    def report(at: float, cost: float) -> Generator[simpy.Event, object, None]:
        yield env.timeout(at)
        with workers.request() as request:
            yield request
            yield env.timeout(cost)

    count = 0
    for s, row in enumerate(reports):
        for hour, n in enumerate(row):
            for _ in range(int(n)):
                env.process(report((hour + rng.random()) * 3600, costs[s]))
                count += 1
    env.run()
    return count


def operator_rates(applications: np.ndarray, scenario: Scenario, hours: slice) -> dict[str, float]:
    """The intake model and the naive one on the same reports (the hours given)."""
    assert scenario.operators is not None
    _, load, _ = prepare_load(scenario, applications, seed=1)
    window = IngestionLoad(
        load.start, load.reports[:, hours], load.applications[:, hours] * 0,
        load.settlements[:, hours] * 0,
    )  # fmt: skip
    operators = scenario.operators
    result, model_seconds = median_seconds(
        lambda: simulate_ingestion(operators, window, seed=1, outages=[])
    )
    start = time.perf_counter()
    naive = naive_operators(operators, window.reports, seed=1)
    naive_seconds = time.perf_counter() - start
    reports = float(result.reports.sum())
    return {
        "operator_subset_reports": reports,
        "operator_model_reports_per_s": reports / model_seconds,
        "operator_naive_reports_per_s": naive / naive_seconds,
    }


def operator_figures(quick: bool) -> dict[str, object]:
    """Reports/s against the naive model (busiest hours), and the full round-1 operator load."""
    scenario = load_scenario(ROOT / "scenarios" / "round1.toml")
    if quick:
        scenario = replace(scenario, run=replace(scenario.run, end=date(2020, 9, 2),
                                                 regions=("chugoku",)))  # fmt: skip
    with open_executor("process", 2) as pool:
        signup = run(scenario, seed=1, executor=pool)
    applications = signup.replications[0].applications
    first = (date(2020, 9, 1) - scenario.run.start).days * 24
    hours = slice(first + 12, first + (13 if quick else 14))
    rates = operator_rates(applications, scenario, hours)
    speedup = rates["operator_model_reports_per_s"] / rates["operator_naive_reports_per_s"]
    print(
        f"operator intake, 2020-09-01 {hours.stop - hours.start} h: "
        f"{rates['operator_subset_reports']:,.0f} reports; model "
        f"{rates['operator_model_reports_per_s']:,.0f}/s, naive SimPy "
        f"{rates['operator_naive_reports_per_s']:,.0f}/s ({speedup:.1f}x)"
    )
    tracemalloc.start()
    start = time.perf_counter()
    result = simulate_operators(scenario, applications, seed=1)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reports = float(result.ingestion.reports.sum())
    print(
        f"operator load of {scenario.name} ({scenario.run.start}..{scenario.run.end}): "
        f"{reports:,.0f} reports in {seconds:.1f} s; peak traced memory {peak / 2**20:,.0f} MB"
    )
    return {
        "operator_subset_reports": round(rates["operator_subset_reports"]),
        "operator_model_reports_per_s": round(rates["operator_model_reports_per_s"]),
        "operator_naive_reports_per_s": round(rates["operator_naive_reports_per_s"]),
        "operator_speedup": round(speedup, 1),
        "operator_full_reports": round(reports),
        "operator_full_seconds": round(seconds, 1),
        "operator_full_peak_mb": round(peak / 2**20),
    }


def _rss_mb() -> float:
    return (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024
    )  # ru_maxrss is in KiB on Linux


def _rows(rows: list[CalibrationRow]) -> list[dict[str, object]]:
    return [
        {"date": r.period, "published": r.published, "simulated": r.simulated,
         "error": None if r.error is None else round(r.error, 4), "role": r.role}
        for r in rows
    ]  # fmt: skip


def full_run(name: str, workers: int) -> dict[str, object]:
    """The whole round nationwide: wall time, memory, and its error at every published row."""
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    start = time.perf_counter()
    with open_executor("process", workers) as pool:
        result = run(scenario, seed=1, executor=pool)
    summary = summarize(result)
    seconds = time.perf_counter() - start
    people = summary["metrics"]["arrivals"]["mean"]
    rss_mb = _rss_mb()
    rows = calibration_check(summary, *published_for(scenario), measures=measure_shares(scenario))
    fit = [abs(r.error) for r in rows if r.role == "fit" and r.error is not None]
    holdout = [abs(r.error) for r in rows if r.role == "holdout" and r.error is not None]
    print(
        f"{name} nationwide: {people:,.0f} holders in {seconds:.1f} s on {workers} processes; "
        f"peak RSS {rss_mb:,.0f} MB; worst fit row {max(fit, default=0):.1%}, worst holdout "
        f"row {max(holdout, default=0):.1%}"
    )
    return {
        f"{name}_seconds": round(seconds, 1),
        f"{name}_people": round(people),
        f"{name}_people_per_s": round(people / seconds),
        f"{name}_workers": workers,
        f"{name}_peak_rss_mb": round(rss_mb),
        f"{name}_rows": _rows(rows),
        f"{name}_worst_fit_error": round(max(fit, default=0), 4),
        f"{name}_worst_holdout_error": round(max(holdout, default=0), 4),
        # The bar for round 1: every fit row within 10%, every holdout row within 20%.
        f"{name}_fidelity_met": all(r.ok for r in rows if r.simulated is not None),
    }


def calibration_figures() -> dict[str, object]:
    """``mynahil calibrate``'s fit of round 1 (time) and round 2's prediction at every row."""
    round1 = load_scenario(ROOT / "scenarios" / "round1.toml")
    fitted = calibrate(round1)
    round2 = calibrate(load_scenario(ROOT / "scenarios" / "round2.toml"))
    print(
        f"calibration of round 1: {fitted.seconds:.1f} s, {fitted.evaluations} model "
        f"evaluations; worst fit row {fitted.worst('fit') or 0:.1%}, worst holdout row "
        f"{fitted.worst('holdout') or 0:.1%}"
    )
    for row in round2.rows:
        print(f"  round 2 {row.row.day} {row.row.kind}: {row.error:+.1%} ({row.role})")
    return {
        "calibration_seconds": round(fitted.seconds, 1),
        "calibration_evaluations": fitted.evaluations,
        "calibration_worst_fit_error": round(fitted.worst("fit") or 0, 4),
        "calibration_worst_holdout_error": round(fitted.worst("holdout") or 0, 4),
        "round2_model_rows": [
            {
                "date": r.row.day.isoformat(),
                "kind": r.row.kind,
                "published": r.row.value,
                "model": round(r.simulated),
                "error": round(r.error, 4),
                "role": r.role,
            }
            for r in round2.rows
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller subset, no full runs")
    parser.add_argument("--workers", type=int, default=2, help="processes for the round-1 run")
    parser.add_argument(
        "--operators-only", action="store_true", help="skip the calibration figures"
    )
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
        for name in ("round1", "round2"):
            figures.update(full_run(name, args.workers))
    figures.update(operator_figures(args.quick))
    if args.operators_only:
        print(json.dumps(figures))
        return
    figures.update(calibration_figures())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
