"""What a load test writes: ``stats.json``, ``stats.csv``, ``loadtest.png``, ``report.md``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt

__all__ = ["entry_figures", "write_report"]


def entry_figures(entry: Any, seconds: float) -> dict[str, Any]:
    """A Locust StatsEntry as plain figures: requests, failures, p50/p95/p99 ms, rps."""
    requests = int(entry.num_requests)
    failures = int(entry.num_failures)

    def pct(q: float) -> float | None:
        return float(entry.get_response_time_percentile(q)) if requests else None

    return {
        "requests": requests,
        "failures": failures,
        "error_rate": failures / requests if requests else 0.0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": float(entry.avg_response_time) if requests else None,
        "max_ms": float(entry.max_response_time) if requests else None,
        "rps": requests / seconds if seconds > 0 else 0.0,
    }


def summary(outcome: Any, scenario: str, max_error_rate: float) -> dict[str, Any]:
    seconds = max(outcome.finished - outcome.started, 1e-9)
    total = entry_figures(outcome.total, seconds)
    stages = {name: entry_figures(e, seconds) for name, e in outcome.stage_entries().items()}
    steps = {name: entry_figures(e, seconds) for name, e in sorted(outcome.entries.items())}
    passed = total["requests"] > 0 and total["error_rate"] <= max_error_rate
    return {
        "scenario": scenario,
        "platform": outcome.config.platform_url,
        "mode": outcome.config.mode,
        "workers": outcome.workers,
        "stages_run": list(outcome.config.stages),
        "plan": outcome.plan.as_dict(),
        "wall_s": round(seconds, 3),
        "cards_issued": outcome.cards_issued,
        "cards_reused": outcome.cards_reused,
        "total": total,
        "stages": stages,
        "requests": steps,
        "errors": outcome.errors,
        "max_error_rate": max_error_rate,
        "passed": passed,
        "timeline": outcome.timeline,
    }


def write_report(out: Path, figures: dict[str, Any]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "json": out / "stats.json",
        "csv": out / "stats.csv",
        "png": out / "loadtest.png",
        "report": out / "report.md",
    }
    files["json"].write_text(json.dumps(figures, indent=1, default=_plain) + "\n")
    _write_csv(files["csv"], figures)
    _plot(files["png"], figures["timeline"], list(figures["stages"]))
    files["report"].write_text(_markdown(figures, files["png"].name))
    return files


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


_COLUMNS = ["requests", "failures", "error_rate", "p50_ms", "p95_ms", "p99_ms", "mean_ms",
            "max_ms", "rps"]  # fmt: skip


def _write_csv(path: Path, figures: dict[str, Any]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "name", *_COLUMNS])
        for kind, rows in (("stage", figures["stages"]), ("request", figures["requests"])):
            for name, row in rows.items():
                writer.writerow([kind, name, *(_cell(row[c]) for c in _COLUMNS)])
        writer.writerow(["total", "all", *(_cell(figures["total"][c]) for c in _COLUMNS)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _plot(path: Path, timeline: list[dict[str, Any]], stages: list[str]) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    t = [row["t_s"] for row in timeline]
    users = [row["users"] if row["users"] is not None else math.nan for row in timeline]
    top.step(t, users, where="post", color="tab:blue", label="users")
    top.set_ylabel("users")
    top.set_ylim(bottom=0)
    right = top.twinx()
    right.plot(t, [row["rps"] for row in timeline], color="tab:orange", label="requests/s")
    right.plot(t, [row["failures_per_s"] for row in timeline], color="tab:red", label="failures/s")
    right.set_ylabel("per second")
    right.set_ylim(bottom=0)
    handles = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    top.legend(handles=handles, loc="upper left", fontsize="small")
    top.set_title("users and throughput")
    for key, label in [("p95_ms", "all")] + [(f"{s}_p95_ms", s) for s in stages]:
        values = [row.get(key) if row.get(key) is not None else math.nan for row in timeline]
        bottom.plot(t, values, marker=".", label=label)
    bottom.set_ylabel("p95 (ms)")
    bottom.set_xlabel("seconds into the run")
    bottom.legend(loc="upper left", fontsize="small")
    bottom.set_title("p95 latency per second")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _markdown(figures: dict[str, Any], png: str) -> str:
    plan = figures["plan"]
    total = figures["total"]
    verdict = "PASSED" if figures["passed"] else "FAILED"
    lines = [
        f"# Load test: {figures['scenario']} against {figures['platform']}",
        "",
        f"**{verdict}**: error rate {total['error_rate']:.2%} "
        f"(limit {figures['max_error_rate']:.2%}), {total['requests']:,} requests.",
        "",
        f"- replayed {plan['hours']:g} h from {plan['start']} compressed x{plan['compress']:g} "
        f"into {plan['duration_s']} s ({figures['wall_s']:.1f} s wall)",
        f"- peak demand {plan['peak_people_per_hour']:,.0f} people/h; one user brings a holder "
        f"every {plan['pacing_s']:g} s; at most {plan['max_users']} users, so the curve is "
        f"scaled x{plan['scale']:.3g} (one user ≈ {plan['people_per_user']:,.0f} people/h of "
        "the scenario)",
        f"- mode {figures['mode']}, {figures['workers']} load process(es); "
        f"{figures['cards_issued']:,} cards issued, {figures['cards_reused']:,} reused",
        "",
        "| stage / request | requests | failures | p50 ms | p95 ms | p99 ms | rps |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [(f"**{k}**", v) for k, v in figures["stages"].items()]
    rows += [(k, v) for k, v in figures["requests"].items()]
    rows.append(("**total**", total))
    for name, row in rows:
        lines.append(
            f"| {name} | {row['requests']:,} | {row['failures']:,} | {_ms(row['p50_ms'])} | "
            f"{_ms(row['p95_ms'])} | {_ms(row['p99_ms'])} | {row['rps']:.1f} |"
        )
    if figures["errors"]:
        lines += ["", "## Errors", "", "| error | count |", "| --- | ---: |"]
        lines += [f"| {name} | {n:,} |" for name, n in figures["errors"].items()]
    lines += ["", f"![users, throughput and p95 over time]({png})", ""]
    return "\n".join(lines)
