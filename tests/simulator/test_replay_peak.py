"""Round 1's peak hour replayed at a multiple of its rate: the plan (pure), the card deck, and
``benchmarks/bench_replay_peak.py`` end to end at a tiny scale (two Locust workers against
``mynahil serve --workers 2`` on PostgreSQL)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mynahil.simulator import Scenario, arrival_curve
from mynahil.simulator.loadtest.cards import Card, CardDeck
from mynahil.simulator.loadtest.plan import busiest_hour, peak_replay

ROOT = Path(__file__).resolve().parents[2]


def test_busiest_hour_is_the_curves_maximum(round1: Scenario) -> None:
    start, people = busiest_hour(round1)
    first = datetime.combine(round1.run.start, datetime.min.time())
    last = datetime.combine(round1.run.end, datetime.min.time()) + timedelta(days=1)
    curve = arrival_curve(round1, first, last)
    assert people == max(p for _, p in curve)
    assert start.tzinfo is None  # as --start takes it (JST)
    assert [p for t, p in curve if t.replace(tzinfo=None) == start] == [people]


def test_peak_replay_sends_times_the_hours_rate(round1: Scenario) -> None:
    _, people = busiest_hour(round1)
    plan = peak_replay(round1, times=10, seconds=60)
    assert plan.compress == 10
    assert plan.duration_s == 60
    assert plan.hours == pytest.approx(60 * 10 / 3600)  # the first 10 minutes of the hour
    assert plan.scale == 1.0  # never scaled down: the target is the whole x10
    wanted = people * 10 / 3600  # holders per second
    assert plan.max_users == math.ceil(wanted)
    assert all(tick.users == plan.max_users for tick in plan.ticks)
    slower = peak_replay(round1, times=10, seconds=60, pacing=2.0)
    assert slower.max_users == math.ceil(wanted * 2)
    with pytest.raises(ValueError, match="--times"):
        peak_replay(round1, times=0, seconds=60)
    with pytest.raises(ValueError, match="--seconds"):
        peak_replay(round1, times=10, seconds=0)


def test_a_card_is_never_dealt_to_two_holders_at_once() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    first, second = Card("first", key), Card("second", key)
    deck = CardDeck([first, second])
    assert deck.take() is first
    assert deck.take() is second
    assert deck.take() is None  # both in use: nobody gets one twice at once
    deck.give_back(second)
    assert deck.take() is second
    assert deck.reused == 1
    deck.give_back(first)
    deck.give_back(second)
    assert deck.take() is first  # the least recently returned first


@pytest.mark.slow
def test_peak_replay_with_two_locust_workers_on_two_platform_workers(
    postgres_admin_url: str, round1: Scenario
) -> None:
    """Fewer cards than users per Locust worker, so cards are dealt again: still no error."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_replay_peak.py"), "--times", "0.4",
         "--seconds", "3", "--cards", "4", "--postgres", postgres_admin_url],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's code, as its workers
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["platform_workers"] == 2
    assert figures["locust_workers"] == 2
    assert figures["store"] == "postgresql"
    assert figures["errors"] == 0, figures["error_kinds"]
    assert figures["loadtest_exit_code"] == 0
    assert figures["cards_dealt_again"] > 0
    assert figures["requests"] >= 2 * figures["holders"] > 0
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    for stage in ("reserve", "login"):
        row = figures["stages"][stage]
        assert row["requests"] > 0
        assert row["failures"] == 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    _, people = busiest_hour(round1)
    assert figures["target_holders_per_s"] == pytest.approx(people * 0.4 / 3600, abs=0.1)
    assert figures["achieved_over_target"] > 0
