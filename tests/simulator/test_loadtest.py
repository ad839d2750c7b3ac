"""``mynahil loadtest``: the plan (pure), then real load on a ``mynahil serve`` subprocess.

The load test runs in a subprocess: Locust monkey-patches the process with gevent on import,
which must never happen to the test session (nor to the rest of the CLI).
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from mynahil.simulator import Scenario, arrival_curve
from mynahil.simulator.loadtest import build_plan
from mynahil.simulator.loadtest.timeline import histogram_p95, rounded_ms
from tests.support import MYNAHIL, free_port, modules_loaded_by

from .conftest import SCENARIOS

LAUNCH = datetime(2020, 7, 1, 8, 0)

LOADTEST = [*MYNAHIL, "loadtest"]


def run_loadtest(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOADTEST, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


# --- the plan ------------------------------------------------------------------------------


def test_plan_follows_the_compressed_curve(launch_week: Scenario) -> None:
    plan = build_plan(launch_week, LAUNCH, 10, compress=3600, max_users=20)
    assert plan.duration_s == 10  # one curve hour per second
    assert plan.peak_users == 20  # the launch needs far more: scaled down to the cap
    assert 0 < plan.scale < 1
    curve = [people for _, people in arrival_curve(launch_week, LAUNCH, datetime(2020, 7, 1, 18))]
    for tick, people in zip(plan.ticks, curve, strict=True):
        assert tick.people_per_hour == pytest.approx(people)
        assert tick.users == pytest.approx(people / max(curve) * 20, abs=1)
    busiest = max(range(10), key=lambda i: curve[i])
    assert plan.ticks[busiest].users == 20
    # Each tick reaches its count within the second.
    previous = 0
    for tick in plan.ticks:
        assert tick.spawn_rate >= abs(tick.users - previous)
        previous = tick.users
    assert plan.at(9.5) is plan.ticks[9]
    assert plan.at(10.0) is None


def test_plan_is_not_scaled_when_the_cap_allows(launch_week: Scenario) -> None:
    # x36: one curve hour lasts 100 s; the early-morning demand fits under the cap as it is.
    plan = build_plan(launch_week, datetime(2020, 7, 1, 5), 1, compress=36, max_users=1000)
    assert plan.scale == 1.0
    assert plan.duration_s == 100
    wanted = plan.ticks[0].people_per_hour * 36 / 3600
    assert 0 < wanted < 1000
    assert all(tick.users == math.ceil(wanted) for tick in plan.ticks)
    assert plan.people_per_user == pytest.approx(100.0)


def test_plan_rejects_bad_input(launch_week: Scenario) -> None:
    with pytest.raises(ValueError, match="--compress"):
        build_plan(launch_week, LAUNCH, 1, compress=0)
    with pytest.raises(ValueError, match="--max-users"):
        build_plan(launch_week, LAUNCH, 1, max_users=0)
    with pytest.raises(ValueError, match="--pacing"):
        build_plan(launch_week, LAUNCH, 1, pacing=-1.0)
    with pytest.raises(ValueError, match="--hours"):
        build_plan(launch_week, LAUNCH, 0)


def test_plan_outside_the_run_sends_nobody(launch_week: Scenario) -> None:
    plan = build_plan(launch_week, datetime(2019, 1, 1), 5, compress=3600)
    assert plan.peak_users == 0
    assert plan.expected_holders == 0


def test_percentiles_of_histograms() -> None:
    assert histogram_p95({}) is None
    assert histogram_p95({10: 95, 500: 5}) == 10
    assert histogram_p95({10: 94, 500: 6}) == 500
    assert rounded_ms(12.4) == 12
    assert rounded_ms(1234) == 1200


# --- the command ---------------------------------------------------------------------------


@pytest.mark.slow
def test_loadtest_replays_launch_day(platform: tuple[str, Path], tmp_path: Path) -> None:
    url, ca = platform
    out = tmp_path / "lt"
    result = run_loadtest(
        str(SCENARIOS / "launch-week.toml"), "--platform", url, "--ca", str(ca),
        "--start", "2020-07-01T08:00", "--hours", "10", "--compress", "3600",
        "--max-users", "8", "--pacing", "0.5", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["passed"] is True
    assert stats["plan"]["duration_s"] == 10
    assert set(stats["stages"]) == {"reserve", "login"}
    for stage in ("reserve", "login"):
        figures = stats["stages"][stage]
        assert figures["requests"] > 20, stage
        assert figures["failures"] == 0, stats["errors"]
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
        assert figures["rps"] > 0
    steps = stats["requests"]
    assert set(steps) == {"reserve: challenge", "reserve: id", "login: challenge",
                          "login: session", "login: me"}  # fmt: skip
    # Every reservation was followed by its login (cut-off holders at the end aside).
    assert steps["login: me"]["requests"] >= steps["reserve: id"]["requests"] - 8
    assert stats["total"]["failures"] == 0
    assert stats["errors"] == {}
    assert stats["cards_reused"] == 0
    # Users followed the plan: the timeline peaked at the cap and never passed it.
    users = [row["users"] for row in stats["timeline"] if row["users"] is not None]
    assert max(users) == 8
    csv_lines = (out / "stats.csv").read_text().splitlines()
    assert csv_lines[0].startswith("kind,name,requests,failures")
    assert any(line.startswith("stage,reserve,") for line in csv_lines)
    assert (out / "loadtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "PASSED" in report
    assert "| **reserve** |" in report
    assert "reserve:" in result.stdout
    assert "error rate 0.00%" in result.stdout


@pytest.mark.slow
def test_untrusted_cards_fail_the_error_rate(platform: tuple[str, Path], tmp_path: Path) -> None:
    """Cards from another CA: every reservation is refused, the run exits 1 and says why."""
    from mynahil.reference_impl.jlis import JlisCA

    url, _ = platform
    other = tmp_path / "other-ca"
    JlisCA.create(other)
    out = tmp_path / "lt"
    result = run_loadtest(
        str(SCENARIOS / "launch-week.toml"), "--platform", url, "--ca", str(other),
        "--start", "2020-07-01T10:00", "--hours", "3", "--max-users", "3", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr + result.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["passed"] is False
    assert stats["stages"]["reserve"]["failures"] > 0
    assert stats["requests"]["reserve: challenge"]["failures"] == 0
    assert "login" not in stats["stages"]  # a refused holder stops there
    assert any("certificate_untrusted" in error for error in stats["errors"]), stats["errors"]
    assert "FAILED" in (out / "report.md").read_text()


def test_input_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    scenario = str(SCENARIOS / "launch-week.toml")
    cases = [
        (["--platform", "http://127.0.0.1:9"], "--ca"),
        (["--platform", "http://127.0.0.1:9", "--ca", str(tmp_path)], "--ca"),
        (["--platform", "127.0.0.1:9", "--ca", str(tmp_path)], "--platform"),
        (["--platform", "http://x", "--ca", str(tmp_path), "--stages", "pay"], "--stages"),
        (["--platform", "http://x", "--ca", str(tmp_path), "--max-error-rate", "x"],
         "--max-error-rate"),
        (["--platform", "http://x", "--master", "--worker"], "--master"),
    ]  # fmt: skip
    for args, option in cases:
        result = run_loadtest(scenario, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: "), lines
        assert option in lines[0], lines


def test_the_rest_of_the_cli_never_imports_locust() -> None:
    help_text = subprocess.run(
        [*MYNAHIL, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "simulate" in help_text.stdout
    loaded = modules_loaded_by(
        "import mynahil.cli, mynahil.simulator.cli, mynahil.simulator.loadtest"
    )
    bad = {"locust", "gevent", "mynahil.simulator.loadtest.runner"} & loaded
    assert not bad, bad


@pytest.mark.slow
def test_master_and_two_workers(platform: tuple[str, Path], tmp_path: Path) -> None:
    """The scale-out mode: the master runs the shape and the report, two workers the users."""
    url, ca = platform
    port = str(free_port())
    common = [str(SCENARIOS / "launch-week.toml"), "--platform", url, "--start",
              "2020-07-01T09:00", "--hours", "5", "--max-users", "6",
              "--master-port", port]  # fmt: skip
    out = tmp_path / "mw"
    master = subprocess.Popen(
        [*LOADTEST, *common, "--master", "--expect-workers", "2", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            [*LOADTEST, *common, "--worker", "--ca", str(ca)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        stdout, stderr = master.communicate(timeout=60)
        assert master.returncode == 0, stderr + stdout
        for worker in workers:
            worker.wait(timeout=20)
            assert worker.returncode == 0
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["mode"] == "master"
    assert stats["workers"] == 2
    assert stats["cards_issued"] == 0  # the workers issued theirs
    for stage in ("reserve", "login"):
        assert stats["stages"][stage]["requests"] > 0
        assert stats["stages"][stage]["failures"] == 0
    # The workers' per-second measurements reached the master's timeline.
    assert sum(row["rps"] for row in stats["timeline"]) == stats["total"]["requests"]
