"""Scenarios: what a capacity planner describes, read from TOML into frozen dataclasses.

Every number of the model lives here, never in code. Loading validates everything and names
the offending field by its dotted path (``channels.iphone.share: must be between 0 and 1``);
keys the model does not know are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mynahil.paths import scenarios_dir

if TYPE_CHECKING:
    from .operators.model import OperatorModel

__all__ = [
    "CHANNELS",
    "STATION_CHANNELS",
    "Behaviour",
    "CalibrationSpec",
    "Campaign",
    "CampaignEvent",
    "Channel",
    "Demand",
    "Hours",
    "Measure",
    "PinModel",
    "Platform",
    "Population",
    "Prefecture",
    "ProcedureSpot",
    "RunWindow",
    "Scenario",
    "ScenarioError",
    "Station",
    "load_scenario",
    "parse_scenario",
    "set_field",
]

#: The ways a holder can do the reservation and application (SPEC.md "Actors", "Devices").
CHANNELS = (
    "iphone",
    "android",
    "pc_reader",
    "kiosk",
    "post_office",
    "phone_shop",
    "municipal_window",
)
#: Channels where the holder queues at a procedure spot; the others are the holder's own device.
STATION_CHANNELS = ("kiosk", "post_office", "phone_shop", "municipal_window")
WINDOW = "municipal_window"

#: Short names a sweep may use instead of a dotted path.
ALIASES = {
    "servers": "platform.servers",
    "window_staff": "channels.municipal_window.servers_per_spot",
    "kiosks": "channels.kiosk.spots",
    "ingestion_workers": "operators.ingestion.workers",
}


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message starts with the field's dotted path."""


@dataclass(frozen=True)
class Prefecture:
    name: str
    region: str
    population: int
    municipalities: int


@dataclass(frozen=True)
class Population:
    prefectures: tuple[Prefecture, ...]
    #: Nationwide card holders on given dates; linear in between, flat outside.
    card_holders: tuple[tuple[date, float], ...]
    #: Zipf exponent of municipality sizes inside a prefecture (the generation rule).
    municipality_size_exponent: float

    @property
    def total(self) -> int:
        return sum(p.population for p in self.prefectures)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.region for p in self.prefectures))

    def region_share(self, region: str) -> float:
        return sum(p.population for p in self.prefectures if p.region == region) / self.total

    def municipalities_in(self, region: str) -> int:
        return sum(p.municipalities for p in self.prefectures if p.region == region)


@dataclass(frozen=True)
class Demand:
    """The daily intent curve: who decides to apply, and when."""

    #: Share of card holders who ever apply for the points.
    apply_share: float
    #: Daily chance that an eligible holder who has not yet applied does so (long-run level).
    base_daily_rate: float
    #: How many times the base rate the launch day adds (decays exponentially).
    launch_peak: float
    launch_decay_days: float
    weekend_factor: float
    #: 24 relative weights, hour 0 to 23 (JST), for holders using their own device.
    hourly_profile: tuple[float, ...]
    #: Share of the eligible who know about the campaign on the opening day; it grows towards
    #: 1 with time constant ``awareness_growth_days`` (news, advertising, word of mouth).
    awareness_start: float = 1.0
    awareness_growth_days: float = 30.0
    #: Two steps: a holder first reserves a MyKey ID (the intent above), then applies with
    #: this daily chance (times the campaign's events) until done.
    application_rate: float = 1.0


@dataclass(frozen=True)
class Hours:
    """Opening hours of a kind of procedure spot."""

    days: str  # "all" or "weekdays"
    opens_minute: int
    closes_minute: int

    def open_on(self, day: date) -> bool:
        return self.days == "all" or day.weekday() < 5

    def open_fraction(self, hour: int) -> float:
        """Share of the hour ``hour`` (0..23) during which the spot is open."""
        start, end = hour * 60, hour * 60 + 60
        overlap = min(end, self.closes_minute) - max(start, self.opens_minute)
        return max(0, overlap) / 60


@dataclass(frozen=True)
class ProcedureSpot:
    """One kind of place where holders do the procedure (seeds 000/002: about 90,000)."""

    kind: str  # "Seven-Eleven multi-copy machines", ...
    channel: str  # the station channel it belongs to
    count: int
    #: The day these spots start taking holders (None: from the opening).
    available_from: date | None
    source: str


