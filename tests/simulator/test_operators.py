"""The operator load model: spending against a Monte Carlo of holders, the intake against
queueing theory, the scenario's validation and the CLI's operator sweep."""

from __future__ import annotations

import copy
import json
import math
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mynahil.simulator.cli import simulate
from mynahil.simulator.operator_model import OperatorModel, parse_operators
from mynahil.simulator.operators.ingestion import IngestionLoad, simulate_ingestion
from mynahil.simulator.operators.run import decided_within
from mynahil.simulator.operators.spending import day_factors, simulate_spending
from mynahil.simulator.scenario import ScenarioError, load_scenario
from tests.support import examples

from .conftest import SCENARIOS

ROUND1 = load_scenario(SCENARIOS / "round1.toml")


def _operators(changes: dict[str, Any]) -> OperatorModel:
    data = copy.deepcopy(dict(ROUND1.source["operators"]))
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return parse_operators(data)


# -- spending: the cohort formulas against holders followed one by one ------------------------


def _monte_carlo(
    model: OperatorModel, days: list[date], starts: dict[int, int], mode: str, seed: int
) -> tuple[np.ndarray, float]:
    """Transactions per day and points in total, holder by holder (the rules as stated)."""
    rng = random.Random(seed)
    spender = model.spending.by_grant[mode]
    factors = day_factors(model.spending, days)
    cap_spend = model.spend.cap_yen * 100 / model.spend.rate_percent
    counts = np.zeros(len(days))
    points = 0.0
    for first, holders in starts.items():
        for _ in range(holders):
            if rng.random() < model.spending.never_share:
                continue
            if rng.random() < spender.fill_share:
                for t in range(first, len(days)):
                    if rng.random() < 1 - math.exp(-spender.fill_rate_per_day * factors[t]):
                        counts[t] += 1
                        points += min(spender.fill_amount_yen, cap_spend) * 0.25
                        break
                continue
            spent = 0.0
            for t in range(first, len(days)):
                n = np.random.default_rng(rng.getrandbits(32)).poisson(
                    spender.rate_per_day * factors[t]
                )
                for _ in range(n):
                    if spent >= cap_spend:
                        break
                    amount = rng.lognormvariate(math.log(spender.median_yen), spender.sigma)
                    counts[t] += 1
                    points += 0.25 * min(amount, cap_spend - spent)
                    spent += amount
                if spent >= cap_spend:
                    break
    return counts, points


@pytest.mark.parametrize("mode", ["charge", "purchase"])
def test_spending_matches_a_monte_carlo_of_holders(mode: str) -> None:
    # Only this mode's kinds; no refunds (the cohort model adds them afterwards).
    model = _operators({"spending.refund_rate": 0.0})
    days = [date(2020, 8, 20) + timedelta(days=i) for i in range(80)]
    applications = np.zeros(len(days))
    applications[3] = 1.0  # applied before the point period: starts on 2020-09-01
    applications[25] = 1.0  # applied during it: starts the next day
    result = simulate_spending(model, days, applications)
    share = sum(k.share for k in model.kinds if k.grant == mode)
    expected = result.modes[mode].transactions / share
    expected_points = result.modes[mode].points.sum() / share
    starts = {days.index(date(2020, 9, 1)): 1500, 26: 1500}
    counts, points = _monte_carlo(model, days, starts, mode, seed=5)
    counts /= 1500
    points /= 1500
    assert expected.sum() == pytest.approx(counts.sum(), rel=0.03)
    assert expected_points == pytest.approx(points, rel=0.03)
    # Day by day: the opening surge and the week after, within sampling noise.
    for day in (date(2020, 9, 1), date(2020, 9, 2), date(2020, 9, 16), date(2020, 10, 1)):
        i = days.index(day)
        noise = 4 * math.sqrt(max(counts[i], 1e-3) / 1500) + 0.01
        assert abs(expected[i] - counts[i]) < noise + 0.05 * counts[i], day
    # Nothing before the point period opens.
    assert expected[: days.index(date(2020, 9, 1))].sum() == 0


