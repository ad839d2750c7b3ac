"""One region's holders, hour by hour, on a SimPy clock (1 time unit = 1 hour).

Processes: a day planner (the day's expected arrivals per channel and hour), an arrival
process (each hour, one cohort per channel: reads the cards, sends station cohorts to their
spots' inboxes, does the PIN step for holders on their own device), and one process per kind
of procedure spot that takes each cohort from its inbox and advances its queues in steps of
``run.step_minutes``. Holders who leave come back later (a per-day buffer); locked PINs become
municipal-window visits a few days on.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import simpy

from .demand import daily_intents, hourly_weights
from .people import enter_pins, read_cards
from .queueing import StationState, StepResult, bin_edges, station_step, wait_histogram
from .scenario import CHANNELS, STATION_CHANNELS, WINDOW, Scenario, Station

__all__ = ["RegionResult", "simulate_region", "station_edges"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
#: Longest delay, in days, before a holder who left comes back (the geometric tail is cut).
RETURN_HORIZON = 30


def station_edges() -> Floats:
    """Wait histogram edges for procedure spots, in minutes."""
    return bin_edges(60.0)


@dataclass
class RegionResult:
    """Hourly counts for one region and one replication (rows: hours of the run)."""

    region: str
    hours: int
    arrivals: Floats  # (hours, channels) holders arriving: new, returning, sent over
    new_intents: Floats  # (hours,)
    completed: Floats  # (hours, channels) card read and PIN right: ready for the platform
    abandoned: Floats  # (hours, channels) left a queue or turned away at closing
    unreadable: Floats  # (hours, channels) every read failed
    lockouts: Floats  # (hours,)
    window_visits: Floats  # (hours,) locked-out holders arriving at the window
    failed_reads: Floats  # (hours,)
    wrong_pins: Floats  # (hours,)
    lost: Floats  # (hours,) holders who left for good
    queue: Floats  # (hours, stations) mean people waiting
    served: Floats  # (hours, stations)
    wait_sum: Floats  # (hours, stations) minutes
    wait_hist: npt.NDArray[np.float32]  # (hours, stations, bins)
    busy: Floats  # (hours, stations) share of servers busy
    events: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, region: str, hours: int, bins: int) -> RegionResult:
        c, s = len(CHANNELS), len(STATION_CHANNELS)
        return cls(
            region=region,
            hours=hours,
            arrivals=np.zeros((hours, c)),
            new_intents=np.zeros(hours),
            completed=np.zeros((hours, c)),
            abandoned=np.zeros((hours, c)),
            unreadable=np.zeros((hours, c)),
            lockouts=np.zeros(hours),
            window_visits=np.zeros(hours),
            failed_reads=np.zeros(hours),
            wrong_pins=np.zeros(hours),
            lost=np.zeros(hours),
            queue=np.zeros((hours, s)),
            served=np.zeros((hours, s)),
            wait_sum=np.zeros((hours, s)),
            wait_hist=np.zeros((hours, s, bins), dtype=np.float32),
            busy=np.zeros((hours, s)),
        )


@dataclass
class Cohort:
    hour: int
    people: float
    resets: float  # of which: locked-out holders coming to reset their PIN (window only)


class RegionModel:
    def __init__(self, scenario: Scenario, region: str, seed: int) -> None:
        self.scenario = scenario
        self.region = region
        self.rng = np.random.default_rng(seed)
        self.env = simpy.Environment()
        run = scenario.run
        self.days = run.days
        self.dates = run.dates()
        self.edges = station_edges()
        self.out = RegionResult.empty(region, run.hours, len(self.edges) - 1)
        share = scenario.population.region_share(region)
        self.intents = daily_intents(scenario) * share
        self.channels = scenario.channels
        self.shares = np.array([c.share for c in self.channels])
        self.failure = np.array([c.read_failure for c in self.channels])
        self.tries = np.array([c.read_retries + 1 for c in self.channels], dtype=np.int64)
        self.is_station = np.array([c.station is not None for c in self.channels])
        self.index = {name: i for i, name in enumerate(CHANNELS)}
        self.fallback = np.array(
            [self.index[c.fallback] if c.fallback else i for i, c in enumerate(self.channels)]
        )
        # People (expected) coming back on a given day, per channel; resets go to the window.
        self.pending = np.zeros((self.days + RETURN_HORIZON + 2, len(CHANNELS)))
        self.pending_resets = np.zeros(self.days + RETURN_HORIZON + 2)
        self.today = np.zeros((len(CHANNELS), 24))
        self.today_resets = np.zeros(24)
        self.today_new = np.zeros(24)
        profile = np.asarray(scenario.demand.hourly_profile)
        self.profile = profile / profile.sum()
        self.return_days = self._geometric(scenario.behaviour.return_after_days)
        self.visit_days = self._geometric(scenario.pin.window_visit_after_days)
        self.inbox = {name: simpy.Store(self.env) for name in STATION_CHANNELS}

    @staticmethod
    def _geometric(mean_days: float) -> Floats:
        """Chance of coming back after 1, 2, ... days: geometric with that mean, cut."""
        p = 1 / mean_days
        pmf = p * (1 - p) ** np.arange(RETURN_HORIZON)
        return np.asarray(pmf / pmf.sum())

    def _spots(self, station: Station, day: date) -> float:
        """The region's spots of this kind on ``day`` (some open later, e.g. bank ATMs)."""
        share = self.scenario.population.region_share(self.region)
        nationwide = station.spots_on(day)
        if nationwide == 0:  # one window per municipality
            return float(self.scenario.population.municipalities_in(self.region))
        return max(1.0, nationwide * share)

    # -- holders coming back later --------------------------------------------------------

    def _later(self, day: int, channel: int, people: float, days: Floats) -> None:
        if people <= 0:
            return
        spread = self.rng.multinomial(int(people), days) if people >= 1 else days * people
        self.pending[day + 1 : day + 1 + RETURN_HORIZON, channel] += spread

    def leave(self, day: int, channel: int, people: float) -> None:
        """Holders who gave up for now: some come back to the same channel, others are lost."""
        if people <= 0:
            return
        back = float(self.rng.binomial(round(people), self.scenario.behaviour.return_probability))
        self.out.lost[min(day * 24 + 23, self.out.hours - 1)] += max(0.0, people - back)
        self._later(day, channel, back, self.return_days)

    # -- processes ----------------------------------------------------------------------

    def day_planner(self) -> Generator[simpy.Event, object, None]:
        for day in range(self.days):
            date = self.dates[day]
            volumes = self.intents[day] * self.shares + self.pending[day]
            self.today_new[:] = 0
            for i, channel in enumerate(self.channels):
                weights = hourly_weights(self.scenario, channel, date)
                if weights.sum() == 0:  # closed all day: everyone comes on the next day
                    self.pending[day + 1, i] += volumes[i]
                    self.today[i] = 0
                    self.today_new += self.intents[day] * self.shares[i] * self.profile
                else:
                    self.today[i] = volumes[i] * weights
                    self.today_new += self.intents[day] * self.shares[i] * weights
            window = self.scenario.channel(WINDOW)
            weights = hourly_weights(self.scenario, window, date)
            if weights.sum() == 0:
                self.pending_resets[day + 1] += self.pending_resets[day]
                self.today_resets[:] = 0
            else:
                self.today_resets[:] = self.pending_resets[day] * weights
            yield self.env.timeout(24)

    def arrivals(self) -> Generator[simpy.Event, object, None]:
        out = self.out
        pin = self.scenario.pin
        for hour in range(out.hours):
            day, clock = divmod(hour, 24)
            people = self.rng.poisson(self.today[:, clock])
            resets = int(self.rng.poisson(self.today_resets[clock]))
            out.arrivals[hour] = people
            out.arrivals[hour, self.index[WINDOW]] += resets
            out.window_visits[hour] = resets
            out.new_intents[hour] = self.today_new[clock]
            reading = read_cards(self.rng, people, self.failure, self.tries)
            out.unreadable[hour] = reading.unreadable
            out.failed_reads[hour] = reading.failed_reads.sum()
            for found in np.flatnonzero(reading.unreadable):
                i = int(found)
                target = int(self.fallback[i])
                if target == i:
                    self.leave(day, i, float(reading.unreadable[i]))
                else:  # off to another channel within the next days
                    self._later(day, target, float(reading.unreadable[i]), self.return_days)
            own_device = np.where(self.is_station, 0, reading.read)
            pins = enter_pins(self.rng, own_device, pin)
            self._after_pin(hour, pins.done, pins.locked, pins.wrong_entries)
            for name in STATION_CHANNELS:
                i = self.index[name]
                extra = resets if name == WINDOW else 0
                self.inbox[name].put(Cohort(hour, float(reading.read[i] + extra), float(extra)))
            yield self.env.timeout(1)

    def _after_pin(self, hour: int, done: Ints, locked: Ints, wrong: Ints) -> None:
        out = self.out
        out.completed[hour] += done
        total_locked = int(locked.sum())
        out.lockouts[hour] += total_locked
        out.wrong_pins[hour] += int(wrong.sum())
        if total_locked:
            day = hour // 24
            visits = int(
                self.rng.binomial(total_locked, self.scenario.pin.window_visit_probability)
            )
            out.lost[hour] += total_locked - visits
            spread = self.rng.multinomial(visits, self.visit_days)
            self.pending_resets[day + 1 : day + 1 + RETURN_HORIZON] += spread

    @staticmethod
    def _step(station: Station, state: StationState, arrivals: float, length: float) -> StepResult:
        return station_step(
            state,
            arrivals,
            servers=station.servers_per_spot,
            service_mean=station.service_minutes,
            length=length,
            patience=station.patience_minutes,
        )

    def station(self, name: str) -> Generator[simpy.Event, object, None]:  # noqa: PLR0915
        station = self.scenario.channel(name).station
        assert station is not None
        i, s = self.index[name], STATION_CHANNELS.index(name)
        spots = self._spots(station, self.dates[0])
        state = StationState()
        step = self.scenario.run.step_minutes
        hours = station.hours
        while True:
            cohort = yield self.inbox[name].get()
            assert isinstance(cohort, Cohort)
            hour, day = cohort.hour, cohort.hour // 24
            if cohort.people <= 0 and state.backlog <= 0:
                continue
            date = self.dates[day]
            today_spots = self._spots(station, date)
            if today_spots != spots:  # new spots share the backlog waiting per spot
                state.backlog *= spots / today_spots
                spots = today_spots
            clock = hour % 24
            open_today = hours.open_on(date)
            per_spot = cohort.people / spots
            fraction = hours.open_fraction(clock) if open_today else 0.0
            results: list[StepResult] = []
            if state.backlog <= 1e-9 and fraction > 0:
                first = self._step(station, state, per_spot, 60 * fraction)
                if state.backlog <= 1e-9:
                    results.append(first)
                else:  # overloaded: redo the hour in steps
                    state.backlog = 0.0
            if not results:
                minute = clock * 60
                open_steps = [
                    max(0, min(m + step, hours.closes_minute) - max(m, hours.opens_minute))
                    if open_today
                    else 0
                    for m in range(minute, minute + 60, step)
                ]
                open_total = sum(open_steps)
                for length in open_steps:
                    arriving = per_spot * length / open_total if open_total else 0.0
                    results.append(self._step(station, state, arriving, float(length)))
                if not open_total and per_spot > 0:
                    results[-1].turned_away += per_spot
            served = sum(r.served for r in results) * spots
            gone = sum(r.abandoned + r.turned_away for r in results) * spots
            out = self.out
            out.served[hour, s] = served
            out.wait_sum[hour, s] = sum(r.wait_sum for r in results) * spots
            out.queue[hour, s] = sum(r.queue for r in results) / len(results) * spots
            out.busy[hour, s] = sum(r.busy for r in results) / (60 * station.servers_per_spot)
            hist = sum(
                (wait_histogram(r, self.edges) for r in results), np.zeros(len(self.edges) - 1)
            )
            out.wait_hist[hour, s] = hist * spots
            out.abandoned[hour, i] += gone
            self.leave(day, i, gone)
            # Served holders: at the window staff reset locked PINs on the spot; elsewhere the
            # holder still types the PIN and may lock it.
            if name == WINDOW:
                out.completed[hour, i] += served
            else:
                served_people = np.zeros(len(CHANNELS), dtype=np.int64)
                whole = int(served)
                served_people[i] = whole + int(self.rng.random() < served - whole)
                pins = enter_pins(self.rng, served_people, self.scenario.pin)
                self._after_pin(hour, pins.done, pins.locked, pins.wrong_entries)


def simulate_region(scenario: Scenario, region: str, seed: int) -> RegionResult:
    """Run one region over the whole run window; the result's rows are the run's hours."""
    model = RegionModel(scenario, region, seed)
    env = model.env
    env.process(model.day_planner())
    env.process(model.arrivals())
    for name in STATION_CHANNELS:
        env.process(model.station(name))
    env.run(until=scenario.run.hours)
    return model.out


def day_of(scenario: Scenario, hour: int) -> str:
    return (scenario.run.start + timedelta(hours=hour)).isoformat()
