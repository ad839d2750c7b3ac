"""The demand: card holders over time, the daily intent curve, and its spread over the hours.

Everything here is the expected value (no randomness): the engine draws the actual cohorts
around it. The same curve feeds the load replay through :func:`arrival_curve`.
"""

from __future__ import annotations

import itertools
import math
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import numpy.typing as npt

from .scenario import Channel, Population, Scenario

__all__ = ["JST", "arrival_curve", "daily_intents", "holders_on", "hourly_weights"]

JST = timezone(timedelta(hours=9), "JST")
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


def intent_rate(scenario: Scenario, day: date) -> float:
    """Daily chance that an eligible holder who has not applied yet decides to apply on ``day``.

    A base rate, a launch peak that decays exponentially, a weekend factor and the campaign's
    events (point period start, deadline rushes) multiplied in.
    """
    campaign, demand = scenario.campaign, scenario.demand
    if not campaign.signup_opens <= day <= campaign.applications_close:
        return 0.0
    since_launch = (day - campaign.signup_opens).days
    launch = 1 + demand.launch_peak * math.exp(-since_launch / demand.launch_decay_days)
    weekend = demand.weekend_factor if day.weekday() >= 5 else 1.0
    return min(1.0, demand.base_daily_rate * launch * weekend * campaign.multiplier(day))


def daily_intents(scenario: Scenario) -> Floats:
    """Expected nationwide holders deciding to apply, for each day of the run.

    The eligible pool is ``apply_share`` of the card holders on that day; each day a share of
    those who have not yet decided do so. The pool is depleted from the sign-up opening, even
    when the run starts later, so a run over a late window sees the right remaining pool.
    """
    run = scenario.run
    first = min(scenario.campaign.signup_opens, run.start)
    decided = 0.0
    result = np.zeros(run.days)
    day = first
    while day <= run.end:
        eligible = scenario.demand.apply_share * holders_on(scenario.population, day)
        today = max(0.0, eligible - decided) * intent_rate(scenario, day)
        decided += today
        if day >= run.start:
            result[(day - run.start).days] = today
        day += timedelta(days=1)
    return result


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
