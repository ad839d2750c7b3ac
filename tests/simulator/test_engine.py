"""The engine: reproducible by seed, regions add up, calibration, sweeps and targets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mynahil.simulator import Scenario, arrival_curve, calibration_check, run, summarize
from mynahil.simulator.calibration import published_for
from mynahil.simulator.demand import daily_intents
from mynahil.simulator.engine import (
    SerialExecutor,
    confidence_interval,
    open_executor,
    t_quantile_95,
)
from mynahil.simulator.scenario import ScenarioError, set_field
from mynahil.simulator.sweep import parse_sweep, parse_target, run_sweep
from mynahil.timezone import JST


@pytest.fixture(scope="module")
def two_days(launch_week: Scenario) -> Scenario:
    """Two days, two regions: enough to exercise everything, fast."""
    return dataclasses.replace(
        launch_week,
        run=dataclasses.replace(
            launch_week.run,
            end=launch_week.run.start.replace(day=2),
            regions=("shikoku", "chugoku"),
        ),
    )


def test_same_seed_same_summary_other_seed_other(two_days: Scenario) -> None:
    first = json.dumps(summarize(run(two_days, seed=5)), sort_keys=True)
    again = json.dumps(summarize(run(two_days, seed=5)), sort_keys=True)
    other = json.dumps(summarize(run(two_days, seed=6)), sort_keys=True)
    assert first == again
    assert first != other


def test_process_pool_gives_the_serial_result(two_days: Scenario) -> None:
    serial = summarize(run(two_days, seed=2, executor=SerialExecutor()))
    with open_executor("process", 2) as pool:
        parallel = summarize(run(two_days, seed=2, executor=pool))
    assert serial == parallel


def test_people_are_conserved(two_days: Scenario) -> None:
    """Everyone who came either completed, is still coming back, waits, or left for good."""
    rep = run(two_days, seed=3).replications[0]
    regions = rep.regions
    assert regions.completed.sum() <= regions.arrivals.sum() + 1e-6
    assert regions.lockouts.sum() > 0
    assert (regions.completed >= 0).all()


def test_replications_give_confidence_intervals(two_days: Scenario) -> None:
    summary = summarize(run(two_days, seed=1, replications=3))
    applications = summary["metrics"]["applications"]
    low, high = applications["ci95"]
    assert low < applications["mean"] < high
    assert len(applications["values"]) == 3


def test_t_quantiles_and_intervals() -> None:
    assert t_quantile_95(1) == pytest.approx(12.706)
    assert t_quantile_95(1000) == pytest.approx(1.962, abs=0.002)
    mean, _low, high = confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert high - mean == pytest.approx(4.303 * 1 / np.sqrt(3), rel=1e-3)


def test_calibration_check_flags_a_bad_run(round1: Scenario) -> None:
    rows, cut = published_for(round1)
    cumulative = {"2020-07-01": 100_000, "2020-07-05": 500_000, "2020-08-30": 3_800_000}
    checked = calibration_check({"cumulative_applications": cumulative}, rows, cut)
    by_day = {r.period: r for r in checked}
    assert by_day["2020-07-05"].ok is False  # -36%
    assert by_day["2020-08-30"].ok is True
    assert by_day["2021-12-31"].simulated is None
    assert by_day["2021-12-31"].ok is None
    assert by_day["2021-12-31"].role == "holdout"
    assert by_day["2021-12-31"].tolerance == 0.20


@pytest.mark.slow
def test_round1_full_run_is_calibrated(round1: Scenario) -> None:
    """The stochastic run, not only the expected curve: fit rows ±10%, holdout ±20%."""
    with open_executor("process", 2) as pool:
        summary = summarize(run(round1, seed=1, executor=pool))
    assert len(summary["cumulative_applications"]) == round1.run.days
    rows = calibration_check(summary, *published_for(round1))
    assert rows
    assert all(r.ok for r in rows), rows


def test_launch_week_matches_the_launch_figures(launch_week: Scenario) -> None:
    with open_executor("process", 2) as pool:
        summary = summarize(run(launch_week, seed=1, executor=pool))
    rows = calibration_check(summary, *published_for(launch_week))
    assert rows[0].period == "2020-07-05"
    assert rows[0].ok, rows[0]
    assert all(r.simulated is None for r in rows[1:])


def test_arrival_curve_is_hourly_and_adds_up(launch_week: Scenario) -> None:
    from datetime import datetime

    curve = arrival_curve(launch_week, datetime(2020, 7, 1), datetime(2020, 7, 2))
    assert len(curve) == 24
    assert curve[0][0].tzinfo == JST
    assert sum(p for _, p in curve) == pytest.approx(daily_intents(launch_week)[0], rel=0.35)
    assert max(p for _, p in curve) > 3 * min(p for _, p in curve)


def test_sweep_finds_the_smallest_server_count(two_days: Scenario) -> None:
    target = parse_target("platform_p95<2s@2020-07-01")
    outcome = run_sweep(two_days, parse_sweep("servers=1,2,3,8"), target, seed=1, replications=1)
    measured = [p.measured for p in outcome.points]
    assert measured == sorted(measured, reverse=True)  # more servers, never slower
    assert outcome.best is not None
    below = [p for p in outcome.points if p.value < outcome.best]
    assert all(not p.met for p in below)


def test_sweep_and_target_syntax() -> None:
    assert parse_sweep("servers=2..4").values == (2.0, 3.0, 4.0)
    assert parse_sweep("window_staff=3,1,2").field == "channels.municipal_window.servers_per_spot"
    target = parse_target("window_p95<=30min@2020-07-01..2020-07-08")
    assert target.value == 30
    assert target.op == "<="
    assert target.last is not None
    assert parse_target("platform_p95<500ms").value == pytest.approx(0.5)
    for bad in ("servers", "servers=5..2", "servers=a,b"):
        with pytest.raises(ScenarioError):
            parse_sweep(bad)
    for bad in ("platform_p95", "nonsense<3", "lockouts<3s"):
        with pytest.raises(ScenarioError):
            parse_target(bad)


def test_more_window_staff_shortens_the_window_queue(two_days: Scenario) -> None:
    short = set_field(two_days, "window_staff", 1)
    long = set_field(two_days, "window_staff", 4)
    thin = summarize(run(short, seed=1))["metrics"]["mean_wait_municipal_window_min"]["mean"]
    staffed = summarize(run(long, seed=1))["metrics"]["mean_wait_municipal_window_min"]["mean"]
    assert staffed < thin


def test_a_dask_cluster_gives_the_serial_result(two_days: Scenario) -> None:
    """The same runs through Dask (`--executor dask://HOST:PORT`), on a local cluster."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    try:
        address = str(cluster.scheduler_address).removeprefix("tcp://")
        serial = summarize(run(two_days, seed=3, executor=SerialExecutor()))
        with open_executor(f"dask://{address}") as pool:
            clustered = summarize(run(two_days, seed=3, executor=pool))
    finally:
        cluster.close()
    assert serial == clustered