@dataclass(frozen=True)
class Station:
    """Identical procedure spots, each with a few servers (machines or clerks)."""

    #: Number of spots in the whole country (0: one per municipality).
    spots: int
    servers_per_spot: int
    service_minutes: float
    #: Mean time a holder is willing to wait before leaving (exponential patience).
    patience_minutes: float
    hours: Hours
    #: Spots that open later: (first day, count) added to ``spots`` from that day on.
    added: tuple[tuple[date, int], ...] = ()

    def spots_on(self, day: date) -> int:
        """Spots nationwide on ``day`` (0: one per municipality)."""
        return self.spots + sum(count for first, count in self.added if first <= day)


@dataclass(frozen=True)
class Channel:
    name: str
    share: float
    #: Chance that one read of the card fails (metal table, phone case, hand slipping).
    read_failure: float
    read_retries: int
    #: Where a holder goes after every read failed (None: tries again later, same channel).
    fallback: str | None
    #: Fault profile (scenarios/faults/NAME.toml) the HIL run uses for this channel's device.
    fault_profile: str | None
    station: Station | None


@dataclass(frozen=True)
class PinModel:
    """Wrong PINs: most holders know theirs; some forgot it and guess."""

    wrong_probability: float
    forgot_share: float
    forgot_wrong_probability: float
    #: PIN entries per application (reservation and application each need the card and PIN).
    entries_per_application: int
    #: Consecutive wrong entries that lock the PIN (SPEC.md: three).
    lockout_after: int
    #: Chance that a locked-out holder goes to the municipal window to reset the PIN.
    window_visit_probability: float
    window_visit_after_days: float


@dataclass(frozen=True)
class Behaviour:
    """Holders who left (queue too long, card unreadable) and may come back."""

    return_probability: float
    return_after_days: float


@dataclass(frozen=True)
class Platform:
    servers: int
    service_median_ms: float
    service_sigma: float
    timeout_s: float
    client_retries: int
    requests_per_application: int
    step_seconds: int

    @property
    def service_mean_s(self) -> float:
        return self.service_median_ms / 1000 * math.exp(self.service_sigma**2 / 2)

    @property
    def service_scv(self) -> float:
        """Squared coefficient of variation of the lognormal service time."""
        return math.exp(self.service_sigma**2) - 1


@dataclass(frozen=True)
class CampaignEvent:
    name: str
    starts: date
    ends: date
    multiplier: float
    #: Short name the calibration refers to (``campaign.events.KEY.multiplier``).
    key: str = ""
    #: What the event moves: "both" steps, only "reservations" or only "applications".
    applies_to: str = "both"


@dataclass(frozen=True)
class Measure:
    """One of a round's measures (round 2: spend, health insurance, public-fund account)."""

    name: str
    #: The published series' kind (scenarios/data: applications_spend, ...).
    kind: str
    #: Share of the round's applicants who also apply for this measure.
    share_of_applicants: float
    source: str


@dataclass(frozen=True)
class Campaign:
    signup_opens: date
    point_period_starts: date
    applications_close: date
    events: tuple[CampaignEvent, ...]
    #: Only cards applied for by this date count; their number caps the eligible holders
    #: (with the issuance lag the card-holder series already carries).
    cards_applied_by: date | None = None
    cards_applied_at_deadline: float | None = None
    measures: tuple[Measure, ...] = ()

    def multiplier(self, day: date, step: str = "both") -> float:
        """The events' product on ``day`` for a step ("reservations" or "applications")."""
        factor = 1.0
        for event in self.events:
            if event.starts <= day <= event.ends and event.applies_to in ("both", step):
                factor *= event.multiplier
        return factor


@dataclass(frozen=True)
class CalibrationSpec:
    """How ``mynahil calibrate`` fits the scenario (chosen before fitting)."""

    #: Published figures, relative to the scenario file.
    data: str
    #: Rows dated after this are the holdout: never used to fit.
    holdout_after: date
    #: Dotted paths of the fitted parameters (demand.*, campaign.events.KEY.multiplier).
    fit: tuple[str, ...]
    #: Kinds of rows that are fitted / checked (cards are inputs, never targets).
    kinds: tuple[str, ...]
    starts: int
    seed: int


