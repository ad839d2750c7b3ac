"""What-if sweeps: a scenario field over a range, and the smallest value that meets a target.

``--sweep servers=2..32`` (a range of whole numbers), ``--sweep window_staff=1,2,3,5`` (a list),
any numeric field by dotted path (``channels.kiosk.service_minutes=5,7,9``).
``--target "platform_p95<2s@2020-07-01"``: a metric, ``<`` or ``<=`` or ``>`` or ``>=``, a value
with an optional unit (ms, s, min, h, %), and optionally ``@DATE`` or ``@FIRST..LAST`` for the
days it must hold on (default: the whole run). The metric's worst hour in those days counts
(its sum for counts such as ``lockouts``).
"""

from __future__ import annotations

import math
import re
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from .engine import Progress, SimulationResult, run, with_platform
from .metrics import hourly_table
from .scenario import ALIASES, STATION_CHANNELS, Scenario, ScenarioError, set_field

__all__ = [
    "METRICS",
    "Sweep",
    "SweepOutcome",
    "SweepPoint",
    "Target",
    "parse_sweep",
    "parse_target",
    "run_sweep",
]

Floats = npt.NDArray[np.float64]

#: Target metric -> (hourly column, unit of that column, how hours combine).
METRICS: dict[str, tuple[str, str, str]] = {
    "platform_p95": ("platform_p95_s", "s", "max"),
    "platform_wait_p95": ("platform_wait_p95_s", "s", "max"),
    "platform_utilisation": ("platform_utilisation", "ratio", "max"),
    "platform_errors": ("platform_errors", "count", "sum"),
    "lockouts": ("lockouts", "count", "sum"),
    "abandoned": ("abandoned", "count", "sum"),
    "lost": ("lost", "count", "sum"),
}
for _station in STATION_CHANNELS:
    for _q in (50, 95, 99):
        _short = "window" if _station == "municipal_window" else _station
        METRICS[f"{_short}_p{_q}"] = (f"wait_p{_q}_{_station}_min", "min", "max")
    METRICS[f"{'window' if _station == 'municipal_window' else _station}_queue"] = (
        f"queue_{_station}",
        "count",
        "max",
    )

_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Sweep:
    field: str
    values: tuple[float, ...]


def parse_sweep(text: str) -> Sweep:
    """``FIELD=A..B`` (whole numbers A to B) or ``FIELD=A,B,C``."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise ScenarioError(f"--sweep {text!r}: use FIELD=A..B or FIELD=A,B,C")
    try:
        if ".." in spec:
            low, high = (float(x) for x in spec.split(".."))
            if not (low.is_integer() and high.is_integer()) or high < low:
                raise ValueError
            values: tuple[float, ...] = tuple(float(v) for v in range(int(low), int(high) + 1))
        else:
            values = tuple(sorted({float(x) for x in spec.split(",")}))
    except ValueError:
        raise ScenarioError(
            f"--sweep {text!r}: use FIELD=A..B (whole, A<=B) or FIELD=A,B,C"
        ) from None
    if len(values) > 200:
        raise ScenarioError(f"--sweep {text!r}: at most 200 values")
    return Sweep(ALIASES.get(name, name), values)


@dataclass(frozen=True)
class Target:
    text: str
    metric: str
    op: str
    value: float  # in the column's unit
    first: date | None
    last: date | None

    def measure(self, table: dict[str, Floats], scenario: Scenario) -> float:
        """The metric over the target's days, from an hourly table of a run of ``scenario``."""
        column, _, combine = METRICS[self.metric]
        values = table[column]
        start = scenario.run.start
        first = (self.first - start).days if self.first else 0
        last = (self.last - start).days if self.last else scenario.run.days - 1
        chosen = values[max(0, first) * 24 : (last + 1) * 24]
        chosen = chosen[~np.isnan(chosen)]  # hours without traffic; +inf (saturated) stays
        if combine == "sum":
            return float(chosen.sum())
        return float(chosen.max()) if len(chosen) else 0.0

    @property
    def unit(self) -> str:
        """The unit of :meth:`measure` (s, min, ratio or count)."""
        return METRICS[self.metric][1]

    def met(self, measured: float) -> bool:
        return {
            "<": measured < self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            ">=": measured >= self.value,
        }[self.op]


