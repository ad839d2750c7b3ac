"""The operator part of a scenario: payment services, holders' spending, the platform's intake.

Read from the ``operators`` table of a scenario (usually a file the scenario names, such as
``scenarios/operator-load/round1.toml``, inlined on load) into frozen dataclasses, after the
file's model (:class:`mynahil.simulator.scenario_file.OperatorsFile`) validated every number; an
error names its dotted path (``operators.kinds[1].share: ...``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mynahil.config import validated, values
from mynahil.reference_impl.points.campaign import SpendRule

from .scenario_file import (
    GRANT_MODES,
    REPORTING_MODES,
    OperatorsFile,
    ScenarioError,
    bundled_scheme,
)

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
    "operator_model",
    "parse_operators",
]


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


def _operator_model(file: OperatorsFile) -> OperatorModel:
    spending = file.spending
    campaign = bundled_scheme().campaign(file.campaign)
    assert campaign is not None  # OperatorsFile checked it
    return OperatorModel(
        campaign=file.campaign,
        spend=campaign.spend,
        budget_yen=file.budget_yen,
        seed=file.seed,
        spending=Spending(
            start_delay_days=spending.start_delay_days,
            never_share=spending.never_share,
            refund_rate=spending.refund_rate,
            refund_after_days=spending.refund_after_days,
            hourly_profile=tuple(spending.hourly_profile),
            weekday_factors=tuple(spending.weekday_factors),
            payday=spending.payday,
            payday_days=spending.payday_days,
            payday_factor=spending.payday_factor,
            by_grant={mode: Spender(**values(getattr(spending, mode))) for mode in GRANT_MODES},
            events=tuple(SpendEvent(**values(e)) for e in spending.events),
        ),
        ingestion=Ingestion(**values(file.ingestion)),
        kinds=tuple(
            ServiceKind(
                **values(kind, exclude=("batch_minutes", "batch_size")),
                batch_minutes=kind.batch_minutes_or_default,
                batch_size=kind.batch_size_or_default,
            )
            for kind in file.kinds
        ),
        outages=tuple(Outage(**values(o)) for o in file.outages),
    )


def parse_operators(data: object, where: str = "operators") -> OperatorModel:
    """Validate the ``operators`` table of a scenario (errors name ``operators.…``)."""
    return _operator_model(validated(OperatorsFile, data, ScenarioError, prefix=where))


def operator_model(file: OperatorsFile) -> OperatorModel:
    """The domain model of an ``operators`` table already validated with its scenario."""
    return _operator_model(file)


def outage_end(outage: Outage) -> datetime:
    return outage.starts + timedelta(minutes=outage.minutes)
