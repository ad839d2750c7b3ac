"""The point rules as pure functions, and campaign files validated on load."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynahil.reference_impl.points import (
    Bonus,
    CampaignError,
    load_campaign,
    load_scheme,
    parse_campaign,
)
from mynahil.reference_impl.points.rules import (
    Eligibility,
    Registration,
    decide_grant,
    eligibility,
    points_for,
    refund_clawback,
    registration_counts,
)

ROUND1 = load_scheme().campaigns["round1"]
RULE = ROUND1.spend
amounts = st.integers(min_value=1, max_value=2_000_000)


@given(amount=amounts, held=st.integers(min_value=0, max_value=6000))
def test_grant_is_a_quarter_floored_and_never_past_the_cap(amount: int, held: int) -> None:
    grant = decide_grant(amount, RULE, held)
    assert 0 <= grant.points <= amount // 4
    assert held + grant.points <= max(held, RULE.cap_yen)
    assert grant.capped == (amount * 25 // 100 > max(0, RULE.cap_yen - held))
    if not grant.capped:
        assert grant.points == amount * 25 // 100


@given(amount=amounts, data=st.data())
def test_refunds_never_take_back_more_than_was_granted(amount: int, data: st.DataObject) -> None:
    granted = data.draw(st.integers(min_value=0, max_value=points_for(amount, 25)))
    refunded, net = 0, granted
    partials = data.draw(st.lists(st.integers(min_value=1, max_value=amount), max_size=5))
    for wanted in [*partials, amount]:  # a few partial refunds, then the rest
        if refunded == amount:
            break
        refund = min(wanted, amount - refunded)
        taken = refund_clawback(amount, refunded, refund, net, 25)
        assert 0 <= taken <= net
        refunded, net = refunded + refund, net - taken
        assert net <= points_for(amount - refunded, 25)
    assert net == 0  # fully refunded: nothing kept


def test_window_is_in_japan_time_and_extends_for_early_card_applicants() -> None:
    applied = datetime(2020, 8, 1, tzinfo=UTC)
    last_jst_minute = datetime(2021, 3, 31, 14, 59, tzinfo=UTC)
    next_minute = datetime(2021, 3, 31, 15, 0, tzinfo=UTC)
    early, late = date(2020, 6, 1), date(2021, 5, 1)
    assert eligibility(RULE, last_jst_minute, applied, late) is Eligibility.ELIGIBLE
    assert eligibility(RULE, next_minute, applied, late) is Eligibility.OUTSIDE_CAMPAIGN
    assert eligibility(RULE, next_minute, applied, early) is Eligibility.ELIGIBLE
    assert RULE.window_end(early) == date(2021, 12, 31)
    assert eligibility(RULE, applied, applied.replace(day=2), early) is (
        Eligibility.BEFORE_APPLICATION
    )


def test_round2_shares_round1s_cap_group_and_adds_bonuses() -> None:
    scheme = load_scheme()
    round2 = scheme.campaigns["round2"]
    assert round2.spend.cap_group == RULE.cap_group
    assert {b.kind: b.yen for b in round2.bonuses} == {
        "health_insurance": 7500,
        "public_fund_account": 7500,
    }


def _round1_data() -> dict[str, Any]:
    return {
        "id": "r", "title": "R",
        "application": {"opens": date(2020, 7, 1), "closes": date(2021, 12, 31)},
        "spend": {
            "rate_percent": 25, "cap_yen": 5000, "cap_group": "spend",
            "starts": date(2020, 9, 1), "ends": date(2021, 3, 31),
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["spend"].update(rate_percent=0), "spend.rate_percent: must be an integer"),
        (lambda d: d["spend"].update(cap_yen="5000"), "spend.cap_yen: must be an integer"),
        (lambda d: d["spend"].pop("starts"), "spend.starts: missing"),
        (lambda d: d["spend"].update(ends=date(2020, 1, 1)), "spend.ends: 2020-01-01 is before"),
        (lambda d: d["spend"].update(ends="2021-03-31"), "spend.ends: must be a date"),
        (lambda d: d.update(colour="red"), "colour: unknown key"),
        (lambda d: d["spend"].update(extensions=[{"ends": date(2021, 1, 1)}]), "extensions[0]"),
        (lambda d: d.update(bonuses=[{"kind": "x", "yen": 1}]), "bonuses[0].opens: missing"),
    ],
)
def test_bad_campaigns_are_refused_naming_the_field(change: Any, message: str) -> None:
    data = _round1_data()
    change(data)
    with pytest.raises(CampaignError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_campaign(data)


def test_campaign_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("id = 'x'\n[spend\n")
    with pytest.raises(CampaignError, match=r"broken\.toml: not valid TOML"):
        load_campaign(broken)
    with pytest.raises(CampaignError, match="no campaign files"):
        load_scheme(tmp_path / "empty")


@given(
    st.dictionaries(
        st.sampled_from(["id", "title", "application", "spend", "bonuses"]),
        st.one_of(st.integers(), st.text(), st.none(), st.lists(st.integers())),
    )
)
def test_any_garbage_is_a_campaign_error_never_a_crash(data: dict[str, Any]) -> None:
    with pytest.raises(CampaignError):
        parse_campaign(data)


# --- a bonus needs a registration made by the deadline --------------------------------------


def test_a_bonus_may_name_its_registration_deadline() -> None:
    data = _round1_data()
    bonus = {"kind": "health_insurance", "yen": 7500, "opens": date(2022, 6, 30),
             "closes": date(2023, 9, 30)}  # fmt: skip
    data["bonuses"] = [dict(bonus, registered_by=date(2023, 5, 31))]
    assert parse_campaign(data).bonuses[0].registration_deadline == date(2023, 5, 31)
    data["bonuses"] = [bonus]
    assert parse_campaign(data).bonuses[0].registration_deadline == date(2023, 9, 30)
    data["bonuses"] = [dict(bonus, registered_by=date(2023, 10, 1))]
    with pytest.raises(CampaignError, match=r"bonuses\[0\]\.registered_by: 2023-10-01 is after"):
        parse_campaign(data)


BONUS = Bonus("health_insurance", 7500, date(2022, 6, 30), date(2023, 9, 30), date(2023, 5, 31))


@given(
    registered=st.one_of(st.none(), st.dates(date(2015, 1, 1), date(2024, 12, 31))),
    today=st.dates(date(2022, 6, 30), date(2023, 9, 30)),
)
def test_registration_counts_only_when_it_exists_by_the_deadline(
    registered: date | None, today: date
) -> None:
    verdict = registration_counts(BONUS, registered, today)
    exists = registered is not None and registered <= today
    if not exists:
        assert verdict is Registration.MISSING
    elif registered is not None and registered > date(2023, 5, 31):
        assert verdict is Registration.TOO_LATE
    else:
        assert verdict is Registration.COUNTS  # made before the round included
