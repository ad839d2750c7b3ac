"""What-if over the platform's intake: ``--sweep operators.ingestion.workers=1..8`` with a target
such as ``--target "decision_p99<=60s@2020-09-01"`` (99% of the day's reports decided within
60 seconds). The spending and the reports are computed once; only the intake runs per value.

Metrics: ``decision_pNN`` (NN from 1 to 99.9; the percentile of the decision latency over all
reports of the days given, pooled), ``backlog`` (worker-seconds queued, worst hour), ``held``
(reports held at operators, worst hour), ``utilisation`` (worst hour), ``errors`` and
``retries`` (requests, summed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np

from ..queueing import histogram_percentiles
from ..scenario import Scenario, ScenarioError, set_field
from ..sweep import Sweep
from .run import OperatorRun, day_range, rerun_ingestion

__all__ = ["OperatorSweep", "OperatorTarget", "parse_operator_target", "run_operator_sweep"]

_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
_TARGET = re.compile(
    r"^\s*(?P<metric>decision_p(?P<q>\d+(?:\.\d+)?)|backlog|held|utilisation|errors|retries)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<value>[0-9.eE+-]+)\s*(?P<unit>ms|s|min|h|%)?\s*"
    r"(?:@\s*(?P<first>\d{4}-\d{2}-\d{2})(?:\.\.(?P<last>\d{4}-\d{2}-\d{2}))?)?\s*$"
)
METRICS = "decision_pNN, backlog, held, utilisation, errors, retries"


@dataclass(frozen=True)
class OperatorTarget:
    text: str
    metric: str
    op: str
    value: float  # seconds for latencies and backlog, a ratio for utilisation, else a count
    first: date | None
    last: date | None

    def measure(self, run: OperatorRun) -> float:
        out = run.ingestion
        hours = day_range(run, self.first, self.last)
        if self.metric.startswith("decision_p"):
            q = float(self.metric.removeprefix("decision_p")) / 100
            hist = out.latency_hist[hours].sum(axis=0)
            return float(histogram_percentiles(hist, out.edges(), (q,))[0])
        column = {
            "backlog": out.backlog_s, "held": out.held, "utilisation": out.utilisation,
            "errors": out.errors, "retries": out.retries,
        }[self.metric][hours]  # fmt: skip
        if self.metric in ("errors", "retries"):
            return float(column.sum())
        return float(column.max()) if len(column) else 0.0

    def met(self, measured: float) -> bool:
        if np.isnan(measured):
            return False
        return {
            "<": measured < self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            ">=": measured >= self.value,
        }[self.op]


def parse_operator_target(text: str) -> OperatorTarget:
    match = _TARGET.match(text)
    if not match:
        raise ScenarioError(
            f"--target {text!r}: use METRIC<VALUE[UNIT][@DATE[..DATE]] with METRIC one of "
            f'{METRICS}, e.g. "decision_p99<=60s@2020-09-01"'
        )
    metric = match["metric"]
    if match["q"] is not None and not 0 < float(match["q"]) < 100:
        raise ScenarioError(f"--target {text!r}: the percentile must be between 0 and 100")
    try:
        value = float(match["value"])
        first = date.fromisoformat(match["first"]) if match["first"] else None
        last = date.fromisoformat(match["last"]) if match["last"] else first
    except ValueError:
        raise ScenarioError(f"--target {text!r}: bad number or date") from None
    unit = match["unit"]
    timed = metric.startswith("decision_p") or metric == "backlog"
    if unit == "%":
        if metric != "utilisation":
            raise ScenarioError(f"--target {text!r}: % only applies to utilisation")
        value /= 100
    elif unit:
        if not timed:
            raise ScenarioError(f"--target {text!r}: {metric} has no time unit")
        value *= _UNITS[unit]
    return OperatorTarget(text, metric, match["op"], value, first, last)


@dataclass(frozen=True)
class OperatorPoint:
    value: float
    measured: float
    met: bool


@dataclass
class OperatorSweep:
    field: str
    target: OperatorTarget
    points: list[OperatorPoint]

    @property
    def best(self) -> float | None:
        for point in self.points:
            if point.met:
                return point.value
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "target": self.target.text,
            "best": self.best,
            "points": [asdict(p) for p in self.points],
        }


def run_operator_sweep(
    scenario: Scenario,
    base: OperatorRun,
    sweep: Sweep,
    target: OperatorTarget,
    *,
    seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> OperatorSweep:
    """The intake at each value of an ``operators.ingestion.*`` field, same reports."""
    if not sweep.field.startswith("operators.ingestion."):
        raise ScenarioError(
            f"--sweep {sweep.field}: an operator target sweeps operators.ingestion.* fields "
            "(the spending does not depend on the others' intake)"
        )
    points = []
    for i, value in enumerate(sweep.values):
        variant = set_field(scenario, sweep.field, value)
        result = rerun_ingestion(base, variant, seed)
        measured = target.measure(result)
        points.append(OperatorPoint(value, measured, target.met(measured)))
        if progress:
            progress(i + 1, len(sweep.values))
    return OperatorSweep(sweep.field, target, points)
