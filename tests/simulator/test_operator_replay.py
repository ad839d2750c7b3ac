"""``mynahil loadtest --operators``: registered operators send signed report batches to a
real ``mynahil serve`` on loopback; afterwards the ledger holds and every acknowledged report
was decided once. Runs in a subprocess (Locust patches the process with gevent)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from mynahil.simulator.loadtest.operators import build_operator_plan
from mynahil.simulator.scenario import Scenario, ScenarioError, load_scenario
from tests.support import MYNAHIL, free_port, running

from .conftest import SCENARIOS


@pytest.fixture(scope="module")
def point_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``mynahil serve`` on SQLite during the point period; its URL and database URL."""
    folder = tmp_path_factory.mktemp("points")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{folder}/platform.db"
    argv = [*MYNAHIL, "serve", "--db", db, "--ca", str(folder / "jlis"), "--port", str(port),
            "--as-of", "2020-09-01"]  # fmt: skip
    with running(argv, f"{url}/v1/health"):
        yield url, db


def test_operator_plan_follows_the_report_curve() -> None:
    scenario: Scenario = load_scenario(SCENARIOS / "round1.toml")
    plan = build_operator_plan(scenario, datetime(2020, 9, 1, 0, 0), 24, compress=3600,
                               max_users=10, pacing=1.0, batch=100)  # fmt: skip
    assert plan.duration_s == 24
    users = [t.users for t in plan.ticks]
    assert max(users) == 10  # scaled to the cap at the peak
    assert users.index(max(users)) in range(10, 22)  # daytime, not the small hours
    assert min(users) < max(users) / 3
    with pytest.raises(ValueError, match="outside the scenario's run"):
        build_operator_plan(scenario, datetime(2023, 1, 1), 1, compress=3600, max_users=1,
                            pacing=1.0, batch=1)  # fmt: skip


def test_replay_decides_every_acknowledged_report_once(
    point_platform: tuple[str, str], tmp_path: Path
) -> None:
    url, db = point_platform
    out = tmp_path / "replay"
    result = subprocess.run(
        [*MYNAHIL, "loadtest", str(SCENARIOS / "round1.toml"), "--platform", url,
         "--operators", "2", "--db", db, "--start", "2020-09-01T12:00", "--hours", "2",
         "--compress", "1200", "--max-users", "4", "--pacing", "0.3", "--batch", "20",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    stats = json.loads((out / "stats.json").read_text())
    ops = stats["operators"]
    assert ops["checked"] is True
    assert ops["problems"] == []
    assert ops["acknowledged_reports"] > 100
    assert ops["reports_per_s"] > 0
    assert ops["replayed_answers"] >= 0
    assert len(ops["per_operator"]) == 2
    for row in ops["per_operator"].values():
        assert row["failures"] == 0
        assert 0 < row["p50_ms"] <= row["p95_ms"]
    assert stats["stages"]["report"]["requests"] > 5
    assert stats["passed"] is True
    assert "decided once: yes" in result.stdout
    assert (out / "operators.json").exists()


def test_operators_in_the_loop_against_a_running_platform(point_platform: tuple[str, str]) -> None:
    """--hil-operators with --operator-platform/--operator-db: the same measurement against
    ``mynahil serve`` in its own process, operators registered in its database."""
    from mynahil.simulator.operators.hil import measure_operators

    url, db = point_platform
    scenario = load_scenario(SCENARIOS / "round1.toml")
    measured = measure_operators(scenario, 2, seed=3, platform_url=url, db_url=db,
                                 batches_per_operator=3, max_batch=30)  # fmt: skip
    assert measured.target == url
    assert measured.failures == 0
    assert len(measured.batches) == 6
    assert measured.violations == []
    overhead, per_report = measured.fit()
    assert per_report > 0
    assert overhead >= 0
    with pytest.raises(ScenarioError, match="--operator-platform needs --operator-db"):
        measure_operators(scenario, 1, platform_url=url)


@pytest.mark.slow
def test_master_and_a_worker_check_every_acknowledged_report(
    point_platform: tuple[str, str], tmp_path: Path
) -> None:
    """Scale-out: the master registers the operators and writes operators.json; a worker
    sends as them and reports its acknowledgements, which the master checks key by key."""
    url, db = point_platform
    port = str(free_port())
    out = tmp_path / "mw"
    common = [str(SCENARIOS / "round1.toml"), "--platform", url, "--start", "2020-09-01T12:00",
              "--hours", "1", "--compress", "360", "--max-users", "3", "--pacing", "0.5",
              "--batch", "20", "--master-port", port]  # fmt: skip
    loadtest = [*MYNAHIL, "loadtest"]
    master = subprocess.Popen(
        [*loadtest, *common, "--operators", "2", "--db", db, "--master", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = None
    try:
        for _ in range(120):
            if (out / "operators.json").exists() or master.poll() is not None:
                break
            time.sleep(0.25)
        worker = subprocess.Popen(
            [*loadtest, *common, "--worker", "--operators-file", str(out / "operators.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        stdout, stderr = master.communicate(timeout=90)
        assert master.returncode == 0, stderr + stdout
        worker.wait(timeout=30)
        assert worker.returncode == 0
    finally:
        for process in (master, worker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["mode"] == "master"
    ops = stats["operators"]
    assert ops["acknowledged_reports"] > 50  # the worker's, sent with its stats reports
    assert ops["checked"] is True
    assert ops["problems"] == []
    assert "decided once: yes" in stdout
