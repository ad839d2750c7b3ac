"""Scenarios: what a capacity planner describes, read from TOML into frozen dataclasses.

Every number of the model lives here, never in code. Loading validates everything (the
pydantic models of :mod:`mynahil.simulator.scenario_file`) and names the offending field by its
dotted path (``channels.iphone.share: must be between 0 and 1``); keys the model does not know are
errors too, so a typo never silently falls back to a default. This module resolves
``extends``, builds the domain objects the simulator works on, and changes fields for sweeps.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mynahil.config import validated, values
from mynahil.paths import scenarios_dir

from .operator_model import OperatorModel, operator_model
from .scenario_file import (
    CHANNELS,
    STATION_CHANNELS,
    WINDOW,
    CalibrationFile,
    CampaignFile,
    DeviceChannelFile,
    HoursFile,
    ScenarioError,
    ScenarioFile,
    StationChannelFile,
    bundled_scheme,
    clock_minutes,
    simulated_dates,
)

__all__ = [
    "CHANNELS",
    "STATION_CHANNELS",
    "WINDOW",
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

#: Short names a sweep may use instead of a dotted path.
ALIASES = {
    "servers": "platform.servers",
    "window_staff": "channels.municipal_window.servers_per_spot",
    "kiosks": "channels.kiosk.spots",
    "ingestion_workers": "operators.ingestion.workers",
}


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
    """The round as the sign-up model sees it: the dates from its campaign file
    (``scenarios/campaigns/``, see :func:`simulated_dates`), the scenario's events."""

    #: The campaign file's ``id`` (round1, round2).
    campaign_id: str
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


def _hours(file: HoursFile | None) -> Hours:
    if file is None:
        return Hours("all", 0, 24 * 60)
    return Hours(file.days, clock_minutes(file.opens), clock_minutes(file.closes))


def _channel(name: str, file: DeviceChannelFile) -> Channel:
    station = None
    if isinstance(file, StationChannelFile):
        station = Station(
            spots=file.spots,
            servers_per_spot=file.servers_per_spot,
            service_minutes=file.service_minutes,
            patience_minutes=file.patience_minutes,
            hours=_hours(file.hours),
        )
    return Channel(
        name=name,
        share=file.share,
        read_failure=file.read_failure,
        read_retries=file.read_retries,
        fallback=file.fallback,
        fault_profile=file.fault_profile,
        station=station,
    )


def _with_spots(channel: Channel, spots: tuple[ProcedureSpot, ...]) -> Channel:
    """A station channel with its spots from ``[[procedure_spots]]``: a count in the channel
    (a what-if, e.g. --sweep kiosks=...) replaces the listed kinds' count from the opening;
    spots that open later are still added."""
    mine = [s for s in spots if s.channel == channel.name and s.channel != WINDOW]
    if not mine or channel.station is None:
        return channel
    base = channel.station.spots or sum(s.count for s in mine if s.available_from is None)
    added = tuple(sorted((s.available_from, s.count) for s in mine if s.available_from is not None))
    return replace(channel, station=replace(channel.station, spots=base, added=added))


def _campaign(file: CampaignFile) -> Campaign:
    rules = bundled_scheme().campaign(file.id)
    assert rules is not None  # CampaignFile checked it
    dates = simulated_dates(rules)
    return Campaign(
        campaign_id=file.id,
        signup_opens=dates.signup_opens,
        point_period_starts=dates.point_period_starts,
        applications_close=dates.applications_close,
        events=tuple(CampaignEvent(**values(event)) for event in file.events),
        # The ceiling applies only with its published count.
        cards_applied_by=dates.cards_applied_by if file.cards_applied_at_deadline else None,
        cards_applied_at_deadline=file.cards_applied_at_deadline,
        measures=tuple(Measure(**values(measure)) for measure in file.measures),
    )


def _calibration(file: CalibrationFile | None) -> CalibrationSpec | None:
    if file is None:
        return None
    return CalibrationSpec(
        data=file.data,
        holdout_after=file.holdout_after,
        fit=tuple(file.fit),
        kinds=tuple(file.kinds),
        starts=file.starts,
        seed=file.seed,
    )


def _operators(file: ScenarioFile) -> OperatorModel | None:
    if file.operators is None:
        return None
    return operator_model(file.operators)


def parse_scenario(
    data: Mapping[str, Any], name: str = "scenario", folder: Path | None = None
) -> Scenario:
    """Validate a scenario mapping (as read from TOML, ``extends`` already resolved)."""
    file = validated(ScenarioFile, data, ScenarioError)
    population = file.population
    spots = tuple(
        ProcedureSpot(s.kind, s.channel, s.count, s.available_from, s.source)
        for s in file.procedure_spots
    )
    return Scenario(
        name=file.name if file.name is not None else name,
        description=file.description,
        run=RunWindow(file.run.start, file.run.end, file.run.step_minutes, tuple(file.run.regions)),
        population=Population(
            prefectures=tuple(Prefecture(**values(p)) for p in population.prefectures),
            card_holders=tuple((row.date, row.holders) for row in population.card_holders),
            municipality_size_exponent=population.municipality_size_exponent,
        ),
        demand=Demand(
            **values(file.demand, exclude=("hourly_profile",)),
            hourly_profile=tuple(file.demand.hourly_profile),
        ),
        channels=tuple(
            _with_spots(_channel(name, file.channels.by_name(name)), spots) for name in CHANNELS
        ),
        pin=PinModel(**values(file.pin)),
        behaviour=Behaviour(**values(file.behaviour)),
        platform=Platform(**values(file.platform)),
        campaign=_campaign(file.campaign),
        calibration=_calibration(file.calibration),
        procedure_spots=spots,
        folder=folder,
        source=copy.deepcopy(dict(data)),
        operators=_operators(file),
    )


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
    """A file that exists, else the bundled scenario of that bare name (``launch-week``).

    A folder of that name is not a scenario: ``simulate round1 --out round1`` run twice must
    find the bundled scenario, not the first run's output."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix or path.name != str(name_or_path):
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
