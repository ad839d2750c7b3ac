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
from markupsafe import Markup

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from ._template import REPORT_TEMPLATE
from .calibration import CalibrationResult, calibration_check, measure_shares, published_for
from .metrics import hour_labels
from .scenario import CHANNELS, STATION_CHANNELS, Scenario
from .sweep import SweepOutcome

__all__ = ["write_outputs"]

Floats = npt.NDArray[np.float64]


#: Units of the swept fields a planner uses most (axis labels and table headers).
FIELD_UNITS = {
    "platform.servers": "servers",
    "platform.service_median_ms": "ms",
    "platform.timeout_s": "s",
    "channels.municipal_window.servers_per_spot": "staff per window",
    "channels.kiosk.spots": "kiosks",
}
_UNIT_NAMES = {"s": "seconds", "min": "minutes", "ratio": "share (0-1)", "count": "people"}


def field_label(field: str) -> str:
    unit = FIELD_UNITS.get(field)
    if unit is None and field.endswith("_minutes"):
        unit = "minutes"
    return f"{field} ({unit})" if unit else field


def metric_label(outcome: SweepOutcome) -> str:
    target = outcome.target
    if target is None:
        return "measured"
    return f"{target.metric} ({_UNIT_NAMES.get(target.unit, target.unit)})"


def unit_of(metric: str) -> str:
    """The unit of a headline figure, read from its name."""
    if metric.endswith("_min"):
        return "minutes"
    if metric.endswith("_s"):
        return "seconds"
    if "utilisation" in metric:
        return "share (0-1)"
    if metric.endswith("_hours"):
        return "hours"
    if metric.startswith("platform_requests") or metric.startswith("platform_errors"):
        return "requests"
    if metric in ("failed_reads", "wrong_pins"):
        return "events"
    return "people"


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "saturated" if value > 0 else "-inf"
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
    ax.plot(days, np.array(cumulative) / 1e6, label="simulated applications")
    rows, _ = published_for(scenario)
    shown = [r for r in rows if r.kind == "applications" and r.day.isoformat() in
             summary["cumulative_applications"]]  # fmt: skip
    if shown:
        ax.plot([np.datetime64(r.day) for r in shown], [r.value / 1e6 for r in shown], "o",
                color="crimson", label="published applications")  # fmt: skip
    ax.set_ylabel("applications (millions of people, cumulative)")
    ax.set_xlabel("date")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def plot_calibration(result: CalibrationResult) -> Figure:
    """The expected two-step demand against every published row, fit and holdout apart."""
    from .demand import demand_curve

    scenario = result.scenario
    last = max([r.row.day for r in result.rows] + [scenario.run.end])
    curve = demand_curve(scenario, last)
    days = np.arange(len(curve.applications)) + np.datetime64(curve.first)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(days, np.cumsum(curve.applications) / 1e6, label="model: applications")
    ax.plot(days, np.cumsum(curve.reservations) / 1e6, ls="--", label="model: reservations")
    for measure in scenario.campaign.measures:
        ax.plot(days, np.cumsum(curve.applications) * measure.share_of_applicants / 1e6, lw=0.8,
                label=f"model: {measure.kind}")  # fmt: skip
    ax.plot(
        days, curve.eligible / 1e6, color="grey", lw=0.8, label="eligible (apply share x cards)"
    )
    markers = {"fit": "o", "holdout": "s"}
    for role, marker in markers.items():
        chosen = [r for r in result.rows if r.role == role]
        if chosen:
            ax.plot([np.datetime64(r.row.day) for r in chosen], [r.row.value / 1e6 for r in chosen],
                    marker, color="crimson" if role == "fit" else "black", ls="none",
                    label=f"published ({role})")  # fmt: skip
    ax.set_ylabel("people (millions, cumulative)")
    ax.set_xlabel("date")
    ax.set_title(f"{scenario.name}: model vs published figures")
    ax.legend(fontsize=7)
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
    """Measured metric per swept value; saturated values are marked at the top, not plotted
    as a number (the clients timed out)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    finite = [p for p in outcome.points if not p.saturated and not math.isnan(p.measured)]
    saturated = [p for p in outcome.points if p.saturated]
    ax.plot([p.value for p in finite], [p.measured for p in finite], "o-", label="measured")
    if outcome.target is not None:
        ax.axhline(
            outcome.target.value, color="crimson", ls="--", label=f"target {outcome.target.text}"
        )
        if outcome.best is not None:
            ax.axvline(
                outcome.best,
                color="green",
                ls=":",
                label=f"smallest meeting it: {_fmt(outcome.best)}",
            )
        measured = [p.measured for p in finite] + [outcome.target.value]
        top = max(measured) if measured else 1.0
        if saturated:
            ax.plot([p.value for p in saturated], [top * 1.5] * len(saturated), "x",
                    color="crimson", ms=10, label="saturated (clients time out)")  # fmt: skip
        if min(measured) > 0 and top / min(measured) > 100:
            ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_ylabel(metric_label(outcome))
    ax.set_xlabel(field_label(outcome.sweep.field))
    if all(float(v).is_integer() for v in outcome.sweep.values):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
    operators: tuple[dict[str, Any], str] | None = None,
) -> dict[str, Path]:
    """Write everything into ``out``; returns the main files by name. ``operators``: the
    operator part's summary and HTML section (mynahil.simulator.operators.report)."""
    out.mkdir(parents=True, exist_ok=True)
    rows, cut = published_for(scenario)
    calibration = calibration_check(summary, rows, cut, measures=measure_shares(scenario))
    summary = dict(summary)
    summary["calibration"] = [asdict(r) | {"error": r.error, "ok": r.ok} for r in calibration]
    if sweep is not None:
        summary["sweep"] = {
            "field": sweep.sweep.field,
            "target": sweep.target.text if sweep.target else None,
            "best": _whole(sweep.best),
            "unit": sweep.target.unit if sweep.target else None,
            "points": [
                {
                    "value": _whole(p.value),
                    "measured": p.measured,
                    "met": p.met,
                    "saturated": p.saturated,
                }
                for p in sweep.points
            ],
        }
    if hil is not None:
        summary["hil"] = {k: v for k, v in hil.items() if k != "latencies_ms"}
    if operators is not None:
        summary["operators"] = operators[0]
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
        parameters=input_parameters(scenario),
        plots=_Plots(plots),
        sweep=sweep,
        sweep_labels=(field_label(sweep.sweep.field), metric_label(sweep)) if sweep else None,
        hil=hil,
        fmt=_fmt,
        unit_of=unit_of,
        # The section comes from mynahil.simulator.operators.report, rendered with autoescape on.
        operators_html=Markup(operators[1] if operators else ""),  # noqa: S704
    )
    files["report"] = out / "report.html"
    files["report"].write_text(html)
    return files


