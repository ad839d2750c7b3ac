"""The operator part of a scenario: payment services, holders' spending, the platform's intake.

Read from the ``operators`` table of a scenario (usually a file the scenario names, such as
``scenarios/operator-load/round1.toml``, inlined on load) into frozen dataclasses; every
number is validated and an error names its dotted path (``operators.kinds[1].share: ...``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from reference_impl.points.campaign import Scheme, SpendRule

from ..scenario import ScenarioError, _Table

__all__ = [
    "GRANT_MODES",
    "REPORTING_MODES",
    "Ingestion",
    "OperatorModel",
    "Outage",
    "ServiceKind",
    "SpendEvent",
    "Spender",
    "Spending",
    "parse_operators",
]

GRANT_MODES = ("charge", "purchase")
REPORTING_MODES = ("realtime", "batch")


@dataclass(frozen=True)
class Spender:
    """How holders of one grant mode spend: a one-off fill of the cap, or many small ones."""

    #: Share who spend the cap's worth in one transaction (a prepaid charge of 20,000 yen).
    fill_share: float
    fill_amount_yen: int
    #: Daily chance (hazard, times the day's factor) that a filler makes that transaction.
    fill_rate_per_day: float
    #: The others: transactions per day (times the day's factor), lognormal amounts.
    rate_per_day: float
    median_yen: float
    sigma: float

    @property
    def mean_yen(self) -> float:
        return self.median_yen * math.exp(self.sigma**2 / 2)


@dataclass(frozen=True)
class SpendEvent:
    name: str
    starts: date
    ends: date
    multiplier: float


@dataclass(frozen=True)
class Spending:
    start_delay_days: int
    never_share: float
    refund_rate: float
    refund_after_days: float
    hourly_profile: tuple[float, ...]
    weekday_factors: tuple[float, ...]
    payday: int
    payday_days: int
    payday_factor: float
    by_grant: dict[str, Spender]
    events: tuple[SpendEvent, ...]

    def day_factor(self, day: date) -> float:
        """Relative spending on a day: weekday, payday, campaign events (multiplied)."""
        factor = self.weekday_factors[day.weekday()]
        after_payday = (day - day.replace(day=min(self.payday, 28))).days
        if 0 <= after_payday < self.payday_days:
            factor *= self.payday_factor
        for event in self.events:
            if event.starts <= day <= event.ends:
                factor *= event.multiplier
        return factor


@dataclass(frozen=True)
class Ingestion:
    """The platform's operator-facing capacity."""

    workers: int
    per_report_ms: float
    request_overhead_ms: float
    verify_ms: float
    feed_page_ms: float
    feed_page_size: int
    settlement_ms: float
    settlement_day: int
    step_seconds: int
    #: Share of report requests the platform answers with an error (sent again, like a
    #: timeout); 0 unless measured (--hil-operators).
    error_share: float = 0.0

    def batch_seconds(self, reports: float) -> float:
        """Worker time for one request carrying ``reports`` reports."""
        return (self.request_overhead_ms + reports * self.per_report_ms) / 1000


@dataclass(frozen=True)
class ServiceKind:
    name: str
    label: str
    services: int
    share: float
    grant: str
    reporting: str
    batch_minutes: int
    batch_size: int
    #: Reports per request when sending what was held (after an outage or a give-up).
    catchup_batch: int
    timeout_s: float
    retries: int
    backoff_s: float
    feed_minutes: int
    size_exponent: float
    outages_per_year: float
    outage_minutes: float

    def service_shares(self) -> list[float]:
        """Shares of applicants of each service of the kind, largest first (Zipf)."""
        weights = [1 / (k + 1) ** self.size_exponent for k in range(self.services)]
        total = sum(weights)
        return [self.share * w / total for w in weights]


@dataclass(frozen=True)
class Outage:
    """A service cannot reach the platform (its link is down) from ``starts`` (JST)."""

    service: str
    starts: datetime
    minutes: float


@dataclass(frozen=True)
class OperatorModel:
    campaign: str
    spend: SpendRule
    budget_yen: int
    seed: int
    spending: Spending
    ingestion: Ingestion
    kinds: tuple[ServiceKind, ...]
    outages: tuple[Outage, ...]

    def services(self) -> list[tuple[str, ServiceKind, float]]:
        """Every service: its name (KIND-N), its kind and its share of applicants."""
        return [
            (f"{kind.name}-{i + 1}", kind, share)
            for kind in self.kinds
            for i, share in enumerate(kind.service_shares())
        ]