def test_points_never_exceed_the_cap_per_holder() -> None:
    model = _operators({"spending.refund_rate": 0.0})
    days = [date(2020, 9, 1) + timedelta(days=i) for i in range(487)]
    applications = np.zeros(len(days))
    applications[0] = 1000.0
    result = simulate_spending(model, days, applications)
    per_holder = sum(m.points.sum() for m in result.modes.values()) / 1000
    assert per_holder <= model.spend.cap_yen * (1 - model.spending.never_share) + 1e-6
    assert per_holder > 0.9 * model.spend.cap_yen * (1 - model.spending.never_share)


# -- the intake against queueing theory -------------------------------------------------------


def _single_service(workers: int, service_s: float, retries: int = 0) -> OperatorModel:
    data = copy.deepcopy(dict(ROUND1.source["operators"]))
    data["kinds"] = [
        {"name": "qr", "services": 1, "share": 1.0, "grant": "purchase",
         "reporting": "realtime", "timeout_s": 3600.0, "retries": retries, "feed_minutes": 60,
         "outages_per_year": 0.0}
    ]  # fmt: skip
    data["ingestion"] = {
        "workers": workers, "per_report_ms": 1e-6, "request_overhead_ms": service_s * 1000,
        "verify_ms": 0.0, "feed_page_ms": 0.0, "settlement_ms": 0.0, "step_seconds": 60,
    }  # fmt: skip
    return parse_operators(data)


def _load(per_hour: list[float]) -> IngestionLoad:
    hours = len(per_hour)
    return IngestionLoad(
        date(2020, 9, 1), np.array([per_hour], dtype=np.float64), np.zeros((1, hours)),
        np.zeros((1, hours)),
    )  # fmt: skip


@pytest.mark.parametrize("rho", [0.2, 0.6, 0.9])
def test_waits_match_mm1(rho: float) -> None:
    """M/M/1: P(W > t) = rho * exp(-(mu - lambda) t); latency = W + the request's service."""
    service = 1.0
    model = _single_service(1, service)
    result = simulate_ingestion(model, _load([rho / service * 3600] * 3), outages=[])
    hist = result.latency_hist.sum(axis=0)
    mu, lam = 1 / service, rho / service
    for t in (1.0, 4.0, 9.0):  # service + t lands on a histogram edge (2, 5, 10 s)
        theory = 1 - rho * math.exp(-(mu - lam) * t)
        assert decided_within(hist, service + t) == pytest.approx(theory, abs=0.01), t
    assert result.utilisation.mean() == pytest.approx(rho, rel=0.01)


def test_waits_match_mmc_erlang_c() -> None:
    """M/M/4 at load 0.75: P(W > 0) = Erlang C = 0.5094; P(W > t) = C exp(-(c mu - lambda) t)."""
    c, service = 4, 2.0
    lam = 0.75 * c / service
    result = simulate_ingestion(_single_service(c, service), _load([lam * 3600] * 2), outages=[])
    hist = result.latency_hist.sum(axis=0)
    erlang = 0.50943  # Erlang C(4 servers, 3 erlangs), from the textbook formula
    for t in (3.0, 8.0):  # 2 s of service + t lands on 5 s and 10 s
        theory = 1 - erlang * math.exp(-(c / service - lam) * t)
        assert decided_within(hist, service + t) == pytest.approx(theory, abs=0.01)


def test_overload_builds_a_backlog_that_drains_at_capacity() -> None:
    """1.5 times the capacity for an hour: 1,800 worker-seconds queue up, then drain (the
    wait stays below the one-hour timeout, so nothing is sent twice)."""
    model = _single_service(1, 1.0)
    result = simulate_ingestion(model, _load([5400.0, 0.0, 0.0]), outages=[])
    assert result.backlog_s[0] == pytest.approx(1800.0, rel=0.01)
    assert result.backlog_s[1] == pytest.approx(0.0, abs=1.0)
    assert result.reports.sum() == pytest.approx(5400.0)
    assert result.retries.sum() == 0
    assert result.utilisation[1] == pytest.approx(0.5, rel=0.02)


def test_timeouts_snowball_into_retries() -> None:
    model = _single_service(1, 1.0, retries=3)
    data = copy.deepcopy(dict(ROUND1.source["operators"]))
    data["kinds"] = [{**dict(data["kinds"][0]), "services": 1, "share": 1.0, "timeout_s": 5.0,
                      "retries": 3, "outages_per_year": 0.0}]  # fmt: skip
    data["ingestion"] = dict(model.ingestion.__dict__)
    burst = parse_operators(data)
    result = simulate_ingestion(burst, _load([5400.0, 1800.0, 0.0]), outages=[])
    assert result.retries.sum() > 0
    assert result.requests.sum() > result.reports.sum()  # the same reports, sent again
    assert result.reports.sum() == pytest.approx(7200.0)  # each decided once


