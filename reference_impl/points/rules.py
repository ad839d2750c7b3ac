"""The point rules (SPEC.md "The points"), each in one pure function.

Rounding (this implementation's documented choice): points for a charge or purchase are
``floor(amount * rate_percent / 100)`` yen, per transaction, never past what is left of the
person's cap. Fractions are dropped per transaction, so 99 yen earns 24 points, not 24.75.

Refunds: a transaction keeps the points its *remaining* amount would earn, but never more than
it was granted. After a refund the transaction's net grant becomes
``min(net_before, floor((amount - refunded_total) * rate / 100))`` and the difference is taken
back. So a full refund takes back everything the charge earned; a partial refund of a charge
that was clipped by the cap takes back only what the remaining amount no longer covers. What a
refund frees under the cap is available to later transactions, never re-granted to earlier ones.

Time: campaign dates are Japan dates; a transaction's day is its time in JST (UTC+9, no DST).

Certificates (seed 004): while the holder's user-authentication certificate is expired, MyNa
Point cannot be used; once it is obtained again it can, with no new registration. A charge
earns nothing when, at the moment it was made, none of the holder's certificates was valid
(:func:`certificate_valid_at`); the outcome says ``certificate_expired``. The holder's
certificates are those bound to their MyKey ID and those J-LIS issued in their place (a
renewal counts from its own start, whether or not the holder has presented the card since).

Clock skew: a report dated more than :data:`FUTURE_SKEW` (5 minutes) after the platform's own
(business) clock is refused as ``future_dated`` (:func:`is_future_dated`); it is not kept, so
the operator may send it again once its clock is right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final

from msgspec import Struct

from mynahil.timezone import JST

from .campaign import Bonus, SpendRule

__all__ = [
    "FUTURE_SKEW",
    "CertificatePeriod",
    "Eligibility",
    "GrantDecision",
    "Registration",
    "certificate_valid_at",
    "decide_grant",
    "eligibility",
    "is_future_dated",
    "japan_date",
    "points_for",
    "refund_clawback",
    "registration_counts",
]


FUTURE_SKEW: Final = timedelta(minutes=5)
"""How far after the platform's clock a reported transaction may be dated (operators' clocks
drift); anything later has not happened yet."""


def japan_date(moment: datetime) -> date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give the time zone")
    return moment.astimezone(JST).date()


def points_for(amount: int, rate_percent: int) -> int:
    """The uncapped points a charge of ``amount`` yen earns: floor(amount * rate / 100)."""
    if amount < 0:
        raise ValueError(f"amount must not be negative, got {amount}")
    return amount * rate_percent // 100


class Eligibility(StrEnum):
    """Why a transaction may or may not earn points (the stable outcome codes)."""

    ELIGIBLE = "eligible"
    BEFORE_APPLICATION = "before_application"
    OUTSIDE_CAMPAIGN = "outside_campaign"


def eligibility(
    rule: SpendRule, occurred_at: datetime, applied_at: datetime, card_applied_on: date
) -> Eligibility:
    """Only transactions after the application and inside the holder's window count."""
    if occurred_at < applied_at:
        return Eligibility.BEFORE_APPLICATION
    day = japan_date(occurred_at)
    if day < rule.starts or day > rule.window_end(card_applied_on):
        return Eligibility.OUTSIDE_CAMPAIGN
    return Eligibility.ELIGIBLE


class GrantDecision(Struct, frozen=True, gc=False):
    """One per charge decided: a struct, as the batch's other values are (see .model)."""

    points: int
    capped: bool  # less than the full rate because of the cap


def decide_grant(amount: int, rule: SpendRule, granted_so_far: int) -> GrantDecision:
    """Points for an eligible charge, given what the person's cap group already holds."""
    if granted_so_far < 0:
        raise ValueError(f"granted_so_far must not be negative, got {granted_so_far}")
    full = points_for(amount, rule.rate_percent)
    room = max(0, rule.cap_yen - granted_so_far)
    return GrantDecision(min(full, room), capped=full > room)


def refund_clawback(
    amount: int, refunded_before: int, refund: int, net_granted: int, rate_percent: int
) -> int:
    """Points a refund of ``refund`` yen takes back from a transaction (see module docstring).

    ``refunded_before`` is what earlier refunds of the same transaction returned; the caller
    refuses refunds past the amount before asking.
    """
    if refund <= 0 or refunded_before < 0 or refunded_before + refund > amount:
        raise ValueError(
            f"a refund of {refund} after {refunded_before} does not fit a charge of {amount}"
        )
    remaining = amount - refunded_before - refund
    keeps = min(net_granted, points_for(remaining, rate_percent))
    return net_granted - keeps


class Registration(StrEnum):
    """Whether a registration earns a bonus (the refusals are stable problem codes)."""

    COUNTS = "counts"
    MISSING = "registration_missing"
    TOO_LATE = "registration_too_late"


def registration_counts(bonus: Bonus, registered_on: date | None, today: date) -> Registration:
    """A bonus needs a registration of its kind, as the registry holding it dates it, made on
    or before the bonus's registration deadline. One made before the round opened counts (an
    existing registration); one dated after ``today`` does not exist yet."""
    if registered_on is None or registered_on > today:
        return Registration.MISSING
    if registered_on > bonus.registration_deadline:
        return Registration.TOO_LATE
    return Registration.COUNTS


def is_future_dated(occurred_at: datetime, now: datetime, skew: timedelta = FUTURE_SKEW) -> bool:
    """A transaction dated after the platform's ``now`` by more than ``skew``."""
    return occurred_at > now + skew


@dataclass(frozen=True, slots=True)
class CertificatePeriod:
    """When one of the holder's user-authentication certificates was valid (inclusive)."""

    not_before: datetime
    not_after: datetime


def certificate_valid_at(periods: Sequence[CertificatePeriod | None], moment: datetime) -> bool:
    """Whether the holder had a valid certificate at ``moment`` (seed 004: while it is expired,
    MyNa Point cannot be used; a renewed certificate makes it usable again).

    ``periods`` are the holder's certificates: bound to their MyKey ID, or issued by J-LIS in
    place of a bound one (renewed, reissued) before the platform saw it. ``None`` stands for
    one whose validity the platform never recorded (bound before it kept validity), which is
    given the benefit of the doubt. A holder with no known certificate at all is not refused
    here either: whether they may take part at all is decided by their MyKey ID's state.
    """
    if not periods or any(p is None for p in periods):
        return True
    return any(p.not_before <= moment <= p.not_after for p in periods if p is not None)
