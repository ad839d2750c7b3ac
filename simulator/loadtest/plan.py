"""The load plan: a scenario's arrival curve, time-compressed and scaled to what one load
generator can send. Pure arithmetic, no Locust (so it can be tested and imported anywhere).

One curve hour lasts ``3600 / compress`` seconds of the run. The target arrival rate at a
moment of the run is ``people_per_hour x compress / 3600`` holders per second; each Locust
user brings one holder every ``pacing`` seconds, so ``rate x pacing`` users carry it. When the
peak needs more than ``max_users`` users, the whole curve is scaled down by the same factor
(``scale``), keeping its shape: the report states the factor, and what one user stands for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..demand import arrival_curve
from ..scenario import Scenario

__all__ = ["LoadPlan", "Tick", "build_plan", "busiest_hour", "peak_replay"]


@dataclass(frozen=True)
class Tick:
    """One second of the run: the users wanted then, and how fast to get there."""

    second: int
    users: int
    spawn_rate: float
    #: the scenario's (uncompressed, unscaled) demand at that moment, people per hour
    people_per_hour: float


@dataclass(frozen=True)
class LoadPlan:
    start: datetime
    hours: float
    compress: float
    pacing: float
    max_users: int
    #: holders per second sent = scenario holders per second (compressed) x scale
    scale: float
    peak_people_per_hour: float
    ticks: list[Tick] = field(default_factory=list)

    @property
    def duration_s(self) -> int:
        return len(self.ticks)

    @property
    def peak_users(self) -> int:
        return max((t.users for t in self.ticks), default=0)

    @property
    def expected_holders(self) -> int:
        """Holders the plan brings if every user keeps its pace (an upper bound)."""
        return math.ceil(sum(t.users for t in self.ticks) / self.pacing)

    @property
    def people_per_user(self) -> float:
        """How many of the scenario's people per hour (real time) one user stands for."""
        if self.scale <= 0:
            return math.inf
        return 3600 / (self.pacing * self.compress * self.scale)

    def at(self, elapsed: float) -> Tick | None:
        """The tick for ``elapsed`` seconds into the run; None once the run is over."""
        index = int(elapsed)
        if index < 0 or index >= len(self.ticks):
            return None
        return self.ticks[index]

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "hours": self.hours,
            "compress": self.compress,
            "pacing_s": self.pacing,
            "max_users": self.max_users,
            "scale": self.scale,
            "peak_people_per_hour": self.peak_people_per_hour,
            "people_per_user": self.people_per_user,
            "duration_s": self.duration_s,
            "peak_users": self.peak_users,
            "expected_holders": self.expected_holders,
        }


def build_plan(
    scenario: Scenario,
    start: datetime,
    hours: float,
    *,
    compress: float = 3600.0,
    max_users: int = 50,
    pacing: float = 1.0,
) -> LoadPlan:
    """The per-second user counts that replay ``hours`` of the scenario from ``start``."""
    if compress <= 0:
        raise ValueError("--compress must be positive")
    if hours <= 0:
        raise ValueError("--hours must be positive")
    if max_users < 1:
        raise ValueError("--max-users must be at least 1")
    if pacing <= 0:
        raise ValueError("--pacing must be positive")
    curve = arrival_curve(scenario, start, start + timedelta(hours=math.ceil(hours)))
    per_hour = [people for _, people in curve]
    duration = max(1, math.ceil(hours * 3600 / compress))
    seconds_per_hour = 3600 / compress
    # Mean demand over each second of the run (a second may span several curve hours).
    demand = [_mean_over(per_hour, s / seconds_per_hour, (s + 1) / seconds_per_hour)
              for s in range(duration)]  # fmt: skip
    peak = max(demand, default=0.0)
    peak_users_needed = peak * compress / 3600 * pacing
    scale = 1.0 if peak_users_needed <= max_users else max_users / peak_users_needed
    ticks: list[Tick] = []
    previous = 0
    for second, people in enumerate(demand):
        wanted = people * compress / 3600 * pacing * scale
        users = min(max_users, math.ceil(wanted - 1e-9)) if wanted > 0 else 0
        spawn_rate = float(max(1, abs(users - previous)))
        ticks.append(Tick(second, users, spawn_rate, people))
        previous = users
    return LoadPlan(start, hours, compress, pacing, max_users, scale, peak, ticks)


def _mean_over(values: list[float], lo: float, hi: float) -> float:
    """Mean of a piecewise-constant function (one value per unit) over [lo, hi)."""
    total = 0.0
    position = lo
    while position < hi - 1e-12:
        index = int(position)
        end = min(hi, index + 1)
        if 0 <= index < len(values):
            total += values[index] * (end - position)
        position = end
    return total / (hi - lo)


def busiest_hour(scenario: Scenario) -> tuple[datetime, float]:
    """The hour of the scenario's run with the most arrivals: its start (naive, JST, as
    ``--start`` takes it) and its people per hour."""
    first = datetime.combine(scenario.run.start, datetime.min.time())
    last = datetime.combine(scenario.run.end, datetime.min.time()) + timedelta(days=1)
    moment, people = max(arrival_curve(scenario, first, last), key=lambda hour: hour[1])
    return moment.replace(tzinfo=None), float(people)


def peak_replay(scenario: Scenario, *, times: float, seconds: int, pacing: float = 1.0) -> LoadPlan:
    """The scenario's busiest hour at ``times`` its rate, for ``seconds`` of wall time.

    Compressing an hour ``times``-fold is what sends its arrivals ``times`` as fast, so
    ``compress = times``; the run covers the first ``seconds x times`` seconds of the hour
    (the curve is one figure per hour, so any stretch of it has the same rate). Enough users
    are allowed that the plan is never scaled down: the target is the whole ``times``.
    """
    if times <= 0:
        raise ValueError("--times must be positive")
    if seconds < 1:
        raise ValueError("--seconds must be at least 1")
    start, people_per_hour = busiest_hour(scenario)
    hours = min(1.0, seconds * times / 3600)
    users = max(1, math.ceil(people_per_hour * times / 3600 * pacing))
    return build_plan(scenario, start, hours, compress=times, max_users=users, pacing=pacing)
