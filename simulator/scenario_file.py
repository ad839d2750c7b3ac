"""What a scenario file may say: the pydantic models its TOML is validated against.

These models are the file's shape (and its JSON Schema, ``mynahil scenarios schema``); the
simulator works on the domain objects of :mod:`mynahil.simulator.scenario` built from them. Every
check a scenario needs lives here, so an editor and the loader agree on what is valid.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Annotated, Any, NamedTuple, Self

from pydantic import Field, PlainValidator, WithJsonSchema, model_validator

from mynahil.config import (
    ConfigModel,
    Day,
    Integer,
    Name,
    Number,
    OneOf,
    Probability,
    Text,
    at_key,
    problem,
)
from mynahil.reference_impl.points.campaign import Campaign as CampaignRules
from mynahil.reference_impl.points.campaign import Scheme, load_scheme

__all__ = [
    "CHANNELS",
    "GRANT_MODES",
    "REPORTING_MODES",
    "STATION_CHANNELS",
    "WINDOW",
    "CampaignFile",
    "ChannelsFile",
    "OperatorsFile",
    "ScenarioError",
    "ScenarioFile",
    "SimulatedDates",
    "bundled_scheme",
    "clock_minutes",
    "simulated_dates",
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


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message starts with the field's dotted path."""


def clock_minutes(text: str) -> int:
    """``"08:30"`` -> 510; ValueError for anything that is not a time of day (24:00 is)."""
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= 24 * 60 or not 0 <= int(minutes) < 60:
        raise ValueError(text)
    return value


class HoursFile(ConfigModel):
    """Opening hours of a kind of procedure spot."""

    days: Annotated[str, OneOf("all", "weekdays")] = "all"
    opens: Text = "00:00"
    closes: Text = "24:00"

    @model_validator(mode="after")
    def _check(self) -> Self:
        minutes: list[int] = []
        for key in ("opens", "closes"):
            text = getattr(self, key)
            try:
                minutes.append(clock_minutes(text))
            except ValueError:
                raise at_key(
                    key, f"must be a time HH:MM from 00:00 to 24:00, got {text!r}"
                ) from None
        if minutes[1] <= minutes[0]:
            raise at_key("closes", "must be after opens")
        return self


class DeviceChannelFile(ConfigModel):
    """A channel where holders use their own device (a phone, a PC reader)."""

    share: Probability
    #: Chance that one read of the card fails (metal table, phone case, hand slipping).
    read_failure: Annotated[float, Number(0.0, 0.99)] = 0.0
    read_retries: Annotated[int, Integer(0, 50)] = 2
    #: Where a holder goes after every read failed (none: tries again later, same channel).
    fallback: Annotated[str, OneOf(*CHANNELS)] | None = None
    #: Fault profile (scenarios/faults/NAME.toml) the HIL run uses for this channel's device.
    fault_profile: Text | None = None


class StationChannelFile(DeviceChannelFile):
    """A channel where holders queue at procedure spots with a few servers each."""

    #: Spots in the whole country (0: one per municipality, or the [[procedure_spots]] count).
    spots: Annotated[int, Integer(0)] = 0
    servers_per_spot: Annotated[int, Integer(1, 10_000)] = 1
    service_minutes: Annotated[float, Number(0.01, 24 * 60)]
    #: Mean time a holder is willing to wait before leaving (exponential patience).
    patience_minutes: Annotated[float, Number(0.01, 7 * 24 * 60)]
    hours: HoursFile | None = None