_TARGET = re.compile(
    r"^\s*(?P<metric>[a-z_0-9]+)\s*(?P<op><=|>=|<|>)\s*(?P<value>[0-9.eE+-]+)\s*"
    r"(?P<unit>ms|s|min|h|%)?\s*(?:@\s*(?P<first>\d{4}-\d{2}-\d{2})(?:\.\.(?P<last>\d{4}-\d{2}-\d{2}))?)?\s*$"
)


def parse_target(text: str) -> Target:
    match = _TARGET.match(text)
    if not match:
        raise ScenarioError(f"--target {text!r}: use METRIC<VALUE[UNIT][@DATE[..DATE]]")
    metric = match["metric"]
    if metric not in METRICS:
        raise ScenarioError(
            f"--target {text!r}: unknown metric {metric!r} (use {', '.join(METRICS)})"
        )
    _, column_unit, _ = METRICS[metric]
    try:
        value = float(match["value"])
        first = date.fromisoformat(match["first"]) if match["first"] else None
        last = date.fromisoformat(match["last"]) if match["last"] else first
    except ValueError:
        raise ScenarioError(f"--target {text!r}: bad number or date") from None
    unit = match["unit"]
    if not math.isfinite(value):
        raise ScenarioError(f"--target {text!r}: bad number")
    if unit == "%":
        if column_unit != "ratio":
            raise ScenarioError(f"--target {text!r}: % only applies to utilisation")
        value /= 100
    elif unit:
        if column_unit not in _UNITS:
            raise ScenarioError(f"--target {text!r}: {metric} has no time unit")
        value = value * _UNITS[unit] / _UNITS[column_unit]
    return Target(text, metric, match["op"], value, first, last)


@dataclass(frozen=True)
class SweepPoint:
    value: float
    #: In the metric's unit (``Target.unit``); +inf: saturated (clients time out).
    measured: float
    met: bool | None

    @property
    def saturated(self) -> bool:
        return math.isinf(self.measured)


@dataclass
class SweepOutcome:
    sweep: Sweep
    target: Target | None
    points: list[SweepPoint]

    @property
    def best(self) -> float | None:
        """The smallest swept value that meets the target (None: none does, or no target)."""
        for point in self.points:
            if point.met:
                return point.value
        return None


def run_sweep(
    scenario: Scenario,
    sweep: Sweep,
    target: Target | None,
    *,
    seed: int,
    replications: int,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> SweepOutcome:
    """Run the scenario at each value of the swept field, in increasing order.

    A sweep over a ``platform.`` field reuses one simulation of the holders: the platform
    does not change what they do (its failures are retried the next day).
    """
    scenarios = [set_field(scenario, sweep.field, value) for value in sweep.values]
    base: SimulationResult | None = None
    if sweep.field.startswith("platform."):
        base = run(scenario, seed=seed, replications=replications, executor=executor)
    points = []
    for i, (value, variant) in enumerate(zip(sweep.values, scenarios, strict=True)):
        if base is not None:
            reps = [with_platform(r, variant, variant.platform) for r in base.replications]
            result = SimulationResult(variant, seed, reps)
        else:
            result = run(variant, seed=seed, replications=replications, executor=executor)
        if target is None:
            points.append(SweepPoint(value, math.nan, None))
        else:
            measured = target.measure(hourly_table(result), variant)
            points.append(SweepPoint(value, measured, target.met(measured)))
        if progress:
            progress(i + 1, len(scenarios))
    return SweepOutcome(sweep, target, points)