@dataclass(frozen=True)
class RunWindow:
    start: date
    end: date
    #: Time step of the station dynamics inside each simulated hour.
    step_minutes: int
    #: Regions to simulate (empty: all); the demand is still the nationwide curve's share.
    regions: tuple[str, ...]

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def hours(self) -> int:
        return self.days * 24

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    run: RunWindow
    population: Population
    demand: Demand
    channels: tuple[Channel, ...]
    pin: PinModel
    behaviour: Behaviour
    platform: Platform
    campaign: Campaign
    calibration: CalibrationSpec | None
    #: The kinds of procedure spots with counts and sources (empty: counts in the channels).
    procedure_spots: tuple[ProcedureSpot, ...]
    #: The validated TOML mapping, for sweeps (set a field, validate again).
    source: Mapping[str, Any] = field(compare=False, repr=False, hash=False)
    #: Where the scenario was read from (None: built in memory); data paths are relative to it.
    folder: Path | None = field(default=None, compare=False, repr=False, hash=False)
    #: The payment side (simulator/operators/), when the scenario has an ``operators`` table.
    operators: OperatorModel | None = None

    def channel(self, name: str) -> Channel:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(name)

    @property
    def simulated_regions(self) -> tuple[str, ...]:
        return self.run.regions or self.population.regions


# -- reading ---------------------------------------------------------------------------------