def _spender(table: _Table) -> Spender:
    result = Spender(
        fill_share=table.probability("fill_share"),
        fill_amount_yen=table.integer("fill_amount_yen", lo=1, hi=10_000_000),
        fill_rate_per_day=table.number("fill_rate_per_day", lo=0.001, hi=100.0),
        rate_per_day=table.number("rate_per_day", lo=0.001, hi=100.0),
        median_yen=table.number("median_yen", lo=1.0, hi=10_000_000.0),
        sigma=table.number("sigma", 0.5, 0.0, 3.0),
    )
    table.done()
    return result


def _weights(table: _Table, key: str, count: int, default: list[float]) -> tuple[float, ...]:
    raw = table.array(key, default)
    if len(raw) != count:
        raise ScenarioError(f"{table.where(key)}: must have {count} weights")
    for i, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ScenarioError(f"{table.where(key)}[{i}]: must be a number >= 0, got {value!r}")
    if sum(raw) <= 0:
        raise ScenarioError(f"{table.where(key)}: must not be all zero")
    return tuple(float(v) for v in raw)


def _spending(table: _Table) -> Spending:
    events = []
    for i, raw in enumerate(table.array("events", [])):
        row = _Table(raw, f"{table.where('events')}[{i}]")
        event = SpendEvent(
            name=row.text("name"),
            starts=row.day("starts"),
            ends=row.day("ends"),
            multiplier=row.number("multiplier", lo=0.0, hi=1000.0),
        )
        row.done()
        if event.ends < event.starts:
            raise ScenarioError(f"{row.where('ends')}: must not be before starts")
        events.append(event)
    by_grant = {}
    for mode in GRANT_MODES:
        by_grant[mode] = _spender(table.table(mode))
    result = Spending(
        start_delay_days=table.integer("start_delay_days", 1, hi=365),
        never_share=table.probability("never_share", 0.0),
        refund_rate=table.number("refund_rate", 0.0, 0.0, 0.5),
        refund_after_days=table.number("refund_after_days", 5.0, 0.01, 365.0),
        hourly_profile=_weights(table, "hourly_profile", 24, [1.0] * 24),
        weekday_factors=_weights(table, "weekday_factors", 7, [1.0] * 7),
        payday=table.integer("payday", 25, lo=1, hi=31),
        payday_days=table.integer("payday_days", 1, hi=31),
        payday_factor=table.number("payday_factor", 1.0, 0.0, 100.0),
        by_grant=by_grant,
        events=tuple(events),
    )
    table.done()
    return result


def _ingestion(table: _Table) -> Ingestion:
    result = Ingestion(
        workers=table.integer("workers", lo=1, hi=100_000),
        per_report_ms=table.number("per_report_ms", lo=1e-6, hi=60_000.0),
        request_overhead_ms=table.number("request_overhead_ms", 1.0, 0.0, 60_000.0),
        verify_ms=table.number("verify_ms", 20.0, 0.0, 600_000.0),
        feed_page_ms=table.number("feed_page_ms", 5.0, 0.0, 600_000.0),
        feed_page_size=table.integer("feed_page_size", 500, lo=1, hi=1_000_000),
        settlement_ms=table.number("settlement_ms", 1000.0, 0.0, 3_600_000.0),
        settlement_day=table.integer("settlement_day", 10, lo=1, hi=28),
        step_seconds=table.integer("step_seconds", 10, lo=1, hi=3600),
        error_share=table.number("error_share", 0.0, 0.0, 0.99),
    )
    if 3600 % result.step_seconds:
        raise ScenarioError(f"{table.where('step_seconds')}: must divide 3600")
    table.done()
    return result