class ChannelsFile(ConfigModel):
    """Every channel, by name; the shares add up to 1."""

    iphone: DeviceChannelFile
    android: DeviceChannelFile
    pc_reader: DeviceChannelFile
    kiosk: StationChannelFile
    post_office: StationChannelFile
    phone_shop: StationChannelFile
    municipal_window: StationChannelFile

    @model_validator(mode="before")
    @classmethod
    def _known_channels(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data:
                if name not in CHANNELS:
                    raise at_key(str(name), f"unknown channel (use {', '.join(CHANNELS)})")
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        total = sum(self.by_name(name).share for name in CHANNELS)
        if abs(total - 1) > 1e-6:
            raise at_key("", f"shares must add up to 1, got {total:.6g}")
        for name in CHANNELS:
            if self.by_name(name).fallback == name:
                raise at_key(f"{name}.fallback", "must be another channel")
        return self

    def by_name(self, name: str) -> DeviceChannelFile:
        channel: DeviceChannelFile = getattr(self, name)
        return channel


class PrefectureFile(ConfigModel):
    name: Text
    region: Text
    population: Annotated[int, Integer(1)]
    municipalities: Annotated[int, Integer(1)]


class CardHoldersFile(ConfigModel):
    date: Day
    holders: Annotated[float, Number(0)]


class PopulationFile(ConfigModel):
    prefectures: list[PrefectureFile] = Field(min_length=1)
    #: Nationwide card holders on given dates; linear in between, flat outside.
    card_holders: list[CardHoldersFile] = Field(min_length=1)
    #: Zipf exponent of municipality sizes inside a prefecture (the generation rule).
    municipality_size_exponent: Annotated[float, Number(0.0, 3.0)] = 1.0

    @model_validator(mode="after")
    def _check(self) -> Self:
        days = [row.date for row in self.card_holders]
        if days != sorted(set(days)):
            raise at_key("card_holders", "dates must increase")
        if max(row.holders for row in self.card_holders) > sum(
            p.population for p in self.prefectures
        ):
            raise at_key("card_holders", "more holders than people")
        return self

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.region for p in self.prefectures))


def _weights(count: int) -> Any:
    return Field(default_factory=lambda: [1.0] * count, min_length=count, max_length=count)


class DemandFile(ConfigModel):
    apply_share: Probability
    base_daily_rate: Probability
    launch_peak: Annotated[float, Number(0.0, 1e4)] = 0.0
    launch_decay_days: Annotated[float, Number(0.01, 1e4)] = 7.0
    weekend_factor: Annotated[float, Number(0.0, 100.0)] = 1.0
    #: 24 relative weights, hour 0 to 23 (JST), for holders using their own device.
    hourly_profile: list[Annotated[float, Number(0)]] = _weights(24)
    awareness_start: Annotated[float, Number(0.001, 1.0)] = 1.0
    awareness_growth_days: Annotated[float, Number(0.01, 1e4)] = 30.0
    application_rate: Annotated[float, Number(0.0001, 1.0)] = 1.0

    @model_validator(mode="after")
    def _check(self) -> Self:
        if sum(self.hourly_profile) <= 0:
            raise at_key("hourly_profile", "must not be all zero")
        return self


class PinFile(ConfigModel):
    wrong_probability: Probability
    forgot_share: Probability = 0.0
    forgot_wrong_probability: Probability = 0.5
    entries_per_application: Annotated[int, Integer(1, 20)] = 2
    lockout_after: Annotated[int, Integer(1, 20)] = 3
    window_visit_probability: Probability = 1.0
    window_visit_after_days: Annotated[float, Number(1.0, 365.0)] = 3.0


class BehaviourFile(ConfigModel):
    return_probability: Probability
    return_after_days: Annotated[float, Number(1.0, 365.0)] = 3.0


class PlatformFile(ConfigModel):
    servers: Annotated[int, Integer(1, 100_000)]
    service_median_ms: Annotated[float, Number(0.001, 600_000)]
    service_sigma: Annotated[float, Number(0.0, 3.0)] = 0.5
    timeout_s: Annotated[float, Number(0.001, 3600.0)] = 10.0
    client_retries: Annotated[int, Integer(0, 10)] = 2
    requests_per_application: Annotated[int, Integer(1, 100)] = 4
    step_seconds: Annotated[int, Integer(1, 3600)] = 60

    @model_validator(mode="after")
    def _check(self) -> Self:
        if 3600 % self.step_seconds:
            raise at_key("step_seconds", "must divide 3600")
        return self


class EventFile(ConfigModel):
    name: Text
    starts: Day
    ends: Day
    multiplier: Annotated[float, Number(0.0, 1000.0)]
    #: Short name the calibration refers to (``campaign.events.KEY.multiplier``).
    key: Text = ""
    applies_to: Annotated[str, OneOf("both", "reservations", "applications")] = "both"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.ends < self.starts:
            raise at_key("ends", "must not be before starts")
        return self


class MeasureFile(ConfigModel):
    name: Text
    #: The published series' kind (scenarios/data: applications_spend, ...).
    kind: Text
    share_of_applicants: Probability
    source: Text = ""


