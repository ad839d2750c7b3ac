"""The validity rules of SPEC.md "The card and its PIN": 5th-birthday certificates, 10-year
cards for adults, and the Civil Code's age of majority (20, then 18 from 1 April 2022)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynahil.reference_impl.jlis.validity import (
    age_of_majority,
    age_on,
    card_expiry,
    certificate_not_after,
    is_minor,
    minor_for_the_card,
    nth_birthday_after,
)

births = st.dates(min_value=date(1900, 1, 1), max_value=date(2080, 12, 31))
gaps = st.integers(min_value=0, max_value=110 * 366)
leap_births = (
    st.integers(min_value=1904, max_value=2080)
    .filter(lambda y: y % 4 == 0 and (y % 100 != 0 or y % 400 == 0))
    .map(lambda y: date(y, 2, 29))
)


def five_years_and_a_day(day: date) -> date:
    return (
        date(day.year + 5, 3, 1)
        if (day.month, day.day) == (2, 29)
        else (day.replace(year=day.year + 5) + timedelta(days=1))
    )


# --- worked examples ---------------------------------------------------------------------------


def test_birthday_on_the_day_itself_does_not_count() -> None:
    assert nth_birthday_after(date(1990, 6, 15), date(2024, 6, 15), 1) == date(2025, 6, 15)
    assert nth_birthday_after(date(1990, 6, 15), date(2024, 6, 14), 1) == date(2024, 6, 15)
    assert nth_birthday_after(date(1990, 6, 15), date(2024, 6, 14), 5) == date(2028, 6, 15)


def test_leap_day_birthday_falls_on_28_february_in_common_years() -> None:
    born = date(2000, 2, 29)
    assert nth_birthday_after(born, date(2024, 3, 1), 1) == date(2025, 2, 28)
    assert nth_birthday_after(born, date(2024, 3, 1), 4) == date(2028, 2, 29)
    assert nth_birthday_after(born, date(2025, 2, 28), 1) == date(2026, 2, 28)
    assert age_on(born, date(2025, 2, 27)) == 24
    assert age_on(born, date(2025, 2, 28)) == 25


def test_birthdays_start_one_year_after_birth() -> None:
    assert nth_birthday_after(date(2024, 5, 1), date(2024, 5, 1), 1) == date(2025, 5, 1)
    assert nth_birthday_after(date(2024, 5, 1), date(2020, 1, 1), 1) == date(2025, 5, 1)


def test_nth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        nth_birthday_after(date(1990, 1, 1), date(2024, 1, 1), 0)


def test_age() -> None:
    assert age_on(date(1990, 6, 15), date(2024, 6, 14)) == 33
    assert age_on(date(1990, 6, 15), date(2024, 6, 15)) == 34
    assert age_on(date(1990, 6, 15), date(1990, 6, 15)) == 0
    with pytest.raises(ValueError, match="before the birth date"):
        age_on(date(1990, 6, 15), date(1990, 6, 14))


def test_age_of_majority_changed_on_1_april_2022() -> None:
    assert age_of_majority(date(2022, 3, 31)) == 20
    assert age_of_majority(date(2022, 4, 1)) == 18


def test_eighteen_and_nineteen_year_olds_came_of_age_on_1_april_2022() -> None:
    born = date(2003, 6, 1)  # 18 on both days below
    assert is_minor(born, date(2022, 3, 31))
    assert not is_minor(born, date(2022, 4, 1))


def test_adult_card_lasts_ten_birthdays_certificate_five() -> None:
    born, issued = date(1985, 6, 15), date(2024, 5, 1)
    expires = card_expiry(born, issued)
    assert expires == date(2033, 6, 15)
    assert certificate_not_after(born, issued, expires) == date(2028, 6, 15)


def test_minor_card_lasts_five_birthdays_like_its_certificate() -> None:
    born, issued = date(2010, 1, 10), date(2024, 5, 1)
    expires = card_expiry(born, issued)
    assert expires == date(2029, 1, 10)
    assert certificate_not_after(born, issued, expires) == expires


def test_nineteen_year_old_was_a_minor_before_the_reform() -> None:
    born = date(2002, 1, 1)
    assert card_expiry(born, date(2021, 6, 1)) == date(2026, 1, 1)  # 19 < 20: minor
    assert card_expiry(born, date(2022, 6, 1)) == date(2032, 1, 1)  # 20 >= 18: adult


def test_a_holder_who_came_of_age_between_application_and_issuance_gets_an_adults_card() -> None:
    """Seed 000: the card is a minor's when its holder is a minor when it is issued (交付時に
    未成年), not when it was applied for. Applied for at 19 in 2020 (majority 20), issued at 20."""
    born, applied, issued = date(2001, 1, 15), date(2020, 12, 20), date(2021, 1, 25)
    assert is_minor(born, applied)
    assert not minor_for_the_card(born, issued, applied)
    assert card_expiry(born, issued, applied_on=applied) == date(2031, 1, 15)


def test_the_2022_switch_goes_by_the_application_date() -> None:
    """Municipal notices: applied for before 2022-04-01 at 19, issued after it still at 19: a
    minor's card (majority 20 on the application date); applied for from 2022-04-01: adult's."""
    born, issued = date(2002, 6, 1), date(2022, 4, 20)
    assert card_expiry(born, issued, applied_on=date(2022, 3, 25)) == date(2026, 6, 1)
    assert card_expiry(born, issued, applied_on=date(2022, 4, 1)) == date(2031, 6, 1)


@given(births, gaps, st.integers(min_value=0, max_value=400))
def test_a_minors_card_is_one_whose_holder_is_under_age_on_issuance(
    birth: date, gap: int, waited: int
) -> None:
    """Stated apart from the code: 5 or 10 birthdays, by the age on the issuance day and the
    majority (20, or 18 from 2022-04-01) on the application day."""
    applied = birth + timedelta(days=gap)
    issued = applied + timedelta(days=waited)
    majority = 20 if applied < date(2022, 4, 1) else 18
    came_of_age = nth_birthday_after(birth, birth, majority)  # that birthday (29 Feb: 28 Feb)
    birthdays = 5 if issued < came_of_age else 10
    assert card_expiry(birth, issued, applied_on=applied) == nth_birthday_after(
        birth, issued, birthdays
    )


def test_an_application_after_issuance_is_refused() -> None:
    with pytest.raises(ValueError, match="card-application date 2024-05-02 is after"):
        card_expiry(date(1990, 1, 1), date(2024, 5, 1), applied_on=date(2024, 5, 2))


def test_certificate_is_capped_by_the_card() -> None:
    assert certificate_not_after(date(1985, 6, 15), date(2024, 5, 1), date(2027, 1, 1)) == date(
        2027, 1, 1
    )


# --- properties --------------------------------------------------------------------------------


@given(births, gaps)
def test_certificate_ends_within_five_years_and_a_day(birth: date, gap: int) -> None:
    issued = birth + timedelta(days=gap)
    expires = card_expiry(birth, issued)
    not_after = certificate_not_after(birth, issued, expires)
    assert issued < not_after <= expires
    assert not_after <= five_years_and_a_day(issued)
    assert not_after > date(issued.year + 4, 1, 1)


@given(births, gaps)
def test_minor_card_expires_with_its_certificate(birth: date, gap: int) -> None:
    issued = birth + timedelta(days=gap)
    expires = card_expiry(birth, issued)
    if is_minor(birth, issued):
        assert expires == certificate_not_after(birth, issued, expires)
    else:
        assert expires == nth_birthday_after(birth, issued, 10)
        assert certificate_not_after(birth, issued, expires) < expires


@given(births, gaps, st.integers(min_value=1, max_value=20))
def test_nth_birthday_is_a_birthday(birth: date, gap: int, n: int) -> None:
    after = birth + timedelta(days=gap)
    day = nth_birthday_after(birth, after, n)
    assert day > after
    if (birth.month, birth.day) == (2, 29) and day.month == 2 and day.day == 28:
        assert day.year % 4 != 0 or (day.year % 100 == 0 and day.year % 400 != 0)
    else:
        assert (day.month, day.day) == (birth.month, birth.day)
    assert age_on(birth, day) == age_on(birth, after) + n


@given(births, gaps, st.integers(min_value=1, max_value=20))
def test_nth_birthday_is_monotonic_in_n(birth: date, gap: int, n: int) -> None:
    after = birth + timedelta(days=gap)
    this, following = nth_birthday_after(birth, after, n), nth_birthday_after(birth, after, n + 1)
    assert following.year == this.year + 1
    assert nth_birthday_after(birth, this, 1) == following


@given(leap_births, gaps)
def test_leap_day_holders_get_a_real_date(birth: date, gap: int) -> None:
    issued = birth + timedelta(days=gap)
    expires = card_expiry(birth, issued)
    assert (expires.month, expires.day) in ((2, 28), (2, 29))


def test_the_card_application_date_decides_the_age_of_majority() -> None:
    """Municipal notices of the 2022 change: the day J-LIS received the application counts."""
    born = date(2002, 6, 1)  # 19 in spring 2022
    issued = date(2022, 4, 20)
    assert card_expiry(born, issued, applied_on=date(2022, 3, 31)) == date(2026, 6, 1)
    assert card_expiry(born, issued, applied_on=date(2022, 4, 1)) == date(2031, 6, 1)
    assert card_expiry(born, issued) == date(2031, 6, 1)  # applied the day it was issued
    with pytest.raises(ValueError, match="after the issuance date"):
        card_expiry(born, issued, applied_on=date(2022, 4, 21))


def test_signing_certificates_from_the_15th_birthday() -> None:
    from mynahil.reference_impl.jlis.validity import signing_certificate_allowed

    born = date(2010, 2, 28)
    assert not signing_certificate_allowed(born, date(2025, 2, 27))
    assert signing_certificate_allowed(born, date(2025, 2, 28))
    assert signing_certificate_allowed(date(1990, 1, 1), date(2025, 1, 1))
