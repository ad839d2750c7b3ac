"""A platform that cannot keep up: reported as saturated, found by a sweep, and a sweep that
finds nothing fails."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from mynahil.simulator import Scenario, run, summarize
from mynahil.simulator.cli import simulate
from mynahil.simulator.metrics import SATURATED_TIMEOUT_SHARE, hourly_table
from mynahil.simulator.scenario import set_field
from mynahil.simulator.sweep import parse_sweep, parse_target, run_sweep

from .conftest import SCENARIOS


@pytest.fixture(scope="module")
def launch_day(launch_week: Scenario) -> Scenario:
    """Launch day nationwide (the platform sees the whole country)."""
    return dataclasses.replace(
        launch_week, run=dataclasses.replace(launch_week.run, end=launch_week.run.start)
    )


def test_an_overloaded_platform_is_saturated_not_a_long_p95(launch_day: Scenario) -> None:
    small = set_field(launch_day, "servers", 1)
    result = run(small, seed=1)
    table = hourly_table(result)
    saturated = table["platform_saturated"] > 0
    assert saturated.any()
    # A saturated hour is one where the clients' p95 is a timeout: more than 5% time out.
    assert (table["platform_timeout_share"][saturated] > SATURATED_TIMEOUT_SHARE).all()
    assert np.isinf(table["platform_p95_s"][saturated]).all()
    calm = ~saturated & (table["platform_requests"] > 0)
    assert np.isfinite(table["platform_p95_s"][calm]).all()
    metrics = summarize(result)["metrics"]
    assert math.isinf(metrics["platform_peak_p95_s"]["mean"])
    assert metrics["platform_saturated_hours"]["mean"] == saturated.sum()


def test_a_sweep_finds_the_smallest_server_count_past_saturation(launch_day: Scenario) -> None:
    outcome = run_sweep(
        launch_day,
        parse_sweep("servers=1..6"),
        parse_target("platform_p95<2s@2020-07-01"),
        seed=1,
        replications=1,
    )
    first = outcome.points[0]
    assert first.saturated
    assert first.met is False
    assert outcome.best is not None
    assert float(outcome.best).is_integer()
    chosen = next(p for p in outcome.points if p.value == outcome.best)
    assert not chosen.saturated
    assert chosen.measured < 2.0
    assert all(not p.met for p in outcome.points if p.value < outcome.best)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("simulate")(simulate)
    app.command("other")(lambda: None)
    return app


def test_a_sweep_where_nothing_meets_the_target_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        _app(),
        ["simulate", str(SCENARIOS / "launch-week.toml"), "--out", str(out), "--quiet",
         "--executor", "serial", "--sweep", "servers=1,2",
         "--target", "platform_p95<2s@2020-07-01"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "no value of --sweep platform.servers (1, 2) meets it" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sweep"]["best"] is None
    assert [p["saturated"] for p in summary["sweep"]["points"]] == [True, True]
    assert [p["value"] for p in summary["sweep"]["points"]] == [1, 2]  # counts, not 1.0
    html = (out / "report.html").read_text()
    assert "saturated" in html
    assert "platform.servers (servers)" in html
    assert "platform_p95 (seconds)" in html
    assert "Input parameters" in html
    assert "<td>platform_peak_p95_s</td><td>seconds</td>" in html
    assert "spots: Seven Bank ATMs" in html
    assert "fitted (mynahil calibrate)" in html


def test_a_sweep_that_finds_a_value_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        _app(),
        ["simulate", str(SCENARIOS / "launch-week.toml"), "--out", str(out), "--quiet",
         "--executor", "serial", "--sweep", "servers=2,16",
         "--target", "platform_p95<2s@2020-07-01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["sweep"]["best"] == 16
