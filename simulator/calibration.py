"""Simulated against published figures: the round-1 application counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PUBLISHED", "CalibrationRow", "calibration_check"]


@dataclass(frozen=True)
class Published:
    label: str
    first_day: str  # ISO dates: the count is applications from first_day to last_day
    last_day: str
    count: int
    source: str


#: Published round-1 application counts the bundled scenario is calibrated against.
PUBLISHED = (
    Published(
        "applications on launch day", "2020-07-01", "2020-07-01", 210_000,
        "MIC press release, about 210,000 on 2020-07-01",
    ),
    Published(
        "applications in the first five days", "2020-07-01", "2020-07-05", 776_160,
        "MIC, 776,160 from 2020-07-01 to 2020-07-05",
    ),
    Published(
        "applications by the end of 2021", "2020-07-01", "2021-12-31", 25_320_000,
        "MIC, 25.32 million applications by 2021-12-31",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class CalibrationRow:
    label: str
    period: str
    published: int
    simulated: int | None  # None: the run does not cover the period
    tolerance: float

    @property
    def error(self) -> float | None:
        if self.simulated is None:
            return None
        return self.simulated / self.published - 1

    @property
    def ok(self) -> bool | None:
        error = self.error
        return None if error is None else abs(error) <= self.tolerance


def _count_between(cumulative: Mapping[str, int], first: str, last: str) -> int | None:
    days = sorted(cumulative)
    if not days or first < days[0] or last > days[-1]:
        return None
    before = [d for d in days if d < first]
    start = cumulative[before[-1]] if before else 0
    return cumulative[last] - start


def calibration_check(summary: Mapping[str, Any], tolerance: float = 0.10) -> list[CalibrationRow]:
    """Compare a run's ``cumulative_applications`` with the published counts (±``tolerance``).

    A run that starts later than a period's first day cannot be compared for that period.
    """
    cumulative: Mapping[str, int] = summary["cumulative_applications"]
    rows = []
    for figure in PUBLISHED:
        simulated = None
        if cumulative and min(cumulative) <= figure.first_day:
            simulated = _count_between(cumulative, figure.first_day, figure.last_day)
        period = (
            figure.first_day
            if figure.first_day == figure.last_day
            else (f"{figure.first_day}..{figure.last_day}")
        )
        rows.append(CalibrationRow(figure.label, period, figure.count, simulated, tolerance))
    return rows
