"""The operator part of a run's outputs: CSVs, plots and a section of the HTML report."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from ..metrics import hour_labels
from ..report import _data_uri, _fmt
from .run import (
    OperatorRun,
    hourly_table,
    monthly_settlements,
    service_table,
    summarize_operators,
)
from .sweep import OperatorSweep

__all__ = ["write_operator_outputs"]

Floats = npt.NDArray[np.float64]

SECTION = """
<h2>Operator load: spending, reports and the platform's intake</h2>
<p>{{ s.services }} payment services; {{ fmt(s.transactions) }} counted charges and purchases
and {{ fmt(s.refunds) }} refunds reported; {{ fmt(s.verify_calls) }} verify calls at application
time ({{ fmt(s.failed_verifies) }} failed: the service was down); {{ fmt(s.feed_requests) }} feed
pulls; {{ fmt(s.settlement_requests) }} settlement runs. Points granted, net of refunds:
<b>{{ fmt(s.points_granted_net) }} yen</b>{% if s.budget_yen %} against a budget of
{{ fmt(s.budget_yen) }} yen ({{ "%.1f" % (s.budget_used * 100) }}%){% endif %}.</p>
<table><tr><th>figure</th><th>value</th></tr>
<tr><td>busiest day</td><td>{{ s.busiest_day }} ({{ fmt(s.busiest_day_reports) }} reports)</td></tr>
<tr><td>decision latency on it, p50 / p95 / p99 (s)</td><td>{{ fmt(s.busiest_day_decision_p50_s) }} /
{{ fmt(s.busiest_day_decision_p95_s) }} / {{ fmt(s.busiest_day_decision_p99_s) }}</td></tr>
<tr><td>reports decided within 60 s on it</td><td>{{ "%.2f" % (s.busiest_day_decided_within_60s * 100) }}%</td></tr>
<tr><td>whole run, p50 / p95 / p99 (s)</td><td>{{ fmt(s.decision_p50_s) }} / {{ fmt(s.decision_p95_s) }} /
{{ fmt(s.decision_p99_s) }}</td></tr>
<tr><td>report requests (retries among them)</td><td>{{ fmt(s.report_requests) }} ({{ fmt(s.retried_requests) }})</td></tr>
<tr><td>requests given up after the last retry</td><td>{{ fmt(s.errors) }}</td></tr>
<tr><td>peak backlog (worker-seconds) / reports held at operators</td><td>{{ fmt(s.peak_backlog_worker_s) }} /
{{ fmt(s.peak_held_reports) }}</td></tr>
<tr><td>peak utilisation of the workers</td><td>{{ "%.1f" % (s.peak_utilisation * 100) }}%</td></tr>
<tr><td>outages (planned and seeded)</td><td>{{ s.outages | length }}</td></tr>
</table>
{% for key in ["op_traffic", "op_latency", "op_backlog", "op_points", "op_settlement", "op_sweep", "op_hil"] %}
{% if plots[key] %}<img alt="{{ key }}" src="{{ plots[key] }}">{% endif %}{% endfor %}
{% if sweep %}<h3>What-if sweep: {{ sweep.field }}</h3>
<p>Target: <code>{{ sweep.target }}</code>. {% if sweep.best is not none %}Smallest value that meets
it: <b>{{ fmt(sweep.best) }}</b>.{% else %}<span class="bad">No swept value meets it.</span>{% endif %}</p>
<table><tr><th>{{ sweep.field }}</th><th>measured</th><th>meets target</th></tr>
{% for p in sweep.points %}<tr><td>{{ fmt(p.value) }}</td><td>{{ fmt(p.measured) }}</td>
<td>{% if p.met %}<span class="ok">yes</span>{% else %}<span class="bad">no</span>{% endif %}</td></tr>
{% endfor %}</table>{% endif %}
{% if hil %}<h3>Operators in the loop: assumed vs measured</h3>
<p>{{ hil.operators }} sampled operators sent {{ hil.reports }} signed reports in {{ hil.batches }} batches
to {{ hil.target }}.</p>
<table><tr><th>quantity</th><th>assumed by the scenario</th><th>measured</th></tr>
{% for row in hil.rows %}<tr><td>{{ row[0] }}</td><td>{{ row[1] }}</td><td>{{ row[2] }}</td></tr>{% endfor %}
</table>{% endif %}
<h3>The largest services</h3>
<table><tr><th>service</th><th>kind</th><th>grant</th><th>reporting</th><th>share</th><th>reports</th>
<th>points (yen)</th><th>p50 / p95 / p99 (s)</th></tr>
{% for r in services %}<tr><td>{{ r.service }}</td><td>{{ r.kind }}</td><td>{{ r.grant }}</td>
<td>{{ r.reporting }}</td><td>{{ "%.2f" % (r.share * 100) }}%</td><td>{{ fmt(r.reports) }}</td>
<td>{{ fmt(r.points) }}</td><td>{{ fmt(r.decision_p50_s) }} / {{ fmt(r.decision_p95_s) }} /
{{ fmt(r.decision_p99_s) }}</td></tr>{% endfor %}</table>
<p class="note">All services are in operator_services.csv, monthly claims in
operator_settlements.csv, the hourly figures in operators.csv. Spending is computed by cohort
(expected values, Poisson counts per service and hour); the intake is one FIFO pool of workers,
M/G/c per hour when light and a fluid backlog per step when busy; see simulator/README.md.</p>
"""


def _daily(values: Floats, how: str = "sum") -> Floats:
    rows = values.reshape(-1, 24)
    result = rows.sum(axis=1) if how == "sum" else np.nanmax(rows, axis=1, initial=0.0)
    return np.asarray(result, np.float64)


def _days(run: OperatorRun) -> list[Any]:
    return run.scenario.run.dates()


def plot_traffic(run: OperatorRun, table: dict[str, Floats]) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    days = _days(run)
    for key, label in (
        ("reports", "reports decided"),
        ("report_requests", "report requests"),
        ("verify_calls", "verify calls"),
        ("retried_requests", "retries"),
    ):
        ax.plot(days, _daily(table[key]) / 24, label=label)  # fmt: skip
    ax.set_yscale("symlog")
    ax.set_ylabel("per hour (daily mean)")
    ax.set_title("Operator traffic")
    ax.legend(fontsize=7)
    return fig


def plot_latency(run: OperatorRun, table: dict[str, Floats]) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    days = _days(run)
    for q in (50, 95, 99):
        values = np.nan_to_num(table[f"decision_p{q}_s"], nan=0.0)
        ax.plot(days, _daily(values, "max"), label=f"p{q} (worst hour of the day)")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylabel("decision latency (s)")
    ax.set_title("Report decision latency")
    ax.legend(fontsize=7)
    return fig


def plot_backlog(run: OperatorRun, table: dict[str, Floats]) -> Figure:
    """The busiest day hour by hour (or the day of the largest backlog)."""
    held = table["held_reports"] + table["backlog_worker_s"]
    worst = (
        int(np.argmax(_daily(held, "max")))
        if held.any()
        else int(np.argmax(_daily(table["reports"])))
    )
    hours = slice(worst * 24, worst * 24 + 24)
    labels = hour_labels(run.scenario)[hours]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    x = np.arange(24)
    ax.bar(x, table["held_reports"][hours], label="reports held at operators", alpha=0.6)
    ax2 = ax.twinx()
    ax2.plot(x, table["backlog_worker_s"][hours], color="C3", label="platform backlog (worker-s)")
    ax2.plot(x, np.nan_to_num(table["decision_p99_s"][hours]), color="C2", label="p99 latency (s)")
    ax.set_xticks(x[::3], [str(label)[11:16] for label in labels[::3]])
    ax.set_title(f"Backlog and recovery on {_days(run)[worst]}")
    ax.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="upper right", fontsize=7)
    return fig


def plot_points(run: OperatorRun) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    days = _days(run)
    net = run.spending.net_points()
    ax.bar(days, net / 1e6, width=1.0, label="per day (million yen)")
    ax2 = ax.twinx()
    ax2.plot(days, np.cumsum(net) / 1e9, color="C3", label="cumulative (billion yen)")
    if run.model.budget_yen:
        ax2.axhline(run.model.budget_yen / 1e9, color="C3", ls="--", label="budget")
    ax.set_title("Points granted (net of refunds)")
    ax.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="lower right", fontsize=7)
    return fig


def plot_settlement(rows: list[dict[str, Any]]) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 3.0))
    ax.bar([r["month"] for r in rows], [r["points_claimed"] / 1e9 for r in rows])
    ax.set_ylabel("billion yen")
    ax.set_title("Monthly claims (settled the following month)")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    return fig


def plot_sweep(sweep: OperatorSweep) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([p.value for p in sweep.points], [p.measured for p in sweep.points], "o-")
    ax.axhline(sweep.target.value, color="C3", ls="--", label=sweep.target.text)
    ax.set_xlabel(sweep.field)
    ax.set_ylabel(sweep.target.metric)
    ax.legend(fontsize=7)
    return fig


def plot_hil(hil: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 3.0))
    ax.hist(hil["latencies_ms"], bins=30)
    ax.set_xlabel("batch decision latency (ms), measured")
    ax.set_title("Operators in the loop")
    return fig


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as stream:
        if not rows:
            return
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return value


def write_operator_outputs(
    out: Path,
    run: OperatorRun,
    sweep: OperatorSweep | None = None,
    hil: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Write the operator CSVs and plots into ``out``; the summary and the HTML section."""
    out.mkdir(parents=True, exist_ok=True)
    table = hourly_table(run)
    labels = hour_labels(run.scenario)
    with (out / "operators.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["hour", *table])
        for h, label in enumerate(labels):
            writer.writerow([label, *(_cell(float(c[h])) for c in table.values())])
    services = service_table(run)
    _write_rows(out / "operator_services.csv", services)
    settlements = monthly_settlements(run)
    _write_rows(out / "operator_settlements.csv", settlements)
    summary = summarize_operators(run)
    summary["settlements"] = settlements
    figures = {
        "op_traffic": plot_traffic(run, table),
        "op_latency": plot_latency(run, table),
        "op_backlog": plot_backlog(run, table),
        "op_points": plot_points(run),
        "op_settlement": plot_settlement(settlements),
    }
    sweep_dict = None
    if sweep is not None:
        figures["op_sweep"] = plot_sweep(sweep)
        sweep_dict = sweep.as_dict()
        summary["sweep"] = sweep_dict
    if hil is not None:
        summary["hil"] = {k: v for k, v in hil.items() if k != "latencies_ms"}
        if hil.get("latencies_ms"):
            figures["op_hil"] = plot_hil(hil)
    plots = {name: _data_uri(fig, out / f"{name}.png") for name, fig in figures.items()}
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.Undefined)
    largest = sorted(services, key=lambda r: -r["reports"])[:15]
    html = environment.from_string(SECTION).render(
        s=summary, plots=plots, services=largest, sweep=sweep_dict, hil=hil, fmt=_fmt
    )
    return summary, html
