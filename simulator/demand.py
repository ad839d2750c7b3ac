"""The demand: card holders over time, the daily intent curve, and its spread over the hours.

Everything here is the expected value (no randomness): the engine draws the actual cohorts
around it. The same curve feeds the load replay through :func:`arrival_curve`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import numpy.typing as npt

from mynahil.timezone import JST

from .scenario import Channel, Demand, Population, Scenario

__all__ = [
    "DemandCurve",
    "arrival_curve",
    "daily_intents",
    "demand_curve",
    "eligible_on",
    "holders_on",
    "hourly_weights",
]

Floats = npt.NDArray[np.float64]


def holders_on(population: Population, day: date) -> float:
    """Nationwide card holders on ``day``: linear between the scenario's dates, flat outside."""
    points = population.card_holders
    if day <= points[0][0]:
        return points[0][1]
    for (d0, h0), (d1, h1) in itertools.pairwise(points):
        if day <= d1:
            return h0 + (h1 - h0) * (day - d0).days / (d1 - d0).days
    return points[-1][1]


def eligible_on(scenario: Scenario, day: date) -> float:
    """Card holders who may take part on ``day``: the card supply, capped by the cards applied
    for before the campaign's card deadline (if it has one)."""
    holders = holders_on(scenario.population, day)
    cap = scenario.campaign.cards_applied_at_deadline
    return holders if cap is None else min(holders, cap)


def awareness(demand: Demand, days_open: int) -> float:
    """Share of the eligible who know about the campaign ``days_open`` days after it opened."""
    start = demand.awareness_start
    return 1 - (1 - start) * math.exp(-days_open / demand.awareness_growth_days)


def intent_rate(scenario: Scenario, day: date) -> float:
    """Daily chance that an eligible holder who has not reserved yet reserves on ``day``.

    A base rate times awareness (growing from the opening), a launch peak that decays
    exponentially, a weekend factor and the campaign's events (point period start, rushes).
    """
    campaign, demand = scenario.campaign, scenario.demand
    if not campaign.signup_opens <= day <= campaign.applications_close:
        return 0.0
    since_launch = (day - campaign.signup_opens).days
    launch = 1 + demand.launch_peak * math.exp(-since_launch / demand.launch_decay_days)
    weekend = demand.weekend_factor if day.weekday() >= 5 else 1.0
    rate = demand.base_daily_rate * awareness(demand, since_launch) * launch * weekend
    return min(1.0, rate * campaign.multiplier(day, "reservations"))


def application_rate(scenario: Scenario, day: date) -> float:
    """Daily chance that a holder with a MyKey ID who has not applied yet applies on ``day``."""
    campaign, demand = scenario.campaign, scenario.demand
    if not campaign.signup_opens <= day <= campaign.applications_close:
        return 0.0
    since_launch = (day - campaign.signup_opens).days
    # The keen launch crowd does both steps in one sitting: the launch peak lifts this too.
    launch = 1 + demand.launch_peak * math.exp(-since_launch / demand.launch_decay_days)
    weekend = demand.weekend_factor if day.weekday() >= 5 else 1.0
    rate = demand.application_rate * launch * weekend
    return min(1.0, rate * campaign.multiplier(day, "applications"))


@dataclass(frozen=True)
class DemandCurve:
    """Expected nationwide counts per day from ``first`` on: the two steps and the supply."""

    first: date
    reservations: Floats  # new MyKey IDs per day
    applications: Floats  # new point applications per day
    eligible: Floats  # apply_share x card holders (capped) on the day

    def cumulative(self, kind: str, day: date) -> float:
        """Count of ``kind`` ("reservations"/"applications") from the opening to ``day``."""
        index = (day - self.first).days
        series = self.reservations if kind == "reservations" else self.applications
        if index < 0:
            return 0.0
        return float(series[: index + 1].sum())


def demand_curve(scenario: Scenario, last: date | None = None) -> DemandCurve:
    """The two-step demand, from the sign-up opening (or the run start) to ``last``.

    The eligible pool is ``apply_share`` of the (capped) card holders of the day; each day a
    share :func:`intent_rate` of those who have not reserved yet reserve, and a share
    :func:`application_rate` of those who reserved but have not applied apply.
    """
    run = scenario.run
    first = min(scenario.campaign.signup_opens, run.start)
    last = last or run.end
    days = (last - first).days + 1
    reservations = np.zeros(max(days, 0))
    applications = np.zeros(max(days, 0))
    eligible = np.zeros(max(days, 0))
    reserved = applied = 0.0
    share = scenario.demand.apply_share
    for i in range(days):
        day = first + timedelta(days=i)
        pool = share * eligible_on(scenario, day)
        eligible[i] = pool
        new = max(0.0, pool - reserved) * intent_rate(scenario, day)
        reserved += new
        done = max(0.0, reserved - applied) * application_rate(scenario, day)
        applied += done
        reservations[i] = new
        applications[i] = done
    return DemandCurve(first, reservations, applications, eligible)


def daily_intents(scenario: Scenario) -> Floats:
    """Expected nationwide holders who come to apply, for each day of the run.

    These are the second step (applications) of :func:`demand_curve`: each such holder does
    the card read and PIN at a channel (reservation and application in one sitting are
    ``pin.entries_per_application`` entries). The pool is depleted from the sign-up opening,
    even when the run starts later, so a run over a late window sees the right remaining pool.
    """
    run = scenario.run
    curve = demand_curve(scenario)
    offset = (run.start - curve.first).days
    return np.asarray(curve.applications[offset : offset + run.days])


def hourly_weights(scenario: Scenario, channel: Channel, day: date) -> Floats:
    """How the channel's arrivals of ``day`` spread over its 24 hours (sums to 1, or all 0).

    Self-service devices follow the demand's hourly profile; procedure spots the same profile
    restricted to their opening hours (a closed day gets zeros: the engine carries its people
    over to the next open day).
    """
    profile = np.asarray(scenario.demand.hourly_profile, dtype=np.float64)
    if channel.station is not None:
        hours = channel.station.hours
        if not hours.open_on(day):
            return np.zeros(24)
        profile = profile * np.array([hours.open_fraction(h) for h in range(24)])
        if profile.sum() <= 0:  # open only in hours the profile ignores: spread evenly
            profile = np.array([hours.open_fraction(h) for h in range(24)])
    total = profile.sum()
    return profile / total if total > 0 else np.zeros(24)


def arrival_curve(
    scenario: Scenario, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """Expected new applicants per hour nationwide, for each hour in [start, end) (JST).

    For the load replay: it is the demand, before queues, failures and returns reshape it.
    Naive datetimes are taken as JST; hours outside the run are 0.
    """
    if start.tzinfo is None:
        start = start.replace(tzinfo=JST)
    if end.tzinfo is None:
        end = end.replace(tzinfo=JST)
    intents = daily_intents(scenario)
    hourly = {
        channel.name: {d: hourly_weights(scenario, channel, d) for d in scenario.run.dates()}
        for channel in scenario.channels
    }
    moment = start.astimezone(JST).replace(minute=0, second=0, microsecond=0)
    curve: list[tuple[datetime, float]] = []
    while moment < end:
        day = moment.date()
        people = 0.0
        if scenario.run.start <= day <= scenario.run.end:
            today = intents[(day - scenario.run.start).days]
            for channel in scenario.channels:
                people += today * channel.share * hourly[channel.name][day][moment.hour]
        curve.append((moment, people))
        moment += timedelta(hours=1)
    return curve


def run_start(scenario: Scenario) -> datetime:
    return datetime.combine(scenario.run.start, time(0), JST)