def _whole(value: float | None) -> float | int | None:
    """Whole numbers as integers (server counts are counts)."""
    if value is not None and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


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


def calibration_table(result: CalibrationResult) -> list[dict[str, Any]]:
    return [
        {
            "date": r.row.day.isoformat(),
            "kind": r.row.kind,
            "published": r.row.value,
            "simulated": round(r.simulated),
            "error": r.error,
            "role": r.role,
            "source": r.row.source,
            "url": r.row.url,
        }
        for r in result.rows
    ]


def input_parameters(scenario: Scenario) -> list[tuple[str, str, str]]:
    """The scenario's inputs as (parameter, value with unit, where it comes from) rows."""
    demand, campaign, platform = scenario.demand, scenario.campaign, scenario.platform
    fitted = set(scenario.calibration.fit) if scenario.calibration else set()

    def origin(path: str) -> str:
        return "fitted (mynahil calibrate)" if path in fitted else "scenario"

    rows = [
        ("demand.apply_share", f"{demand.apply_share:.4g} of card holders",
         origin("demand.apply_share")),
        ("demand.base_daily_rate", f"{demand.base_daily_rate:.4g} per day",
         origin("demand.base_daily_rate")),
        ("demand.awareness_start", f"{demand.awareness_start:.4g} (share aware at opening)",
         origin("demand.awareness_start")),
        ("demand.awareness_growth_days", f"{demand.awareness_growth_days:.4g} days",
         origin("demand.awareness_growth_days")),
        ("demand.launch_peak", f"{demand.launch_peak:.4g} x base on day 1",
         origin("demand.launch_peak")),
        ("demand.launch_decay_days", f"{demand.launch_decay_days:.4g} days",
         origin("demand.launch_decay_days")),
        ("demand.application_rate", f"{demand.application_rate:.4g} per day",
         origin("demand.application_rate")),
        ("demand.weekend_factor", f"{demand.weekend_factor:.4g}", "scenario"),
    ]  # fmt: skip
    for event in campaign.events:
        path = f"campaign.events.{event.key}.multiplier"
        rows.append(
            (
                f"event: {event.name}",
                f"x{event.multiplier:.4g} on {event.applies_to}, {event.starts}..{event.ends}",
                origin(path),
            )
        )
    if campaign.cards_applied_at_deadline is not None:
        rows.append(
            (
                "campaign.cards_applied_at_deadline",
                f"{campaign.cards_applied_at_deadline:,.0f} cards (applied by "
                f"{campaign.cards_applied_by})",
                "published",
            )
        )
    for day, holders in scenario.population.card_holders:
        rows.append((f"card holders on {day}", f"{holders:,.0f} cards", "published / scenario"))
    for measure in campaign.measures:
        rows.append(
            (
                f"measure: {measure.name}",
                f"{measure.share_of_applicants:.3g} of applicants",
                measure.source,
            )
        )
    for spot in scenario.procedure_spots:
        when = f" from {spot.available_from}" if spot.available_from else ""
        rows.append((f"spots: {spot.kind}", f"{spot.count:,} ({spot.channel}{when})", spot.source))
    for channel in scenario.channels:
        rows.append(
            (f"channels.{channel.name}.share", f"{channel.share:.3g} of holders", "assumption")
        )
    rows += [
        ("platform.servers", f"{platform.servers} servers", "scenario"),
        ("platform.service_median_ms", f"{platform.service_median_ms:g} ms", "scenario"),
        ("platform.timeout_s", f"{platform.timeout_s:g} s (client)", "scenario"),
        ("platform.client_retries", f"{platform.client_retries}", "scenario"),
    ]
    return rows