def test_refused_requests_are_sent_again_and_decided_once() -> None:
    """error_share (measured by --hil-operators): a refused request goes again after the
    back-off, so that share of reports waits a timeout and a back-off longer."""
    data = copy.deepcopy(dict(ROUND1.source["operators"]))
    data["kinds"] = [{**dict(data["kinds"][0]), "services": 1, "share": 1.0, "timeout_s": 5.0,
                      "backoff_s": 5.0, "retries": 3, "outages_per_year": 0.0}]  # fmt: skip
    data["ingestion"] = {**dict(data["ingestion"]), "workers": 4, "error_share": 0.2,
                         "verify_ms": 0.0, "feed_page_ms": 0.0}  # fmt: skip
    model = parse_operators(data)
    result = simulate_ingestion(model, _load([3600.0, 3600.0, 0.0]), outages=[])
    assert result.reports.sum() == pytest.approx(7200.0)  # decided once
    assert result.retries.sum() == pytest.approx(7200.0 * (0.2 + 0.04 + 0.008), rel=0.02)
    hist = result.latency_hist.sum(axis=0)
    assert 1 - decided_within(hist, 10.0) == pytest.approx(0.2, abs=0.01)


def test_an_outage_holds_reports_and_releases_them_when_the_link_is_back() -> None:
    model = _single_service(1, 0.01)
    load = _load([3600.0] * 4)
    from datetime import datetime

    down = [("qr-1", datetime(2020, 9, 1, 1, 0), 60.0)]
    result = simulate_ingestion(model, load, outages=down)
    assert result.held[1] == pytest.approx(3600.0, rel=0.05)  # held through the outage hour
    assert result.held[2] == pytest.approx(0.0, abs=1.0)  # sent when it came back
    # ... in batches of catchup_batch (5,000), not one request per held report.
    assert result.requests[2] == pytest.approx(3600.0 + 1, abs=2.0)
    assert result.reports.sum() == pytest.approx(4 * 3600.0, rel=0.01)


# -- the scenario and the CLI -----------------------------------------------------------------


def test_operator_part_errors_name_the_field() -> None:
    with pytest.raises(ScenarioError, match=r"operators\.kinds\[0\]\.grant: must be charge"):
        _operators({"kinds": [{**ROUND1.source["operators"]["kinds"][0], "grant": "cash"}]})
    with pytest.raises(ScenarioError, match="shares must add up to 1"):
        _operators({"kinds": [{**ROUND1.source["operators"]["kinds"][0], "share": 0.5}]})
    with pytest.raises(ScenarioError, match=r"outages\[0\]\.service: no service 'qr-99'"):
        _operators({"outages": [{"service": "qr-99", "starts": "2020-09-01T12:00",
                                 "minutes": 60}]})  # fmt: skip


app = typer.Typer()
app.command("simulate")(simulate)


@app.command()
def version() -> None:  # a second command, so "simulate" stays a subcommand as in mynahil
    """Unused."""


def _short(tmp_path: Path) -> Path:
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        f'extends = "{SCENARIOS / "round1.toml"}"\nname = "short"\n'
        '[run]\nstart = 2020-08-31\nend = 2020-09-02\nregions = ["kinki"]\n'
        f'[calibration]\ndata = "{SCENARIOS / "data" / "round1.csv"}"\n'
    )
    return scenario


def test_operator_sweep_reports_and_exits_1_when_no_value_meets_the_target(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ok"
    args = ["simulate", str(_short(tmp_path)), "--executor", "serial", "--quiet",
            "--sweep", "operators.ingestion.workers=1,2"]  # fmt: skip
    result = CliRunner().invoke(
        app, [*args, "--out", str(out), "--target", "decision_p99<=60s@2020-09-01"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())["operators"]
    assert summary["sweep"]["best"] == 1
    assert summary["reports_decided"] > 0
    assert summary["points_granted_net"] > 0
    assert "Operator load" in (out / "report.html").read_text()
    assert (out / "operators.csv").read_text().splitlines()[0].startswith("hour,reports,")
    impossible = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "no"), "--target", "decision_p99<=1ms@2020-09-01"]
    )
    assert impossible.exit_code == 1
    assert "no value of operators.ingestion.workers meets" in impossible.output


