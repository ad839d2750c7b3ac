"""Round 2's bonuses are paid only for registrations the registries hold (SPEC.md: the platform
learns a registration from the system that holds it, not from the holder's word)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from mynahil.reference_impl.jlis import JlisCA, KeyPool
from mynahil.reference_impl.points import PointsError, Scheme, load_scheme
from mynahil.reference_impl.store import SqlStore
from tests.reference_impl.points.harness import START, Person, PointsPlatform

ROUND2_DAY = datetime(2022, 7, 1, 3, 0, tzinfo=UTC)


def applied_for_round2(points: PointsPlatform) -> Person:
    person = points.person(apply=False)
    points.advance_to(ROUND2_DAY)
    points.apply(person, campaign_id="round2")
    return person


def claim(points: PointsPlatform, person: Person, kind: str) -> int:
    return points.points.claim_bonus(points.card_proof(person.holder), "round2", kind).points


def refusal(points: PointsPlatform, person: Person, kind: str) -> str:
    with pytest.raises(PointsError) as refused:
        claim(points, person, kind)
    return refused.value.code


def test_no_registration_no_bonus(points: PointsPlatform) -> None:
    person = applied_for_round2(points)
    assert refusal(points, person, "health_insurance") == "registration_missing"
    assert refusal(points, person, "public_fund_account") == "registration_missing"
    # Each registry answers for its own kind only.
    points.register(person, "health_insurance", date(2022, 7, 1))
    assert claim(points, person, "health_insurance") == 7500
    assert refusal(points, person, "public_fund_account") == "registration_missing"
    assert points.points.violations() == []


def test_an_existing_registration_counts(points: PointsPlatform) -> None:
    person = applied_for_round2(points)
    points.register(person, "public_fund_account", date(2021, 11, 2))  # before round 2
    assert claim(points, person, "public_fund_account") == 7500


def test_a_registration_dated_after_today_does_not_exist_yet(points: PointsPlatform) -> None:
    person = applied_for_round2(points)
    points.register(person, "health_insurance", date(2022, 7, 2))
    assert refusal(points, person, "health_insurance") == "registration_missing"
    points.advance_to(datetime(2022, 7, 2, 3, 0, tzinfo=UTC))
    assert claim(points, person, "health_insurance") == 7500


def test_a_registration_made_after_the_deadline_does_not_count(
    store: SqlStore, jlis_ca: JlisCA, key_pool: KeyPool
) -> None:
    bundled = load_scheme()
    round2 = bundled.campaigns["round2"]
    deadline = tuple(replace(b, registered_by=date(2023, 5, 31)) for b in round2.bonuses)
    scheme = Scheme.of([bundled.campaigns["round1"], replace(round2, bonuses=deadline)])
    points = PointsPlatform(store, jlis_ca, key_pool, scheme=scheme)
    points.advance_to(START)
    on_time, late = applied_for_round2(points), applied_for_round2(points)
    points.register(on_time, "health_insurance", date(2023, 5, 31))
    points.register(late, "health_insurance", date(2023, 6, 1))
    points.advance_to(datetime(2023, 6, 10, 3, 0, tzinfo=UTC))
    assert claim(points, on_time, "health_insurance") == 7500
    assert refusal(points, late, "health_insurance") == "registration_too_late"
