"""Calibration: fit the demand's parameters to published figures, with a holdout.

The procedure (``mynahil calibrate SCENARIO --data FILE``):

1. The scenario's ``[calibration]`` table names, before any fitting, the parameters to fit
   (dotted paths: ``demand.*`` or ``campaign.events.KEY.multiplier``), the kinds of rows
   that are targets, and ``holdout_after``: rows dated after it are the holdout and never
   touch the fit. Card counts are inputs (the supply), never targets.
2. The model fitted is the expected two-step demand of :func:`mynahil.simulator.demand.demand_curve`
   (reservations, then applications; card holders as the ceiling) -- deterministic, so one
   evaluation is milliseconds and the stochastic simulation is not needed inside the loop.
3. ``scipy.optimize.least_squares`` minimises the squared log errors of the fit rows within
   fixed bounds per parameter, from ``starts`` random starting points drawn with ``seed``
   (not from the values in the file): the same data and settings give the same fit.
4. Every row (fit and holdout) is then reported with its error.

No parameter is tied to a single date: each is a rate, a share, a time constant or the
multiplier of a campaign event whose dates are facts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from .demand import DemandCurve, demand_curve
from .published import PublishedRow, load_published
from .scenario import CalibrationSpec, Scenario, ScenarioError

__all__ = [
    "BOUNDS",
    "CalibrationResult",
    "RowError",
    "calibrate",
    "calibration_check",
    "measure_shares",
    "predict_rows",
    "published_for",
    "update_scenario_text",
    "with_parameters",
]

#: Where each kind of parameter may go; log-scaled ones are searched in log space.
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "demand.apply_share": (0.05, 1.0, False),
    "demand.base_daily_rate": (1e-4, 0.3, True),
    "demand.awareness_start": (0.01, 1.0, True),
    "demand.awareness_growth_days": (1.0, 720.0, True),
    "demand.launch_peak": (0.0, 100.0, False),
    "demand.launch_decay_days": (0.2, 60.0, True),
    "demand.application_rate": (1e-3, 1.0, True),
    "event": (0.05, 30.0, True),
}
_EVENT = re.compile(r"^campaign\.events\.(?P<key>[A-Za-z0-9_-]+)\.multiplier$")


def _bounds(path: str) -> tuple[float, float, bool]:
    if _EVENT.match(path):
        return BOUNDS["event"]
    if path in BOUNDS:
        return BOUNDS[path]
    allowed = ", ".join([p for p in BOUNDS if p != "event"] + ["campaign.events.KEY.multiplier"])
    raise ScenarioError(f"calibration.fit: {path!r} cannot be fitted (use {allowed})")


def current_value(scenario: Scenario, path: str) -> float:
    match = _EVENT.match(path)
    if match:
        for event in scenario.campaign.events:
            if event.key == match["key"]:
                return event.multiplier
        raise ScenarioError(f"calibration.fit: no campaign event with key {match['key']!r}")
    _bounds(path)
    return float(getattr(scenario.demand, path.removeprefix("demand.")))


def with_parameters(scenario: Scenario, values: Mapping[str, float]) -> Scenario:
    """The scenario with fitted values set (no re-validation: the bounds keep them valid)."""
    demand = scenario.demand
    events = list(scenario.campaign.events)
    for path, value in values.items():
        match = _EVENT.match(path)
        if match:
            events = [
                replace(e, multiplier=float(value)) if e.key == match["key"] else e for e in events
            ]
        else:
            changes: dict[str, Any] = {path.removeprefix("demand."): float(value)}
            demand = replace(demand, **changes)
    campaign = replace(scenario.campaign, events=tuple(events))
    return replace(scenario, demand=demand, campaign=campaign)


def _predict(curve: DemandCurve, scenario: Scenario, row: PublishedRow) -> float:
    if row.kind in ("applications", "reservations"):
        return curve.cumulative(row.kind, row.day)
    for measure in scenario.campaign.measures:
        if measure.kind == row.kind:
            return measure.share_of_applicants * curve.cumulative("applications", row.day)
    raise ScenarioError(f"{row.kind}: no measure of the scenario has this kind")


@dataclass(frozen=True)
class RowError:
    row: PublishedRow
    simulated: float
    role: str  # "fit" or "holdout"

    @property
    def error(self) -> float:
        return self.simulated / self.row.value - 1


def predict_rows(
    scenario: Scenario, rows: Sequence[PublishedRow], spec: CalibrationSpec | None = None
) -> list[RowError]:
    """The expected demand at each target row, with its role (fit or holdout)."""
    kinds = spec.kinds if spec else ("applications", "reservations")
    targets = [r for r in rows if r.kind in kinds]
    if not targets:
        return []
    curve = demand_curve(scenario, max([r.day for r in targets] + [scenario.run.end]))
    cut = spec.holdout_after if spec else date.max
    return [
        RowError(row, _predict(curve, scenario, row), "fit" if row.day <= cut else "holdout")
        for row in targets
    ]


@dataclass
class CalibrationResult:
    scenario: Scenario  # with the fitted values
    spec: CalibrationSpec
    values: dict[str, float]  # fitted
    initial: dict[str, float]
    rows: list[RowError]
    cost: float
    evaluations: int
    seconds: float

    def worst(self, role: str) -> float | None:
        errors = [abs(r.error) for r in self.rows if r.role == role]
        return max(errors) if errors else None


def _spec(scenario: Scenario) -> CalibrationSpec:
    if scenario.calibration is None:
        raise ScenarioError("calibration: the scenario has no [calibration] table")
    return scenario.calibration


def calibrate(scenario: Scenario, data: Path | str | None = None) -> CalibrationResult:
    """Fit the scenario's ``calibration.fit`` parameters on its fit rows (see module doc)."""
    import time

    from scipy.optimize import least_squares

    started = time.perf_counter()
    spec = _spec(scenario)
    if data is None:
        base = scenario.folder or Path()
        data = base / spec.data
    rows = load_published(data)
    paths = list(spec.fit)
    bounds = [_bounds(p) for p in paths]
    initial = {p: current_value(scenario, p) for p in paths}
    fit_rows = [r for r in rows if r.kind in spec.kinds and r.day <= spec.holdout_after]
    if paths and len(fit_rows) < len(paths):
        raise ScenarioError(
            f"calibration.fit: {len(paths)} parameters but only {len(fit_rows)} fit rows "
            f"on or before {spec.holdout_after}"
        )

    def decode(x: np.ndarray) -> dict[str, float]:
        return {
            p: float(math.exp(v) if log else v)
            for p, v, (_, _, log) in zip(paths, x, bounds, strict=True)
        }

    def encode(values: Mapping[str, float]) -> np.ndarray:
        return np.array(
            [
                math.log(min(max(values[p], lo), hi)) if log else min(max(values[p], lo), hi)
                for p, (lo, hi, log) in zip(paths, bounds, strict=True)
            ]
        )

    lower = encode({p: lo for p, (lo, _, _) in zip(paths, bounds, strict=True)})
    upper = encode({p: hi for p, (_, hi, _) in zip(paths, bounds, strict=True)})
    evaluations = 0

    def residuals(x: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        evaluations += 1
        variant = with_parameters(scenario, decode(x))
        predicted = predict_rows(variant, fit_rows, None)
        return np.array([math.log(max(p.simulated, 1.0) / p.row.value) for p in predicted])

    best_values = dict(initial)
    best_cost = math.inf
    if paths:
        rng = np.random.default_rng(spec.seed)
        # Starting points depend on the seed only (not on the values in the file), so
        # calibrating a scenario that already holds fitted values gives the same fit again.
        starts = [lower + rng.random(len(paths)) * (upper - lower) for _ in range(spec.starts)]
        eps = 1e-9
        for point in starts:
            x0 = np.clip(point, lower + eps, upper - eps)
            found = least_squares(residuals, x0, bounds=(lower, upper), x_scale="jac")
            if found.cost < best_cost - 1e-12:
                best_cost, best_values = float(found.cost), decode(found.x)
    fitted = with_parameters(scenario, best_values)
    predicted = predict_rows(fitted, rows, spec)
    if not paths:
        best_cost = 0.5 * sum(math.log(r.simulated / r.row.value) ** 2 for r in predicted)
    return CalibrationResult(
        scenario=fitted,
        spec=spec,
        values=best_values,
        initial=initial,
        rows=predicted,
        cost=best_cost,
        evaluations=evaluations,
        seconds=time.perf_counter() - started,
    )


# -- writing the fitted values back into the scenario file -----------------------------------


def _significant(value: float, digits: int = 4) -> str:
    if value == 0:
        return "0.0"
    text = f"{value:.{digits}g}"
    return text if any(c in text for c in ".e") else text + ".0"


def update_scenario_text(text: str, values: Mapping[str, float]) -> str:
    """Set fitted values in a scenario's TOML text, keeping its layout and comments.

    ``demand.NAME`` replaces (or adds) ``NAME = ...`` in the ``[demand]`` table;
    ``campaign.events.KEY.multiplier`` the ``multiplier`` of the event with ``key = "KEY"``.
    """
    lines = text.splitlines(keepends=True)
    for path, value in values.items():
        rendered = _significant(value)
        match = _EVENT.match(path)
        if match:
            lines = _set_in_event(lines, match["key"], rendered, path)
        else:
            lines = _set_in_table(lines, "demand", path.removeprefix("demand."), rendered, path)
    return "".join(lines)


def _blocks(lines: list[str]) -> list[tuple[str, int, int]]:
    """(header, first line, end line) of each table in the file."""
    headers = [(i, line.strip()) for i, line in enumerate(lines) if re.match(r"^\s*\[", line)]
    result = []
    for n, (i, header) in enumerate(headers):
        end = headers[n + 1][0] if n + 1 < len(headers) else len(lines)
        result.append((header.split("#")[0].strip(), i, end))
    return result


def _replace_key(lines: list[str], start: int, end: int, key: str, rendered: str) -> bool:
    pattern = re.compile(rf"^(\s*{re.escape(key)}\s*=\s*)([^#\n]*?)(\s*(#.*)?)$")
    for i in range(start + 1, end):
        found = pattern.match(lines[i].rstrip("\n"))
        if found:
            comment = found[3] or ""
            lines[i] = f"{found[1]}{rendered}{comment}\n"
            return True
    return False


def _set_in_table(lines: list[str], table: str, key: str, rendered: str, path: str) -> list[str]:
    for header, start, end in _blocks(lines):
        if header == f"[{table}]":
            if not _replace_key(lines, start, end, key, rendered):
                lines.insert(start + 1, f"{key} = {rendered}\n")
            return lines
    raise ScenarioError(f"{path}: the scenario file has no [{table}] table to write it into")


def _set_in_event(lines: list[str], key: str, rendered: str, path: str) -> list[str]:
    for header, start, end in _blocks(lines):
        if header == "[[campaign.events]]" and any(
            re.match(rf'^\s*key\s*=\s*"{re.escape(key)}"', lines[i]) for i in range(start, end)
        ):
            if not _replace_key(lines, start, end, "multiplier", rendered):
                raise ScenarioError(f"{path}: the event has no multiplier line")
            return lines
    raise ScenarioError(f"{path}: no [[campaign.events]] with key = {key!r} in the file")


# -- a run's simulated figures against the published rows ------------------------------------


@dataclass(frozen=True)
class CalibrationRow:
    """A stochastic run's count at a published row (the report's calibration table)."""

    label: str
    period: str
    published: int
    simulated: int | None  # None: the run does not cover the date
    tolerance: float
    role: str = ""
    source: str = ""
    url: str = ""

    @property
    def error(self) -> float | None:
        if self.simulated is None:
            return None
        return self.simulated / self.published - 1

    @property
    def ok(self) -> bool | None:
        error = self.error
        return None if error is None else abs(error) <= self.tolerance


def measure_shares(scenario: Scenario) -> dict[str, float]:
    """Each measure's published kind and its share of the applicants."""
    return {m.kind: m.share_of_applicants for m in scenario.campaign.measures}


def published_for(scenario: Scenario) -> tuple[tuple[PublishedRow, ...], date | None]:
    """The scenario's published figures (``calibration.data``) and its holdout cut-off."""
    spec = scenario.calibration
    if spec is None:
        return (), None
    return load_published((scenario.folder or Path()) / spec.data), spec.holdout_after


def calibration_check(
    summary: Mapping[str, Any],
    rows: Sequence[PublishedRow] = (),
    holdout_after: date | None = None,
    fit_tolerance: float = 0.10,
    holdout_tolerance: float = 0.20,
    measures: Mapping[str, float] | None = None,
) -> list[CalibrationRow]:
    """A run's ``cumulative_applications`` at each published applications row.

    The run counts completed applications (after card reads, PINs and the platform), from
    its first day; rows before the run's first day or after its last cannot be compared.
    ``measures`` (kind -> share of applicants) adds the rows of a round's measures.
    """
    cumulative: Mapping[str, int] = summary["cumulative_applications"]
    shares = {"applications": 1.0, **(measures or {})}
    result = []
    first = min(cumulative) if cumulative else ""
    for row in rows:
        if row.kind not in shares:
            continue
        key = row.day.isoformat()
        count = cumulative.get(key) if first and first <= key else None
        simulated = None if count is None else round(count * shares[row.kind])
        role = "holdout" if holdout_after is not None and row.day > holdout_after else "fit"
        result.append(
            CalibrationRow(
                label=f"{row.kind} by {key}",
                period=key,
                published=round(row.value),
                simulated=simulated,
                tolerance=holdout_tolerance if role == "holdout" else fit_tolerance,
                role=role,
                source=row.source,
                url=row.url,
            )
        )
    return result
