"""What a run says: the hourly table, per-replication figures and the summary with CIs."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from .engine import Replication, SimulationResult, confidence_interval
from .platform_model import PlatformResult
from .queueing import histogram_percentiles
from .region import station_edges
from .scenario import CHANNELS, STATION_CHANNELS, Scenario

__all__ = [
    "QUANTILES",
    "cumulative_applications",
    "hourly_table",
    "replication_figures",
    "service_p95_s",
    "summarize",
]

Floats = npt.NDArray[np.float64]
QUANTILES = (0.5, 0.95, 0.99)
#: Above this share of requests timing out in an hour, the clients' p95 is a timeout.
SATURATED_TIMEOUT_SHARE = 0.05


def service_p95_s(scenario: Scenario) -> float:
    p = scenario.platform
    return p.service_median_ms / 1000 * math.exp(1.6449 * p.service_sigma)


def _mean(reps: list[Replication], get: Any) -> Floats:
    return np.asarray(np.mean([get(r) for r in reps], axis=0), dtype=np.float64)


def hourly_table(result: SimulationResult) -> dict[str, Floats]:
    """One row per hour of the run: means over replications; percentiles of the pooled waits."""
    reps, scenario = result.replications, result.scenario
    table: dict[str, Floats] = {}
    table["new_intents"] = _mean(reps, lambda r: r.regions.new_intents)
    for i, name in enumerate(CHANNELS):
        table[f"arrivals_{name}"] = _mean(reps, lambda r, i=i: r.regions.arrivals[:, i])
    for i, name in enumerate(CHANNELS):
        table[f"completed_{name}"] = _mean(reps, lambda r, i=i: r.regions.completed[:, i])
    table["applications"] = _mean(reps, lambda r: r.applications)
    table["abandoned"] = _mean(reps, lambda r: r.regions.abandoned.sum(axis=1))
    table["unreadable"] = _mean(reps, lambda r: r.regions.unreadable.sum(axis=1))
    table["lost"] = _mean(reps, lambda r: r.regions.lost)
    table["lockouts"] = _mean(reps, lambda r: r.regions.lockouts)
    table["window_visits"] = _mean(reps, lambda r: r.regions.window_visits)
    table["failed_reads"] = _mean(reps, lambda r: r.regions.failed_reads)
    table["wrong_pins"] = _mean(reps, lambda r: r.regions.wrong_pins)
    hist = np.sum([r.regions.wait_hist.astype(np.float64) for r in reps], axis=0)
    waits = histogram_percentiles(hist, station_edges(), QUANTILES)
    for s, name in enumerate(STATION_CHANNELS):
        table[f"queue_{name}"] = _mean(reps, lambda r, s=s: r.regions.queue[:, s])
        table[f"busy_{name}"] = _mean(reps, lambda r, s=s: r.regions.busy[:, s])
        for q, quantile in enumerate(QUANTILES):
            table[f"wait_p{round(quantile * 100)}_{name}_min"] = waits[:, s, q]
    table["platform_requests"] = _mean(reps, lambda r: r.platform.requests)
    table["platform_utilisation"] = _mean(reps, lambda r: r.platform.utilisation)
    pooled = np.sum([r.platform.wait_hist for r in reps], axis=0)
    platform_waits = histogram_percentiles(pooled, PlatformResult.edges(), QUANTILES)
    busy_hours = table["platform_requests"] > 0
    table["platform_wait_p95_s"] = np.where(busy_hours, platform_waits[:, 1], np.nan)
    table["platform_timeouts"] = _mean(reps, lambda r: r.platform.timeouts)
    share = np.divide(
        table["platform_timeouts"],
        table["platform_requests"],
        out=np.zeros_like(table["platform_timeouts"]),
        where=table["platform_requests"] > 0,
    )
    table["platform_timeout_share"] = share
    table["platform_saturated"] = (share > SATURATED_TIMEOUT_SHARE).astype(np.float64)
    # Response = wait + service; adding the two 95th percentiles is an upper bound. As the
    # client sees it: when more than 5% of the hour's requests time out, its p95 is a
    # timeout, not a time -- the hour is saturated and its p95 is +inf ("saturated").
    response = table["platform_wait_p95_s"] + service_p95_s(scenario)
    table["platform_p95_s"] = np.where(table["platform_saturated"] > 0, np.inf, response)
    table["platform_errors"] = _mean(reps, lambda r: r.platform.errors)
    table["platform_failed_applications"] = _mean(reps, lambda r: r.platform.failed_applications)
    return table


def hour_labels(scenario: Scenario) -> list[str]:
    start = datetime.combine(scenario.run.start, time(0))
    return [
        (start + timedelta(hours=h)).isoformat(timespec="minutes")
        for h in range(scenario.run.hours)
    ]


def cumulative_applications(applications: Floats, scenario: Scenario) -> dict[str, int]:
    """ISO date -> applications completed by the end of that day, for every day of the run."""
    daily = applications.reshape(-1, 24).sum(axis=1)
    running = np.cumsum(daily)
    return {
        d.isoformat(): round(float(v)) for d, v in zip(scenario.run.dates(), running, strict=True)
    }


def _max(values: Floats) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if len(finite) else 0.0


def replication_figures(rep: Replication, scenario: Scenario) -> dict[str, float]:
    """The headline figures of one replication (the summary gives their mean and CI)."""
    regions, platform = rep.regions, rep.platform
    figures = {
        "new_intents": float(regions.new_intents.sum()),
        "arrivals": float(regions.arrivals.sum()),
        "applications": float(rep.applications.sum()),
        "abandoned": float(regions.abandoned.sum()),
        "lost": float(regions.lost.sum()),
        "unreadable": float(regions.unreadable.sum()),
        "failed_reads": float(regions.failed_reads.sum()),
        "wrong_pins": float(regions.wrong_pins.sum()),
        "lockouts": float(regions.lockouts.sum()),
        "window_visits": float(regions.window_visits.sum()),
        "platform_requests": float(platform.requests.sum()),
        "platform_errors": float(platform.errors.sum()),
        "platform_failed_applications": float(platform.failed_applications.sum()),
        "platform_peak_utilisation": _max(platform.utilisation),
    }
    for i, name in enumerate(CHANNELS):
        figures[f"completed_{name}"] = float(regions.completed[:, i].sum())
    hist = regions.wait_hist.astype(np.float64)
    waits = histogram_percentiles(hist, station_edges(), QUANTILES)
    for s, name in enumerate(STATION_CHANNELS):
        figures[f"peak_wait_p95_{name}_min"] = _max(waits[:, s, 1])
        served = regions.served[:, s].sum()
        figures[f"mean_wait_{name}_min"] = (
            float(regions.wait_sum[:, s].sum() / served) if served else 0.0
        )
    platform_waits = histogram_percentiles(platform.wait_hist, PlatformResult.edges(), QUANTILES)
    share = np.divide(
        platform.timeouts,
        platform.requests,
        out=np.zeros_like(platform.timeouts),
        where=platform.requests > 0,
    )
    saturated = int((share > SATURATED_TIMEOUT_SHARE).sum())
    figures["platform_saturated_hours"] = float(saturated)
    figures["platform_peak_p95_s"] = (
        math.inf if saturated else _max(platform_waits[:, 1]) + service_p95_s(scenario)
    )
    daily = rep.applications.reshape(-1, 24).sum(axis=1)
    figures["applications_first_day"] = float(daily[0])
    figures["applications_first_five_days"] = float(daily[:5].sum())
    return figures


def summarize(result: SimulationResult) -> dict[str, Any]:
    """``summary.json``: figures with 95% CIs over replications, and the daily cumulative count."""
    scenario = result.scenario
    per_rep = [replication_figures(r, scenario) for r in result.replications]
    metrics: dict[str, Any] = {}
    for name in per_rep[0]:
        values = [f[name] for f in per_rep]
        mean, low, high = confidence_interval(values)
        metrics[name] = {"mean": mean, "ci95": [low, high], "values": values}
    applications = np.mean([r.applications for r in result.replications], axis=0)
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": result.seed,
        "replications": len(result.replications),
        "run": {"start": scenario.run.start.isoformat(), "end": scenario.run.end.isoformat()},
        "regions": list(scenario.simulated_regions),
        "metrics": metrics,
        "cumulative_applications": cumulative_applications(applications, scenario),
        "notes": result.notes,
    }