class _Table:
    """One TOML table with its dotted path; every read is checked, leftovers are errors."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{path or 'scenario'}: must be a table")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.seen: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, default: object = ...) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is ...:
                raise ScenarioError(f"{self.where(key)}: missing")
            return default
        return self.data[key]

    def number(
        self, key: str, default: float | None = None, lo: float = -math.inf, hi: float = math.inf
    ) -> float:
        value = self.raw(key, ... if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{self.where(key)}: must be a number, got {value!r}")
        if not math.isfinite(value) or not lo <= value <= hi:
            if lo == 0 and hi == 1:
                raise ScenarioError(f"{self.where(key)}: must be between 0 and 1, got {value}")
            bound = f">= {lo:g}" if hi == math.inf else f"between {lo:g} and {hi:g}"
            raise ScenarioError(f"{self.where(key)}: must be {bound}, got {value}")
        return float(value)

    def probability(self, key: str, default: float | None = None) -> float:
        return self.number(key, default, 0.0, 1.0)

    def integer(self, key: str, default: int | None = None, lo: int = 0, hi: int = 10**9) -> int:
        value = self.raw(key, ... if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{self.where(key)}: must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise ScenarioError(f"{self.where(key)}: must be between {lo} and {hi}, got {value}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw(key, ... if default is None else default)
        if not isinstance(value, str):
            raise ScenarioError(f"{self.where(key)}: must be a string, got {value!r}")
        return value

    def day(self, key: str) -> date:
        value = self.raw(key)
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ScenarioError(f"{self.where(key)}: must be a date like 2020-07-01, got {value!r}")

    def table(self, key: str) -> _Table:
        return _Table(self.raw(key), self.where(key))

    def array(self, key: str, default: list[Any] | None = None) -> list[Any]:
        value = self.raw(key, ... if default is None else default)
        if not isinstance(value, list):
            raise ScenarioError(f"{self.where(key)}: must be an array, got {value!r}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ScenarioError(f"{self.where(unknown[0])}: unknown key")


def _clock(text: str, where: str) -> int:
    try:
        hours, minutes = text.split(":")
        value = int(hours) * 60 + int(minutes)
    except ValueError:
        raise ScenarioError(f"{where}: must be HH:MM, got {text!r}") from None
    if not 0 <= value <= 24 * 60 or not 0 <= int(minutes) < 60:
        raise ScenarioError(f"{where}: must be between 00:00 and 24:00, got {text!r}")
    return value


def _hours(table: _Table) -> Hours:
    days = table.text("days", "all")
    if days not in ("all", "weekdays"):
        raise ScenarioError(f"{table.where('days')}: must be 'all' or 'weekdays', got {days!r}")
    opens = _clock(table.text("opens", "00:00"), table.where("opens"))
    closes = _clock(table.text("closes", "24:00"), table.where("closes"))
    if closes <= opens:
        raise ScenarioError(f"{table.where('closes')}: must be after opens")
    table.done()
    return Hours(days, opens, closes)


def _population(table: _Table) -> Population:
    prefectures = []
    for i, raw in enumerate(table.array("prefectures")):
        row = _Table(raw, f"{table.where('prefectures')}[{i}]")
        prefectures.append(
            Prefecture(
                name=row.text("name"),
                region=row.text("region"),
                population=row.integer("population", lo=1),
                municipalities=row.integer("municipalities", lo=1),
            )
        )
        row.done()
    if not prefectures:
        raise ScenarioError(f"{table.where('prefectures')}: must list at least one prefecture")
    holders = []
    for i, raw in enumerate(table.array("card_holders")):
        row = _Table(raw, f"{table.where('card_holders')}[{i}]")
        holders.append((row.day("date"), row.number("holders", lo=0)))
        row.done()
    if not holders:
        raise ScenarioError(f"{table.where('card_holders')}: must give at least one date")
    if [d for d, _ in holders] != sorted({d for d, _ in holders}):
        raise ScenarioError(f"{table.where('card_holders')}: dates must increase")
    exponent = table.number("municipality_size_exponent", 1.0, 0.0, 3.0)
    table.done()
    result = Population(tuple(prefectures), tuple(holders), exponent)
    if max(h for _, h in holders) > result.total:
        raise ScenarioError(f"{table.where('card_holders')}: more holders than people")
    return result


def _demand(table: _Table) -> Demand:
    profile = table.array("hourly_profile", [1.0] * 24)
    if len(profile) != 24:
        raise ScenarioError(f"{table.where('hourly_profile')}: must have 24 weights")
    weights = []
    for i, weight in enumerate(profile):
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
            where = f"{table.where('hourly_profile')}[{i}]"
            raise ScenarioError(f"{where}: must be a number >= 0, got {weight!r}")
        weights.append(float(weight))
    if sum(weights) <= 0:
        raise ScenarioError(f"{table.where('hourly_profile')}: must not be all zero")
    result = Demand(
        apply_share=table.probability("apply_share"),
        base_daily_rate=table.probability("base_daily_rate"),
        launch_peak=table.number("launch_peak", 0.0, 0.0, 1e4),
        launch_decay_days=table.number("launch_decay_days", 7.0, 0.01, 1e4),
        weekend_factor=table.number("weekend_factor", 1.0, 0.0, 100.0),
        hourly_profile=tuple(weights),
        awareness_start=table.number("awareness_start", 1.0, 0.001, 1.0),
        awareness_growth_days=table.number("awareness_growth_days", 30.0, 0.01, 1e4),
        application_rate=table.number("application_rate", 1.0, 0.0001, 1.0),
    )
    table.done()
    return result


def _channel(name: str, table: _Table) -> Channel:
    station = None
    if name in STATION_CHANNELS:
        station = Station(
            spots=table.integer("spots", 0),
            servers_per_spot=table.integer("servers_per_spot", 1, lo=1, hi=10_000),
            service_minutes=table.number("service_minutes", lo=0.01, hi=24 * 60),
            patience_minutes=table.number("patience_minutes", lo=0.01, hi=7 * 24 * 60),
            hours=_hours(table.table("hours")) if "hours" in table.data else Hours("all", 0, 1440),
        )
        table.seen.add("hours")
    fallback = table.raw("fallback", None)
    if fallback is not None and fallback not in CHANNELS:
        raise ScenarioError(
            f"{table.where('fallback')}: must be one of {', '.join(CHANNELS)}, got {fallback!r}"
        )
    fault_profile = table.raw("fault_profile", None)
    if fault_profile is not None and not isinstance(fault_profile, str):
        raise ScenarioError(f"{table.where('fault_profile')}: must be a string")
    result = Channel(
        name=name,
        share=table.probability("share"),
        read_failure=table.number("read_failure", 0.0, 0.0, 0.99),
        read_retries=table.integer("read_retries", 2, hi=50),
        fallback=fallback,
        fault_profile=fault_profile,
        station=station,
    )
    table.done()
    return result


def _channels(table: _Table) -> tuple[Channel, ...]:
    channels = []
    for name in table.data:
        if name not in CHANNELS:
            raise ScenarioError(f"{table.where(name)}: unknown channel (use {', '.join(CHANNELS)})")
    for name in CHANNELS:
        if name not in table.data:
            raise ScenarioError(f"{table.where(name)}: missing")
        channels.append(_channel(name, table.table(name)))
    table.done()
    total = sum(c.share for c in channels)
    if abs(total - 1) > 1e-6:
        raise ScenarioError(f"{table.path}: shares must add up to 1, got {total:.6g}")
    for channel in channels:
        if channel.fallback == channel.name:
            raise ScenarioError(f"{table.path}.{channel.name}.fallback: must be another channel")
    return tuple(channels)


def _pin(table: _Table) -> PinModel:
    result = PinModel(
        wrong_probability=table.probability("wrong_probability"),
        forgot_share=table.probability("forgot_share", 0.0),
        forgot_wrong_probability=table.probability("forgot_wrong_probability", 0.5),
        entries_per_application=table.integer("entries_per_application", 2, lo=1, hi=20),
        lockout_after=table.integer("lockout_after", 3, lo=1, hi=20),
        window_visit_probability=table.probability("window_visit_probability", 1.0),
        window_visit_after_days=table.number("window_visit_after_days", 3.0, 1.0, 365.0),
    )
    table.done()
    return result


def _behaviour(table: _Table) -> Behaviour:
    result = Behaviour(
        return_probability=table.probability("return_probability"),
        return_after_days=table.number("return_after_days", 3.0, 1.0, 365.0),
    )
    table.done()
    return result


def _platform(table: _Table) -> Platform:
    result = Platform(
        servers=table.integer("servers", lo=1, hi=100_000),
        service_median_ms=table.number("service_median_ms", lo=0.001, hi=600_000),
        service_sigma=table.number("service_sigma", 0.5, 0.0, 3.0),
        timeout_s=table.number("timeout_s", 10.0, 0.001, 3600.0),
        client_retries=table.integer("client_retries", 2, hi=10),
        requests_per_application=table.integer("requests_per_application", 4, lo=1, hi=100),
        step_seconds=table.integer("step_seconds", 60, lo=1, hi=3600),
    )
    if 3600 % result.step_seconds:
        raise ScenarioError(f"{table.where('step_seconds')}: must divide 3600")
    table.done()
    return result


def _campaign(table: _Table) -> Campaign:
    events = []
    for i, raw in enumerate(table.array("events", [])):
        row = _Table(raw, f"{table.where('events')}[{i}]")
        event = CampaignEvent(
            name=row.text("name"),
            starts=row.day("starts"),
            ends=row.day("ends"),
            multiplier=row.number("multiplier", lo=0.0, hi=1000.0),
            key=row.text("key", ""),
            applies_to=row.text("applies_to", "both"),
        )
        if event.applies_to not in ("both", "reservations", "applications"):
            raise ScenarioError(
                f"{row.where('applies_to')}: must be both, reservations or applications, "
                f"got {event.applies_to!r}"
            )
        row.done()
        if event.ends < event.starts:
            raise ScenarioError(f"{row.where('ends')}: must not be before starts")
        events.append(event)
    keys = [e.key for e in events if e.key]
    if len(keys) != len(set(keys)):
        raise ScenarioError(f"{table.where('events')}: two events with the same key")
    measures = []
    for i, raw in enumerate(table.array("measures", [])):
        row = _Table(raw, f"{table.where('measures')}[{i}]")
        measures.append(
            Measure(
                name=row.text("name"),
                kind=row.text("kind"),
                share_of_applicants=row.probability("share_of_applicants"),
                source=row.text("source", ""),
            )
        )
        row.done()
    applied_by = table.day("cards_applied_by") if "cards_applied_by" in table.data else None
    at_deadline = (
        table.number("cards_applied_at_deadline", lo=1)
        if "cards_applied_at_deadline" in table.data
        else None
    )
    table.seen.update(("cards_applied_by", "cards_applied_at_deadline"))
    if (applied_by is None) != (at_deadline is None):
        raise ScenarioError(
            f"{table.where('cards_applied_at_deadline')}: give it together with cards_applied_by"
        )
    result = Campaign(
        signup_opens=table.day("signup_opens"),
        point_period_starts=table.day("point_period_starts"),
        applications_close=table.day("applications_close"),
        events=tuple(events),
        cards_applied_by=applied_by,
        cards_applied_at_deadline=at_deadline,
        measures=tuple(measures),
    )
    table.done()
    if result.applications_close < result.signup_opens:
        raise ScenarioError(f"{table.where('applications_close')}: must not be before signup")
    return result


def _procedure_spots(
    rows: list[Any], channels: tuple[Channel, ...], municipalities: int
) -> tuple[tuple[ProcedureSpot, ...], tuple[Channel, ...]]:
    """Read ``[[procedure_spots]]`` and give each station channel its spots from them."""
    spots = []
    for i, raw in enumerate(rows):
        row = _Table(raw, f"procedure_spots[{i}]")
        spot = ProcedureSpot(
            kind=row.text("kind"),
            channel=row.text("channel"),
            count=row.integer("count", lo=1),
            available_from=row.day("from") if "from" in row.data else None,
            source=row.text("source"),
        )
        row.seen.add("from")
        row.done()
        if spot.channel not in STATION_CHANNELS:
            raise ScenarioError(
                f"{row.where('channel')}: must be one of {', '.join(STATION_CHANNELS)}, "
                f"got {spot.channel!r}"
            )
        if spot.channel == WINDOW and spot.count != municipalities:
            raise ScenarioError(
                f"{row.where('count')}: one window per municipality: must be {municipalities}"
            )
        spots.append(spot)
    result = []
    for channel in channels:
        mine = [s for s in spots if s.channel == channel.name and s.channel != WINDOW]
        if not mine or channel.station is None:
            result.append(channel)
            continue
        # A count in the channel (a what-if, e.g. --sweep kiosks=...) replaces the listed
        # kinds' count from the opening; spots that open later are still added.
        base = channel.station.spots or sum(s.count for s in mine if s.available_from is None)
        added = tuple(
            sorted((s.available_from, s.count) for s in mine if s.available_from is not None)
        )
        if base < 1:
            raise ScenarioError(f"procedure_spots: {channel.name} has no spots from the opening")
        station = replace(channel.station, spots=base, added=added)
        result.append(replace(channel, station=station))
    for channel in result:
        if channel.station is not None and channel.station.spots == 0 and channel.name != WINDOW:
            raise ScenarioError(
                f"channels.{channel.name}.spots: must be >= 1 (or listed in procedure_spots)"
            )
    return tuple(spots), tuple(result)


def _calibration(table: _Table) -> CalibrationSpec:
    fit = table.array("fit")
    if not all(isinstance(f, str) for f in fit):
        raise ScenarioError(f"{table.where('fit')}: must list parameter paths (or be empty)")
    kinds = table.array("kinds", ["applications", "reservations"])
    result = CalibrationSpec(
        data=table.text("data"),
        holdout_after=table.day("holdout_after"),
        fit=tuple(fit),
        kinds=tuple(str(k) for k in kinds),
        starts=table.integer("starts", 8, lo=1, hi=1000),
        seed=table.integer("seed", 1),
    )
    table.done()
    return result


def _run(table: _Table, known_regions: tuple[str, ...]) -> RunWindow:
    regions = tuple(table.array("regions", []))
    for i, region in enumerate(regions):
        if region not in known_regions:
            where = f"{table.where('regions')}[{i}]"
            raise ScenarioError(f"{where}: unknown region {region!r}")
    result = RunWindow(
        start=table.day("start"),
        end=table.day("end"),
        step_minutes=table.integer("step_minutes", 5, lo=1, hi=60),
        regions=regions,
    )
    if 60 % result.step_minutes:
        raise ScenarioError(f"{table.where('step_minutes')}: must divide 60")
    if result.end < result.start:
        raise ScenarioError(f"{table.where('end')}: must not be before start")
    if result.days > 3 * 366:
        raise ScenarioError(f"{table.where('end')}: runs are limited to three years")
    table.done()
    return result


def _operators(root: _Table) -> OperatorModel | None:
    if "operators" not in root.data:
        return None
    from .operators.model import parse_operators

    return parse_operators(root.table("operators"))


def parse_scenario(
    data: Mapping[str, Any], name: str = "scenario", folder: Path | None = None
) -> Scenario:
    """Validate a scenario mapping (as read from TOML, ``extends`` already resolved)."""
    root = _Table(data, "")
    population = _population(root.table("population"))
    spots, channels = _procedure_spots(
        root.array("procedure_spots", []),
        _channels(root.table("channels")),
        sum(p.municipalities for p in population.prefectures),
    )
    scenario = Scenario(
        name=root.text("name", name),
        description=root.text("description", ""),
        run=_run(root.table("run"), population.regions),
        population=population,
        demand=_demand(root.table("demand")),
        channels=channels,
        pin=_pin(root.table("pin")),
        behaviour=_behaviour(root.table("behaviour")),
        platform=_platform(root.table("platform")),
        campaign=_campaign(root.table("campaign")),
        calibration=(_calibration(root.table("calibration")) if "calibration" in data else None),
        procedure_spots=spots,
        folder=folder,
        source=copy.deepcopy(dict(data)),
        operators=_operators(root),
    )
    root.seen.add("calibration")
    root.done()
    return scenario


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ScenarioError(f"extends: {path} extends itself")
    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
    operators = data.get("operators")
    if isinstance(operators, str):  # the operator part in a file of its own, inlined here
        beside_file = path.parent / operators
        if not beside_file.exists() and (scenarios_dir() / operators).exists():
            beside_file = scenarios_dir() / operators  # a copied scenario: the bundled part
        data["operators"] = _read(beside_file, (*seen, path))
    calibration = data.get("calibration")
    if isinstance(calibration, dict) and isinstance(calibration.get("data"), str):
        # Beside the file that names it, else the bundled one: a copied scenario that
        # extends a bundled one keeps its published figures.
        published = path.parent / calibration["data"]
        if not published.exists() and (scenarios_dir() / calibration["data"]).exists():
            published = scenarios_dir() / calibration["data"]
        calibration["data"] = str(published)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ScenarioError(f"extends: must be a file name, got {parent!r}")
    beside = path.parent / parent
    # A copied scenario (`mynahil scenarios copy`) still extends the bundled one of that name.
    bundled = bundled_scenarios().get(Path(parent).stem)
    if not beside.exists() and bundled is not None and Path(parent).name == parent:
        beside = bundled
    return _merge(_read(beside.resolve(), (*seen, path)), data)


def bundled_scenarios() -> dict[str, Path]:
    """The scenarios shipped with mynahil, by name (the file's stem)."""
    return {found.stem: found for found in sorted(scenarios_dir().glob("*.toml"))}


def scenario_path(name_or_path: Path | str) -> Path:
    """A file that exists, else the bundled scenario of that bare name (``launch-week``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or path.name != str(name_or_path):
        return path  # a path: _read names it if it does not exist
    bundled = bundled_scenarios()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    raise ScenarioError(
        f"{name_or_path}: no such scenario file, nor a bundled scenario of that name "
        f"(bundled: {', '.join(bundled) or 'none'}; see mynahil scenarios list)"
    )


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file or a bundled scenario by name; ``extends =
    "other.toml"`` starts from another one (beside it, else the bundled one)."""
    path = scenario_path(path)
    return parse_scenario(_read(path.resolve()), path.stem, path.resolve().parent)


def set_field(scenario: Scenario, dotted: str, value: float) -> Scenario:
    """The scenario with one numeric field changed (sweeps); validated again."""
    dotted = ALIASES.get(dotted, dotted)
    data = copy.deepcopy(dict(scenario.source))
    node: Any = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            raise ScenarioError(f"{dotted}: no such field in the scenario")
        node = node[part]
    if not isinstance(node, dict):
        raise ScenarioError(f"{dotted}: no such field in the scenario")
    current = node.get(leaf)
    if current is not None and (isinstance(current, bool) or not isinstance(current, int | float)):
        raise ScenarioError(f"{dotted}: is not a numeric field")
    whole = float(value).is_integer() and (current is None or isinstance(current, int))
    node[leaf] = int(value) if whole else value
    return parse_scenario(data, scenario.name, scenario.folder)