class SimulatedDates(NamedTuple):
    """A round's dates as the sign-up model uses them, read from its campaign file."""

    #: The day every measure of the round accepts applications: the launch the demand
    #: curve's peak follows (round 2's spend part opened in January, its health-insurance
    #: and account measures, and the sign-up wave, on 2022-06-30).
    signup_opens: date
    #: The day every grant of the round can be earned (round 1: the spend window's start).
    point_period_starts: date
    applications_close: date
    #: Cards applied for after this earn nothing (round 1: the extensions' date; round 2:
    #: the spend rule's), None when the round has no such deadline.
    cards_applied_by: date | None


def simulated_dates(rules: CampaignRules) -> SimulatedDates:
    """The sign-up model's dates of a campaign of ``scenarios/campaigns/``."""
    bonus_opens = [bonus.opens for bonus in rules.bonuses]
    deadline = rules.spend.card_applied_by
    if deadline is None and rules.spend.extensions:
        deadline = max(extension.card_applied_by for extension in rules.spend.extensions)
    return SimulatedDates(
        signup_opens=max([rules.opens, *bonus_opens]),
        point_period_starts=max([rules.spend.starts, *bonus_opens]),
        applications_close=rules.closes,
        cards_applied_by=deadline,
    )


class CampaignFile(ConfigModel):
    """The round: its dates and rules come from ``scenarios/campaigns/ID.toml``; the scenario
    adds what the sign-up model needs beyond them (events, measures, the card count)."""

    #: A campaign of scenarios/campaigns (round1, round2): its dates are the simulator's.
    id: Name
    events: list[EventFile] = Field(default_factory=list)
    #: Cards applied for by the campaign's card deadline (published): the eligible ceiling.
    cards_applied_at_deadline: Annotated[float, Number(1)] | None = None
    measures: list[MeasureFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        rules = bundled_scheme().campaign(self.id)
        if rules is None:
            known = ", ".join(bundled_scheme().campaigns)
            raise at_key("id", f"no campaign {self.id!r} in scenarios/campaigns/ ({known})")
        keys = [e.key for e in self.events if e.key]
        if len(keys) != len(set(keys)):
            raise at_key("events", "two events with the same key")
        dates = simulated_dates(rules)
        if self.cards_applied_at_deadline is not None and dates.cards_applied_by is None:
            raise at_key(
                "cards_applied_at_deadline",
                f"campaign {self.id!r} has no card-application deadline to count cards by",
            )
        if dates.applications_close < dates.signup_opens:
            raise at_key("id", f"campaign {self.id!r} closes before all its measures open")
        return self


class CalibrationFile(ConfigModel):
    """How ``mynahil calibrate`` fits the scenario (chosen before fitting)."""

    data: Text
    holdout_after: Day
    #: Dotted paths of the fitted parameters (demand.*, campaign.events.KEY.multiplier).
    fit: list[Text]
    kinds: list[Text] = Field(default_factory=lambda: ["applications", "reservations"])
    starts: Annotated[int, Integer(1, 1000)] = 8
    seed: Annotated[int, Integer()] = 1


class RunFile(ConfigModel):
    start: Day
    end: Day
    step_minutes: Annotated[int, Integer(1, 60)] = 5
    #: Regions to simulate (empty: all).
    regions: list[Text] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if 60 % self.step_minutes:
            raise at_key("step_minutes", "must divide 60")
        if self.end < self.start:
            raise at_key("end", "must not be before start")
        if (self.end - self.start).days + 1 > 3 * 366:
            raise at_key("end", "runs are limited to three years")
        return self


class ProcedureSpotFile(ConfigModel):
    """One kind of place where holders do the procedure (seeds 000/002: about 90,000)."""

    kind: Text
    channel: Annotated[str, OneOf(*STATION_CHANNELS)]
    count: Annotated[int, Integer(1)]
    #: The day these spots start taking holders (none: from the opening).
    available_from: Day | None = Field(None, alias="from")
    source: Text


# -- the operator part (simulator/operators/) --------------------------------------------------

GRANT_MODES = ("charge", "purchase")
REPORTING_MODES = ("realtime", "batch")


def _moment(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=None)
        except ValueError:
            pass
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    raise problem(f"must be a time like 2020-09-01T12:00, got {value!r}")


#: A local time (JST) such as ``2020-09-01T12:00``, a TOML local date-time or a string.
Moment = Annotated[
    datetime,
    PlainValidator(_moment),
    WithJsonSchema({"type": "string", "description": "a local time like 2020-09-01T12:00"}),
]


class SpenderFile(ConfigModel):
    """How holders of one grant mode spend: a one-off fill of the cap, or many small ones."""

    fill_share: Probability
    fill_amount_yen: Annotated[int, Integer(1, 10_000_000)]
    fill_rate_per_day: Annotated[float, Number(0.001, 100.0)]
    rate_per_day: Annotated[float, Number(0.001, 100.0)]
    median_yen: Annotated[float, Number(1.0, 10_000_000.0)]
    sigma: Annotated[float, Number(0.0, 3.0)] = 0.5


class SpendEventFile(ConfigModel):
    name: Text
    starts: Day
    ends: Day
    multiplier: Annotated[float, Number(0.0, 1000.0)]

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.ends < self.starts:
            raise at_key("ends", "must not be before starts")
        return self


def _nonzero(key: str, weights: list[float]) -> None:
    if sum(weights) <= 0:
        raise at_key(key, "must not be all zero")


class SpendingFile(ConfigModel):
    start_delay_days: Annotated[int, Integer(0, 365)] = 1
    never_share: Probability = 0.0
    refund_rate: Annotated[float, Number(0.0, 0.5)] = 0.0
    refund_after_days: Annotated[float, Number(0.01, 365.0)] = 5.0
    hourly_profile: list[Annotated[float, Number(0)]] = _weights(24)
    #: Monday .. Sunday.
    weekday_factors: list[Annotated[float, Number(0)]] = _weights(7)
    payday: Annotated[int, Integer(1, 31)] = 25
    payday_days: Annotated[int, Integer(0, 31)] = 1
    payday_factor: Annotated[float, Number(0.0, 100.0)] = 1.0
    charge: SpenderFile
    purchase: SpenderFile
    events: list[SpendEventFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        _nonzero("hourly_profile", self.hourly_profile)
        _nonzero("weekday_factors", self.weekday_factors)
        return self


class IngestionFile(ConfigModel):
    """The platform's operator-facing capacity."""

    workers: Annotated[int, Integer(1, 100_000)]
    per_report_ms: Annotated[float, Number(1e-6, 60_000.0)]
    request_overhead_ms: Annotated[float, Number(0.0, 60_000.0)] = 1.0
    verify_ms: Annotated[float, Number(0.0, 600_000.0)] = 20.0
    feed_page_ms: Annotated[float, Number(0.0, 600_000.0)] = 5.0
    feed_page_size: Annotated[int, Integer(1, 1_000_000)] = 500
    settlement_ms: Annotated[float, Number(0.0, 3_600_000.0)] = 1000.0
    settlement_day: Annotated[int, Integer(1, 28)] = 10
    step_seconds: Annotated[int, Integer(1, 3600)] = 10
    #: Share of report requests answered with an error (0 unless measured: --hil-operators).
    error_share: Annotated[float, Number(0.0, 0.99)] = 0.0

    @model_validator(mode="after")
    def _check(self) -> Self:
        if 3600 % self.step_seconds:
            raise at_key("step_seconds", "must divide 3600")
        return self


class ServiceKindFile(ConfigModel):
    name: Text
    label: Text = ""
    services: Annotated[int, Integer(1, 10_000)]
    share: Probability
    grant: Annotated[str, OneOf(*GRANT_MODES)]
    reporting: Annotated[str, OneOf(*REPORTING_MODES)]
    #: Batch reporting only: minutes between batches (default 10) and reports per batch.
    batch_minutes: Annotated[int, Integer(0, 1440)] | None = None
    batch_size: Annotated[int, Integer(1, 1_000_000)] | None = None
    #: Reports per request when sending what was held (after an outage or a give-up).
    catchup_batch: Annotated[int, Integer(1, 1_000_000)] = 5000
    timeout_s: Annotated[float, Number(0.01, 3600.0)] = 30.0
    retries: Annotated[int, Integer(0, 20)] = 3
    backoff_s: Annotated[float, Number(0.0, 3600.0)] = 5.0
    feed_minutes: Annotated[int, Integer(1, 1440)] = 15
    size_exponent: Annotated[float, Number(0.0, 5.0)] = 1.0
    outages_per_year: Annotated[float, Number(0.0, 365.0)] = 0.0
    outage_minutes: Annotated[float, Number(0.1, 7 * 1440.0)] = 60.0

    @model_validator(mode="after")
    def _check(self) -> Self:
        batch = self.reporting == "batch"
        minutes = self.batch_minutes_or_default
        if batch and minutes < 1:
            raise at_key("batch_minutes", "must be >= 1 for batch reporting")
        if batch and 1440 % minutes and minutes % 60:
            raise at_key("batch_minutes", "must divide a day into whole ticks")
        if not batch and minutes:
            raise at_key("batch_minutes", "only for batch reporting")
        return self

    @property
    def batch_minutes_or_default(self) -> int:
        if self.batch_minutes is not None:
            return self.batch_minutes
        return 10 if self.reporting == "batch" else 0

    @property
    def batch_size_or_default(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 1000 if self.reporting == "batch" else 1

    def service_names(self) -> list[str]:
        return [f"{self.name}-{i + 1}" for i in range(self.services)]


class OutageFile(ConfigModel):
    """A service cannot reach the platform (its link is down) from ``starts`` (JST)."""

    service: Text
    starts: Moment
    minutes: Annotated[float, Number(0.1, 30 * 1440.0)]


@functools.cache
def bundled_scheme() -> Scheme:
    """The bundled campaigns, read once per process (sweeps parse scenarios many times)."""
    return load_scheme()


class OperatorsFile(ConfigModel):
    """The payment side: services, holders' spending, the platform's intake of reports."""

    #: A campaign of scenarios/campaigns (its rate, cap and spend window).
    campaign: Text
    budget_yen: Annotated[int, Integer(0, 10**15)] = 0
    seed: Annotated[int, Integer(0, 2**32 - 1)] = 1
    spending: SpendingFile
    ingestion: IngestionFile
    kinds: list[ServiceKindFile] = Field(min_length=1)
    outages: list[OutageFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if bundled_scheme().campaign(self.campaign) is None:
            raise at_key(
                "campaign", f"no bundled campaign {self.campaign!r} (scenarios/campaigns/)"
            )
        names = [k.name for k in self.kinds]
        if len(set(names)) != len(names):
            raise at_key("kinds", "kind names must differ")
        total = sum(k.share for k in self.kinds)
        if abs(total - 1) > 1e-6:
            raise at_key("kinds", f"shares must add up to 1, got {total:.6g}")
        known = sorted(name for kind in self.kinds for name in kind.service_names())
        for i, outage in enumerate(self.outages):
            if outage.service not in known:
                raise at_key(
                    f"outages[{i}].service",
                    f"no service {outage.service!r} (names are KIND-N, e.g. {known[0]})",
                )
        return self


class ScenarioFile(ConfigModel):
    """A scenario file (``extends`` already resolved)."""

    name: Text | None = None
    description: Text = ""
    run: RunFile
    population: PopulationFile
    demand: DemandFile
    channels: ChannelsFile
    pin: PinFile
    behaviour: BehaviourFile
    platform: PlatformFile
    campaign: CampaignFile
    calibration: CalibrationFile | None = None
    procedure_spots: list[ProcedureSpotFile] = Field(default_factory=list)
    #: The payment side (simulator/operators/), inline or the name of a file beside this one.
    operators: OperatorsFile | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        regions = self.population.regions
        for i, region in enumerate(self.run.regions):
            if region not in regions:
                raise at_key(f"run.regions[{i}]", f"unknown region {region!r}")
        municipalities = sum(p.municipalities for p in self.population.prefectures)
        for i, spot in enumerate(self.procedure_spots):
            if spot.channel == WINDOW and spot.count != municipalities:
                raise at_key(
                    f"procedure_spots[{i}].count",
                    f"one window per municipality: must be {municipalities}",
                )
        for name in STATION_CHANNELS:
            if name == WINDOW:
                continue
            station = self.channels.by_name(name)
            assert isinstance(station, StationChannelFile)
            listed = [s for s in self.procedure_spots if s.channel == name]
            opening = sum(s.count for s in listed if s.available_from is None)
            if listed and not station.spots and opening < 1:
                raise at_key("procedure_spots", f"{name} has no spots from the opening")
            if not listed and not station.spots:
                raise at_key(
                    f"channels.{name}.spots", "must be >= 1 (or listed in procedure_spots)"
                )
        return self