def write_calibration(out: Path, result: CalibrationResult) -> dict[str, Path]:
    """``calibration.json``, ``calibration.md`` and ``calibration.png`` for one calibration."""
    out.mkdir(parents=True, exist_ok=True)
    table = calibration_table(result)
    spec = result.spec
    figures = {
        "scenario": result.scenario.name,
        "fit": list(spec.fit),
        "holdout_after": spec.holdout_after.isoformat(),
        "seed": spec.seed,
        "starts": spec.starts,
        "initial": result.initial,
        "fitted": result.values,
        "cost": result.cost,
        "evaluations": result.evaluations,
        "seconds": result.seconds,
        "worst_fit_error": result.worst("fit"),
        "worst_holdout_error": result.worst("holdout"),
        "rows": table,
    }
    files = {
        "json": out / "calibration.json",
        "markdown": out / "calibration.md",
        "plot": out / "calibration.png",
    }
    files["json"].write_text(json.dumps(_clean(figures), indent=2, default=_json_default) + "\n")
    lines = [
        f"# Calibration of {result.scenario.name}",
        "",
        f"Fit rows: dated on or before {spec.holdout_after}; holdout: after it (chosen before "
        f"fitting). Seed {spec.seed}, {spec.starts} starts, {result.evaluations} model "
        f"evaluations, {result.seconds:.1f} s.",
        "",
        "| parameter | before | fitted |",
        "| --- | ---: | ---: |",
        *(f"| `{p}` | {result.initial[p]:.4g} | {v:.4g} |" for p, v in result.values.items()),
        "",
        "| date | kind | published (people) | model (people) | error | role | source |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
        *(
            f"| {r['date']} | {r['kind']} | {r['published']:,.0f} | {r['simulated']:,} | "
            f"{r['error']:+.1%} | {r['role']} | [{r['source']}]({r['url']}) |"
            for r in table
        ),
        "",
    ]
    files["markdown"].write_text("\n".join(lines))
    fig = plot_calibration(result)
    fig.tight_layout()
    fig.savefig(files["plot"], dpi=90)
    plt.close(fig)
    return files
