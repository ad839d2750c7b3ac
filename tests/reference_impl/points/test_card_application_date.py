"""The card-application date (申請受付日) comes from J-LIS, never from the certificate.

SPEC.md "The points": the round-1 extension is for holders who applied for their card by
2021-04-30, including those whose card arrived later and those who already had a card;
round 2 is for cards applied for by 2023-02-28. Seed 003 says so for the extension.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mynahil.reference_impl.points import Outcome, PointsError
from tests.reference_impl.mykey.platform import Cardholder
from tests.reference_impl.points.harness import Person, PointsPlatform


def jst_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 3, 0, tzinfo=UTC)


def holder_of(points: PointsPlatform, card: Cardholder) -> Person:
    mykey_id = points.issue(card).mykey_id
    account = points.books.open_account("holder")
    return Person(card, mykey_id, account.account_id, account.security_code)


def test_a_card_applied_for_in_april_and_received_in_may_gets_the_extension(
    points: PointsPlatform,
) -> None:
    card = points.new_card(issued_on=date(2021, 5, 20), applied_on=date(2021, 4, 20))
    points.advance_to(jst_noon(date(2021, 6, 1)))
    person = holder_of(points, card)
    application = points.apply(person)
    assert application.card_applied_on == date(2021, 4, 20)
    assert points.report(person, 4000).outcome is Outcome.GRANTED  # June: the extension
    points.advance_to(jst_noon(date(2021, 12, 31)))  # reported when it happens, not before
    december = points.report(person, 4000)
    assert december.outcome is Outcome.GRANTED


def test_a_card_applied_for_in_may_gets_no_extension(points: PointsPlatform) -> None:
    card = points.new_card(issued_on=date(2021, 5, 20), applied_on=date(2021, 5, 1))
    points.advance_to(jst_noon(date(2021, 6, 1)))
    with pytest.raises(PointsError) as closed:
        points.apply(holder_of(points, card))
    assert closed.value.code == "campaign_closed"


def test_an_existing_holder_who_renewed_the_certificate_in_june_2021_gets_the_extension(
    points: PointsPlatform,
) -> None:
    card = points.new_card(issued_on=date(2016, 3, 1), applied_on=date(2016, 1, 15))
    points.advance_to(jst_noon(date(2021, 6, 10)))
    points.renew(card)  # the 2016 certificate has lapsed; the window renews it for free
    person = holder_of(points, card)
    application = points.apply(person)
    assert application.card_applied_on == date(2016, 1, 15)
    assert points.report(person, 1000).outcome is Outcome.GRANTED


def test_a_reissued_card_keeps_the_first_cards_application_date(points: PointsPlatform) -> None:
    """Lost in May 2021 and reissued on a June application: the person applied in 2020."""
    card = points.new_card(issued_on=date(2020, 11, 1), applied_on=date(2020, 10, 1))
    points.advance_to(jst_noon(date(2021, 6, 20)))
    points.suspend(card)
    points.reissue(card, applied_on=date(2021, 6, 1))
    person = holder_of(points, card)
    assert points.apply(person).card_applied_on == date(2020, 10, 1)


def test_round2_takes_a_card_applied_for_by_february_and_received_in_march(
    points: PointsPlatform,
) -> None:
    on_time = points.new_card(issued_on=date(2023, 3, 20), applied_on=date(2023, 2, 28))
    late = points.new_card(issued_on=date(2023, 3, 20), applied_on=date(2023, 3, 1))
    points.advance_to(jst_noon(date(2023, 3, 25)))
    applied = points.apply(holder_of(points, on_time), campaign_id="round2")
    assert applied.card_applied_on == date(2023, 2, 28)
    with pytest.raises(PointsError) as refused:
        points.apply(holder_of(points, late), campaign_id="round2")
    assert refused.value.code == "not_eligible"