def test_operators_in_the_loop_measure_the_reference_platform() -> None:
    """Three sampled operators report signed batches to the real platform (in-process, over
    HTTP on loopback); the fitted costs replace the scenario's and the ledger holds."""
    from mynahil.simulator.operators.hil import measure_operators

    measured = measure_operators(ROUND1, 3, seed=2, batches_per_operator=4, max_batch=40)
    assert measured.failures == 0
    assert len(measured.batches) == 12
    assert measured.reports == sum(n for n, _ in measured.batches)
    assert measured.violations == []
    changed = measured.apply(ROUND1)
    assert changed.operators is not None
    overhead, per_report = measured.fit()
    assert changed.operators.ingestion.per_report_ms == pytest.approx(per_report)
    assert changed.operators.ingestion.request_overhead_ms == pytest.approx(overhead)
    assert per_report > 0
    rows = {row[0]: row for row in measured.as_dict()["rows"]}
    assert rows["ledger invariants"][2] == "hold"


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=examples(25), deadline=None)
@given(
    fill_share=st.floats(0.0, 1.0),
    rate=st.floats(0.01, 3.0),
    median=st.floats(50.0, 30_000.0),
    sigma=st.floats(0.0, 1.5),
    fill_rate=st.floats(0.01, 3.0),
)
def test_no_holder_earns_past_the_cap_whatever_the_behaviour(
    fill_share: float, rate: float, median: float, sigma: float, fill_rate: float
) -> None:
    spender = {"fill_share": fill_share, "fill_amount_yen": 20000, "fill_rate_per_day": fill_rate,
               "rate_per_day": rate, "median_yen": median, "sigma": sigma}  # fmt: skip
    model = _operators({"spending.refund_rate": 0.0, "spending.charge": spender,
                        "spending.purchase": spender})  # fmt: skip
    days = [date(2020, 9, 1) + timedelta(days=i) for i in range(120)]
    applications = np.zeros(len(days))
    applications[0] = 100.0
    result = simulate_spending(model, days, applications)
    for mode in result.modes.values():
        assert np.all(mode.transactions >= -1e-9)
        assert np.all(mode.points >= -1e-9)
    per_holder = sum(m.points.sum() for m in result.modes.values()) / 100
    assert per_holder <= model.spend.cap_yen + 1e-6


@settings(max_examples=examples(40), deadline=None)
@given(
    shares=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5),
    counts=st.lists(st.integers(1, 60), min_size=5, max_size=5),
    exponent=st.floats(0.0, 3.0),
)
def test_service_shares_add_up_to_the_kinds_shares(
    shares: list[float], counts: list[int], exponent: float
) -> None:
    total = sum(shares)
    base = dict(ROUND1.source["operators"]["kinds"][0])
    kinds = [{**base, "name": f"k{i}", "share": s / total, "services": counts[i],
              "size_exponent": exponent} for i, s in enumerate(shares)]  # fmt: skip
    kinds[-1]["share"] = 1 - sum(k["share"] for k in kinds[:-1])
    if kinds[-1]["share"] < 0:
        return
    model = _operators({"kinds": kinds})
    services = model.services()
    assert len(services) == sum(counts[: len(shares)])
    assert sum(share for _, _, share in services) == pytest.approx(1.0)
    for _, kind, _ in services:  # the largest service of a kind first
        mine = [s for _, k, s in services if k.name == kind.name]
        assert mine == sorted(mine, reverse=True)


@given(grant=st.text(min_size=1, max_size=12).filter(lambda g: g not in ("charge", "purchase")))
def test_an_unknown_grant_mode_is_named(grant: str) -> None:
    kind = {**ROUND1.source["operators"]["kinds"][0], "grant": grant}
    with pytest.raises(ScenarioError, match=r"operators\.kinds\[0\]\.grant"):
        _operators({"kinds": [kind, *ROUND1.source["operators"]["kinds"][1:]]})
