"""How long a My Number card and its certificates are valid, and who gets a signing
certificate: pure date rules, one per function.

SPEC.md: a certificate is valid until the holder's 5th birthday after issuance; the card until
the 10th for an adult, and for a holder who was a minor the card lasts as long as the
certificate. A certificate renewed at the window is valid until the card's own expiry
(seed 000: 更新済みの方は、マイナンバーカードの有効期限まで). The age of majority is the Civil
Code's: 20 before 1 April 2022, 18 from then.

Who is a minor for the card: the holder's age on the day the card is issued (seed 000:
交付時に未成年の方), against the age of majority in force on the card-application date (申請受付日,
the day J-LIS received the application). Municipal notices of the 2022 change say so: an
application received before 2022-04-01 gives a 19-year-old a 5-year card even when it is issued
after that day; one received from then on gives an 18-year-old a 10-year card. Birthdays are
counted from the issuance date.

No digital-signature certificate is issued to a holder under 15 on the day it would be issued
(their card carries the user-authentication certificate only).
"""

from __future__ import annotations

from datetime import date

__all__ = [
    "MAJORITY_CHANGE",
    "SIGNING_MIN_AGE",
    "age_of_majority",
    "age_on",
    "card_expiry",
    "certificate_not_after",
    "is_minor",
    "minor_for_the_card",
    "nth_birthday_after",
    "renewed_certificate_not_after",
    "signing_certificate_allowed",
]

MAJORITY_CHANGE = date(2022, 4, 1)
"""The day the Civil Code's age of majority went from 20 to 18."""

CERTIFICATE_BIRTHDAYS = 5
ADULT_CARD_BIRTHDAYS = 10
MINOR_CARD_BIRTHDAYS = 5
SIGNING_MIN_AGE = 15
"""No signing certificate is issued to anyone younger (SPEC.md, "The card and its PIN")."""


def _birthday_in(birth: date, year: int) -> date:
    """The holder's birthday in ``year``; 29 February becomes 28 February in a common year."""
    try:
        return birth.replace(year=year)
    except ValueError:  # only 29 February in a common year
        return date(year, 2, 28)


def nth_birthday_after(birth: date, after: date, n: int) -> date:
    """The ``n``-th birthday strictly after ``after`` (a birthday on ``after`` itself is not one).

    Birthdays are the anniversaries of ``birth``, so the first is one year after it, whatever
    ``after`` is. Choice: someone born on 29 February has their birthday on 28 February in
    common years (the card must expire on a date that exists every year, and the day before
    1 March is the one the holder has already reached that age by).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    year = after.year if _birthday_in(birth, after.year) > after else after.year + 1
    year = max(year, birth.year + 1)
    return _birthday_in(birth, year + n - 1)


def age_on(birth: date, day: date) -> int:
    """Completed years of age on ``day`` (birthdays as in :func:`nth_birthday_after`)."""
    if day < birth:
        raise ValueError(f"{day} is before the birth date {birth}")
    return day.year - birth.year - (1 if day < _birthday_in(birth, day.year) else 0)


def age_of_majority(on: date) -> int:
    """The Civil Code's age of majority in force on ``on``: 20, or 18 from 1 April 2022."""
    return 20 if on < MAJORITY_CHANGE else 18


def is_minor(birth: date, on: date) -> bool:
    """Whether someone born on ``birth`` is under the age of majority on ``on``."""
    return age_on(birth, on) < age_of_majority(on)


def minor_for_the_card(birth: date, issued: date, applied_on: date) -> bool:
    """Whether the card is a minor's: under the age of majority on the issuance day (seed
    000), the age of majority being the one in force on the card-application date."""
    if applied_on > issued:
        raise ValueError(
            f"the card-application date {applied_on} is after the issuance date {issued}"
        )
    return age_on(birth, issued) < age_of_majority(applied_on)


def card_expiry(birth: date, issued: date, *, applied_on: date | None = None) -> date:
    """The card's last valid day: the 10th birthday after issuance, the 5th for a minor's card
    (:func:`minor_for_the_card`; ``applied_on`` is the issuance date if not given: a card
    applied for and issued on the same day)."""
    applied = issued if applied_on is None else applied_on
    minor = minor_for_the_card(birth, issued, applied)
    birthdays = MINOR_CARD_BIRTHDAYS if minor else ADULT_CARD_BIRTHDAYS
    return nth_birthday_after(birth, issued, birthdays)


def signing_certificate_allowed(birth: date, on: date) -> bool:
    """Whether a digital-signature certificate may be issued on ``on``: 15 or older."""
    return age_on(birth, on) >= SIGNING_MIN_AGE


def certificate_not_after(birth: date, issued: date, card_expires: date) -> date:
    """A JPKI certificate's last valid day: the 5th birthday after issuance, never past the card."""
    return min(nth_birthday_after(birth, issued, CERTIFICATE_BIRTHDAYS), card_expires)


def renewed_certificate_not_after(card_expires: date) -> date:
    """A renewed certificate's last valid day: the card's own (SPEC, seed 000), however early
    in the card's life it was renewed."""
    return card_expires
