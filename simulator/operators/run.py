"""One operator-load run: spending from the applications, reports per service, the platform.

``simulate_operators(scenario, applications)`` takes the sign-up model's completed
applications per hour (nationwide) and returns the spending, the load and the platform's
answer to it, plus the tables the report shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from ..operator_model import OperatorModel
from ..queueing import histogram_percentiles
from ..scenario import Scenario, ScenarioError
from .ingestion import IngestionLoad, IngestionResult, random_outages, simulate_ingestion
from .spending import SpendingResult, simulate_spending

__all__ = [
    "OperatorRun",
    "decided_within",
    "hourly_table",
    "monthly_settlements",
    "prepare_load",
    "rerun_ingestion",
    "service_table",
    "simulate_operators",
    "summarize_operators",
]

Floats = npt.NDArray[np.float64]
QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class OperatorRun:
    scenario: Scenario
    model: OperatorModel
    spending: SpendingResult
    load: IngestionLoad
    ingestion: IngestionResult
    #: (service, start JST, minutes): planned and seeded random outages used.
    outages: list[tuple[str, datetime, float]]
    #: Service -> net points per month (the month's claims, settled the next month).
    settlements: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def _operators(scenario: Scenario) -> OperatorModel:
    if scenario.operators is None:
        raise ScenarioError(
            'operators: the scenario has no operator part (add operators = "FILE", see '
            "scenarios/operator-load/round1.toml)"
        )
    return scenario.operators


def _service_shares(model: OperatorModel) -> tuple[list[str], list[str], Floats]:
    services = model.services()
    names = [name for name, _, _ in services]
    grants = [kind.grant for _, kind, _ in services]
    shares = np.array([share for _, _, share in services], dtype=np.float64)
    return names, grants, shares


def prepare_load(
    scenario: Scenario, applications: Floats, seed: int
) -> tuple[SpendingResult, IngestionLoad, dict[str, dict[str, float]]]:
    """Spending by day, reports per service and hour (Poisson counts around the expected
    ones), verify calls, settlement runs; and the monthly settlement volumes per service."""
    model = _operators(scenario)
    days = scenario.run.dates()
    hours = len(days) * 24
    if len(applications) != hours:
        raise ValueError(f"applications: {len(applications)} hours given, the run has {hours}")
    daily_apps = np.asarray(applications, np.float64).reshape(-1, 24).sum(axis=1)
    spending = simulate_spending(model, days, daily_apps)
    names, grants, shares = _service_shares(model)
    profile = np.array(model.spending.hourly_profile)
    profile = profile / profile.sum()
    rng = np.random.default_rng([model.seed, seed])
    expected = np.zeros((len(names), hours))
    points_daily = np.zeros((len(names), len(days)))
    for mode, result in spending.modes.items():
        mode_share = sum(s for s, g in zip(shares, grants, strict=True) if g == mode)
        hourly = np.outer(result.transactions + result.refunds, profile).reshape(-1)
        net = result.points - result.clawback
        for i, grant in enumerate(grants):
            if grant == mode:
                expected[i] = hourly * shares[i] / mode_share
                points_daily[i] = net * shares[i] / mode_share
    reports = rng.poisson(expected).astype(np.float64)
    apps = np.outer(shares, applications)
    settlements_at = np.zeros((len(names), hours))
    day_index = {d: i for i, d in enumerate(days)}
    ing = model.ingestion
    volumes: dict[str, dict[str, float]] = {name: {} for name in names}
    months = sorted({(d.year, d.month) for d in days})
    for year, month in months:
        in_month = [i for i, d in enumerate(days) if (d.year, d.month) == (year, month)]
        label = f"{year:04d}-{month:02d}"
        for s, name in enumerate(names):
            volumes[name][label] = float(points_daily[s, in_month].sum())
        following = date(year + month // 12, month % 12 + 1, ing.settlement_day)
        if following in day_index:
            settlements_at[:, day_index[following] * 24 + 10] = 1.0  # 10:00 JST
    load = IngestionLoad(scenario.run.start, reports, apps, settlements_at)
    return spending, load, volumes


def simulate_operators(
    scenario: Scenario,
    applications: Floats,
    *,
    seed: int = 1,
    outages: list[tuple[str, datetime, float]] | None = None,
) -> OperatorRun:
    """The operator load of a scenario, given completed applications per hour nationwide."""
    model = _operators(scenario)
    spending, load, volumes = prepare_load(scenario, applications, seed)
    if outages is None:
        planned = [(o.service, o.starts, o.minutes) for o in model.outages]
        outages = planned + random_outages(model, scenario.run.start, scenario.run.days, seed)
    result = simulate_ingestion(model, load, seed, outages)
    return OperatorRun(scenario, model, spending, load, result, outages, volumes)


def rerun_ingestion(run: OperatorRun, scenario: Scenario, seed: int = 1) -> OperatorRun:
    """The same spending and reports against another platform (sweeps over ``ingestion``)."""
    model = _operators(scenario)
    result = simulate_ingestion(model, run.load, seed, run.outages)
    return OperatorRun(scenario, model, run.spending, run.load, result, run.outages,
                       run.settlements)  # fmt: skip


# -- tables ----------------------------------------------------------------------------------


def decided_within(hist: Floats, seconds: float) -> float:
    """Share of the reports in ``hist`` (bins summed) decided within ``seconds``."""
    edges = IngestionResult.edges()
    total = float(hist.sum())
    if total <= 0:
        return math.nan
    inside = float(hist[..., edges[1:] <= seconds + 1e-9].sum())
    # The bin that holds ``seconds``: linear inside it.
    index = int(np.searchsorted(edges, seconds, side="right")) - 1
    if 0 <= index < len(edges) - 1 and edges[index] < seconds:
        width = edges[index + 1] - edges[index]
        inside += float(hist[..., index].sum()) * (seconds - edges[index]) / width
    return inside / total


def hourly_table(run: OperatorRun) -> dict[str, Floats]:
    out = run.ingestion
    table: dict[str, Floats] = {
        "reports": out.reports,
        "report_requests": out.requests,
        "retried_requests": out.retries,
        "errors": out.errors,
        "verify_calls": out.verify_calls,
        "failed_verifies": out.failed_verifies,
        "feed_requests": out.feed_requests,
        "settlement_requests": out.settlement_requests,
        "utilisation": out.utilisation,
        "backlog_worker_s": out.backlog_s,
        "held_reports": out.held,
    }
    latency = histogram_percentiles(out.latency_hist, out.edges(), QUANTILES)
    for j, q in enumerate(QUANTILES):
        table[f"decision_p{round(q * 100)}_s"] = latency[:, j]
    points = np.repeat(run.spending.net_points() / 24, 24)
    table["points_net_hourly_avg"] = points
    return table


def service_table(run: OperatorRun) -> list[dict[str, Any]]:
    """Per service: kind, grant, reporting, share, reports, points, decision latency."""
    out = run.ingestion
    per_service = out.service_reports @ (
        out.latency_hist / np.maximum(out.latency_hist.sum(axis=1, keepdims=True), 1e-12)
    )
    latency = histogram_percentiles(per_service, out.edges(), QUANTILES)
    rows = []
    for i, (name, kind, share) in enumerate(run.model.services()):
        points = sum(run.settlements[name].values())
        rows.append(
            {
                "service": name, "kind": kind.name, "grant": kind.grant,
                "reporting": kind.reporting, "share": share,
                "reports": float(out.service_reports[i].sum()), "points": points,
                "decision_p50_s": float(latency[i, 0]), "decision_p95_s": float(latency[i, 1]),
                "decision_p99_s": float(latency[i, 2]),
            }
        )  # fmt: skip
    return rows


def monthly_settlements(run: OperatorRun) -> list[dict[str, Any]]:
    months = sorted({m for v in run.settlements.values() for m in v})
    rows = []
    for month in months:
        per = [v.get(month, 0.0) for v in run.settlements.values()]
        rows.append(
            {"month": month, "points_claimed": float(sum(per)),
             "services_claiming": int(sum(1 for p in per if p > 0.5))}
        )  # fmt: skip
    return rows


def _day_slice(run: OperatorRun, first: date, last: date) -> slice:
    start = run.scenario.run.start
    return slice(max(0, (first - start).days) * 24, ((last - start).days + 1) * 24)


def summarize_operators(run: OperatorRun) -> dict[str, Any]:
    out, spend = run.ingestion, run.spending
    days = spend.days
    net = spend.net_points()
    daily_reports = out.reports.reshape(-1, 24).sum(axis=1)
    busiest = int(np.argmax(daily_reports)) if len(daily_reports) else 0
    peak_hour = int(np.argmax(out.reports)) if len(out.reports) else 0
    edges = out.edges()
    total_hist = out.latency_hist.sum(axis=0)
    pooled = histogram_percentiles(total_hist, edges, QUANTILES)
    busy_day = days[busiest] if days else None
    busy_hist = out.latency_hist[busiest * 24 : busiest * 24 + 24].sum(axis=0)
    busy_q = histogram_percentiles(busy_hist, edges, QUANTILES)
    budget = run.model.budget_yen
    return {
        "services": len(run.model.services()),
        "transactions": float(spend.transactions().sum()),
        "refunds": float(sum(m.refunds.sum() for m in spend.modes.values())),
        "reports_decided": float(out.reports.sum()),
        "report_requests": float(out.requests.sum()),
        "retried_requests": float(out.retries.sum()),
        "errors": float(out.errors.sum()),
        "verify_calls": float(out.verify_calls.sum()),
        "failed_verifies": float(out.failed_verifies.sum()),
        "feed_requests": float(out.feed_requests.sum()),
        "settlement_requests": float(out.settlement_requests.sum()),
        "points_granted_net": float(net.sum()),
        "budget_yen": budget,
        "budget_used": float(net.sum() / budget) if budget else None,
        "busiest_day": busy_day.isoformat() if busy_day else None,
        "busiest_day_reports": float(daily_reports[busiest]) if len(daily_reports) else 0.0,
        "busiest_day_decision_p50_s": float(busy_q[0]),
        "busiest_day_decision_p95_s": float(busy_q[1]),
        "busiest_day_decision_p99_s": float(busy_q[2]),
        "busiest_day_decided_within_60s": decided_within(busy_hist, 60.0),
        "peak_hour_reports": float(out.reports[peak_hour]) if len(out.reports) else 0.0,
        "decision_p50_s": float(pooled[0]),
        "decision_p95_s": float(pooled[1]),
        "decision_p99_s": float(pooled[2]),
        "peak_backlog_worker_s": float(out.backlog_s.max()) if len(out.backlog_s) else 0.0,
        "peak_held_reports": float(out.held.max()) if len(out.held) else 0.0,
        "peak_utilisation": float(out.utilisation.max()) if len(out.utilisation) else 0.0,
        "outages": [
            {"service": s, "starts": at.isoformat(timespec="minutes"), "minutes": round(m, 1)}
            for s, at, m in sorted(run.outages, key=lambda o: o[1])
        ],
        "points_by_day": {d.isoformat(): float(v) for d, v in zip(days, net, strict=True)},
        **run.notes,
    }


def day_range(run: OperatorRun, first: date | None, last: date | None) -> slice:
    start = run.scenario.run.start
    first = first or start
    last = last or start + timedelta(days=run.scenario.run.days - 1)
    return _day_slice(run, first, last)