def _kind(table: _Table) -> ServiceKind:
    grant = table.text("grant")
    if grant not in GRANT_MODES:
        raise ScenarioError(f"{table.where('grant')}: must be charge or purchase, got {grant!r}")
    reporting = table.text("reporting")
    if reporting not in REPORTING_MODES:
        raise ScenarioError(
            f"{table.where('reporting')}: must be realtime or batch, got {reporting!r}"
        )
    batch = reporting == "batch"
    result = ServiceKind(
        name=table.text("name"),
        label=table.text("label", ""),
        services=table.integer("services", lo=1, hi=10_000),
        share=table.probability("share"),
        grant=grant,
        reporting=reporting,
        batch_minutes=table.integer("batch_minutes", 10 if batch else 0, lo=0, hi=1440),
        batch_size=table.integer("batch_size", 1000 if batch else 1, lo=1, hi=1_000_000),
        catchup_batch=table.integer("catchup_batch", 5000, lo=1, hi=1_000_000),
        timeout_s=table.number("timeout_s", 30.0, 0.01, 3600.0),
        retries=table.integer("retries", 3, hi=20),
        backoff_s=table.number("backoff_s", 5.0, 0.0, 3600.0),
        feed_minutes=table.integer("feed_minutes", 15, lo=1, hi=1440),
        size_exponent=table.number("size_exponent", 1.0, 0.0, 5.0),
        outages_per_year=table.number("outages_per_year", 0.0, 0.0, 365.0),
        outage_minutes=table.number("outage_minutes", 60.0, 0.1, 7 * 1440.0),
    )
    if batch and result.batch_minutes < 1:
        raise ScenarioError(f"{table.where('batch_minutes')}: must be >= 1 for batch reporting")
    if batch and 1440 % result.batch_minutes and result.batch_minutes % 60:
        raise ScenarioError(f"{table.where('batch_minutes')}: must divide a day into whole ticks")
    if not batch and result.batch_minutes:
        raise ScenarioError(f"{table.where('batch_minutes')}: only for batch reporting")
    table.done()
    return result


def _when(table: _Table, key: str) -> datetime:
    value = table.raw(key)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=None)
        except ValueError:
            pass
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    raise ScenarioError(f"{table.where(key)}: must be a time like 2020-09-01T12:00, got {value!r}")


@functools.cache
def _bundled_scheme() -> Scheme:
    """The bundled campaigns, read once per process (sweeps parse scenarios many times)."""
    from reference_impl.points import load_scheme

    return load_scheme()


def _campaign_rule(name: str, where: str) -> SpendRule:
    campaign = _bundled_scheme().campaign(name)
    if campaign is None:
        raise ScenarioError(f"{where}: no bundled campaign {name!r} (scenarios/campaigns/)")
    return campaign.spend


def parse_operators(table: _Table) -> OperatorModel:
    """Validate the ``operators`` table of a scenario."""
    campaign = table.text("campaign")
    kinds = []
    for i, raw in enumerate(table.array("kinds")):
        kinds.append(_kind(_Table(raw, f"{table.where('kinds')}[{i}]")))
    if not kinds:
        raise ScenarioError(f"{table.where('kinds')}: must list at least one kind of service")
    names = [k.name for k in kinds]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{table.where('kinds')}: kind names must differ")
    total = sum(k.share for k in kinds)
    if abs(total - 1) > 1e-6:
        raise ScenarioError(f"{table.where('kinds')}: shares must add up to 1, got {total:.6g}")
    model = OperatorModel(
        campaign=campaign,
        spend=_campaign_rule(campaign, table.where("campaign")),
        budget_yen=table.integer("budget_yen", 0, hi=10**15),
        seed=table.integer("seed", 1, hi=2**32 - 1),
        spending=_spending(table.table("spending")),
        ingestion=_ingestion(table.table("ingestion")),
        kinds=tuple(kinds),
        outages=(),
    )
    known = {name for name, _, _ in model.services()}
    outages = []
    for i, raw in enumerate(table.array("outages", [])):
        row = _Table(raw, f"{table.where('outages')}[{i}]")
        outage = Outage(row.text("service"), _when(row, "starts"),
                        row.number("minutes", lo=0.1, hi=30 * 1440.0))  # fmt: skip
        if outage.service not in known:
            example = next(iter(sorted(known)))
            raise ScenarioError(
                f"{row.where('service')}: no service {outage.service!r} (names are KIND-N, "
                f"e.g. {example})"
            )
        row.done()
        outages.append(outage)
    table.done()
    return replace(model, outages=tuple(outages))


def outage_end(outage: Outage) -> datetime:
    return outage.starts + timedelta(minutes=outage.minutes)


def as_table(data: Any, path: str = "operators") -> _Table:
    return _Table(data, path)
