"""Writing a run's outputs: hourly CSV, summary.json, PNG plots and one self-contained HTML.

This is the simulator's only module that touches files; plots use matplotlib's Agg backend.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from ._template import REPORT_TEMPLATE
from .calibration import PUBLISHED, calibration_check
from .metrics import hour_labels
from .scenario import CHANNELS, STATION_CHANNELS, Scenario
from .sweep import SweepOutcome

__all__ = ["write_outputs"]

Floats = npt.NDArray[np.float64]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.3g}"


def write_csv(path: Path, scenario: Scenario, table: dict[str, Floats]) -> None:
    labels = hour_labels(scenario)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["hour", *table])
        columns = list(table.values())
        for h, label in enumerate(labels):
            writer.writerow([label, *(_cell(c[h]) for c in columns)])


def _cell(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def _days(scenario: Scenario) -> list[Any]:
    return list(np.array(scenario.run.dates(), dtype="datetime64[D]"))


def _daily(values: Floats) -> Floats:
    return np.asarray(values.reshape(-1, 24).sum(axis=1))


def _daily_max(values: Floats) -> Floats:
    rows = values.reshape(-1, 24)
    finite = np.where(np.isfinite(rows), rows, -np.inf)
    peak = finite.max(axis=1)
    return np.asarray(np.where(np.isfinite(peak), peak, np.nan))


def plot_cumulative(scenario: Scenario, summary: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 4))
    days = _days(scenario)
    cumulative = list(summary["cumulative_applications"].values())
    ax.plot(days, np.array(cumulative) / 1e6, label="simulated")
    for figure in PUBLISHED:
        if (
            figure.first_day == "2020-07-01"
            and figure.last_day in summary["cumulative_applications"]
        ):
            ax.plot([np.datetime64(figure.last_day)], [figure.count / 1e6], "o", color="crimson")
    ax.plot([], [], "o", color="crimson", label="published")
    ax.set_ylabel("applications (millions, cumulative)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def plot_channels(scenario: Scenario, table: dict[str, Floats]) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 4))
    days = _days(scenario)
    stacks = [_daily(table[f"completed_{name}"]) for name in CHANNELS]
    ax.stackplot(days, *stacks, labels=CHANNELS)
    ax.plot(days, _daily(table["new_intents"]), color="black", lw=1, label="new applicants")
    ax.set_ylabel("holders per day")
    ax.set_title("completions by channel (card read, PIN right)")
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def plot_lockouts(scenario: Scenario, table: dict[str, Floats]) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    days = _days(scenario)
    for key in ("lockouts", "window_visits", "abandoned", "lost"):
        ax.plot(days, _daily(table[key]), label=key.replace("_", " "))
    ax.set_ylabel("holders per day")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def plot_waits(scenario: Scenario, table: dict[str, Floats]) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 4))
    days = _days(scenario)
    for name in STATION_CHANNELS:
        ax.plot(days, _daily_max(table[f"wait_p95_{name}_min"]), label=f"{name} p95 wait")
    ax.set_ylabel("worst hour's p95 wait (minutes)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def plot_platform(scenario: Scenario, table: dict[str, Floats]) -> Figure:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    days = _days(scenario)
    top.plot(days, _daily_max(table["platform_utilisation"]) * 100, label="peak utilisation %")
    top.set_ylabel("utilisation %")
    top.grid(alpha=0.3)
    bottom.plot(days, _daily_max(table["platform_p95_s"]), color="darkorange", label="p95 response")
    bottom.set_ylabel("p95 response (s)")
    bottom.set_yscale("log")
    errors = _daily(table["platform_errors"])
    if errors.sum() > 0:
        twin = bottom.twinx()
        twin.plot(days, errors, color="crimson", lw=0.8, label="errors / day")
        twin.set_ylabel("errors per day")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def plot_sweep(outcome: SweepOutcome) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4))
    values = [p.value for p in outcome.points]
    measured = [p.measured for p in outcome.points]
    ax.plot(values, measured, "o-")
    if outcome.target is not None:
        ax.axhline(
            outcome.target.value, color="crimson", ls="--", label=f"target {outcome.target.text}"
        )
        ax.set_ylabel(outcome.target.metric)
        if outcome.best is not None:
            ax.axvline(
                outcome.best,
                color="green",
                ls=":",
                label=f"smallest meeting it: {_fmt(outcome.best)}",
            )
        ax.legend()
        if min(measured) > 0 and max(measured) / min(measured) > 100:
            ax.set_yscale("log")
    ax.set_xlabel(outcome.sweep.field)
    ax.grid(alpha=0.3)
    return fig


def plot_hil(hil: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.hist(hil["latencies_ms"], bins=40, alpha=0.7, label="measured reservation latency")
    ax.axvline(hil["assumed_median_ms"], color="crimson", ls="--", label="assumed median service")
    ax.set_xlabel("ms")
    ax.legend()
    return fig


def _data_uri(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_outputs(
    out: Path,
    scenario: Scenario,
    summary: dict[str, Any],
    table: dict[str, Floats],
    sweep: SweepOutcome | None = None,
    hil: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write everything into ``out``; returns the main files by name."""
    out.mkdir(parents=True, exist_ok=True)
    calibration = calibration_check(summary)
    summary = dict(summary)
    summary["calibration"] = [asdict(r) | {"error": r.error, "ok": r.ok} for r in calibration]
    if sweep is not None:
        summary["sweep"] = {
            "field": sweep.sweep.field,
            "target": sweep.target.text if sweep.target else None,
            "best": sweep.best,
            "points": [asdict(p) for p in sweep.points],
        }
    if hil is not None:
        summary["hil"] = {k: v for k, v in hil.items() if k != "latencies_ms"}
    files = {"timeseries": out / "timeseries.csv", "summary": out / "summary.json"}
    write_csv(files["timeseries"], scenario, table)
    files["summary"].write_text(json.dumps(_clean(summary), indent=2, default=_json_default) + "\n")
    figures = {
        "cumulative": plot_cumulative(scenario, summary),
        "channels": plot_channels(scenario, table),
        "lockouts": plot_lockouts(scenario, table),
        "waits": plot_waits(scenario, table),
        "platform": plot_platform(scenario, table),
    }
    if sweep is not None:
        figures["sweep"] = plot_sweep(sweep)
    if hil is not None and hil.get("latencies_ms"):
        figures["hil"] = plot_hil(hil)
    plots = {name: _data_uri(fig, out / f"{name}.png") for name, fig in figures.items()}
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = environment.from_string(REPORT_TEMPLATE).render(
        summary=summary,
        calibration=calibration,
        tolerance=0.10,
        plots=_Plots(plots),
        sweep=sweep,
        hil=hil,
        fmt=_fmt,
    )
    files["report"] = out / "report.html"
    files["report"].write_text(html)
    return files


class _Plots(dict[str, str]):
    """Missing plots read as empty, so the template can test for them."""

    def __missing__(self, key: str) -> str:
        return ""

    def __getattr__(self, key: str) -> str:
        return self[key]


def _clean(value: Any) -> Any:
    """NaN (e.g. a percentile of an empty hour) becomes null: strict JSON readers choke on NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
