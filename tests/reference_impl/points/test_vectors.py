"""The point vectors (``tests/vectors/points/*.csv``): worked cases of the rules, each row
stating its case, read and checked against the pure rules. SPEC.md and the seeds give the
rate, the cap, the windows and the extensions; the rounding and the refund arithmetic are
this implementation's documented choices (``reference_impl/points/rules.py``)."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from mynahil.reference_impl.points import load_scheme
from mynahil.reference_impl.points.rules import decide_grant, eligibility, refund_clawback

VECTORS = Path(__file__).parents[2] / "vectors" / "points"
SCHEME = load_scheme()


def rows(name: str) -> list[dict[str, str]]:
    with (VECTORS / name).open(newline="", encoding="utf-8") as file:
        found = list(csv.DictReader(file))
    assert found, f"{name} has no cases"
    return found


def cases(name: str) -> list[object]:
    return [pytest.param(row, id=row["case"]) for row in rows(name)]


def flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"not true/false: {text!r}")
    return text == "true"


@pytest.mark.parametrize("row", cases("spend.csv"))
def test_spend_grants(row: dict[str, str]) -> None:
    rule = replace(
        SCHEME.campaigns["round1"].spend,
        rate_percent=int(row["rate_percent"]),
        cap_yen=int(row["cap_yen"]),
    )
    decision = decide_grant(int(row["amount"]), rule, int(row["granted_so_far"]))
    assert (decision.points, decision.capped) == (int(row["points"]), flag(row["capped"]))


@pytest.mark.parametrize("row", cases("refunds.csv"))
def test_refund_clawbacks(row: dict[str, str]) -> None:
    taken = refund_clawback(
        int(row["amount"]),
        int(row["refunded_before"]),
        int(row["refund"]),
        int(row["net_granted"]),
        int(row["rate_percent"]),
    )
    assert taken == int(row["clawback"])


@pytest.mark.parametrize("row", cases("windows.csv"))
def test_campaign_windows(row: dict[str, str]) -> None:
    rule = SCHEME.campaigns[row["campaign"]].spend
    card_applied_on = date.fromisoformat(row["card_applied_on"])
    found = eligibility(
        rule,
        datetime.fromisoformat(row["occurred_at"]),
        datetime.fromisoformat(row["applied_at"]),
        card_applied_on,
    )
    assert (found.value, rule.admits(card_applied_on)) == (
        row["eligibility"],
        flag(row["admitted"]),
    )
