"""An operator's books for reconciliation (CSV) are parsed strictly (issue #12, item 8):
amounts and points are whole numbers written in ASCII digits, never whatever ``int()`` takes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynahil.reference_impl.points.settlement import OperatorRecord, parse_operator_records

HEADER = "transaction_id,kind,amount,points\n"


def test_plain_numbers_are_read() -> None:
    records = parse_operator_records(HEADER + "t1,charge,1000,250\nr1,refund,400,-100\n")
    assert records == [
        OperatorRecord("t1", "charge", 1000, 250),
        OperatorRecord("r1", "refund", 400, -100),
    ]


@pytest.mark.parametrize(
    ("amount", "points"),
    [
        ("1_000", "250"),
        (" 1000", "250"),
        ("1000 ", "250"),
        ("+1000", "250"),
        ("\uff11\uff10\uff10\uff10", "250"),  # fullwidth digits
        ("\u0661\u0660\u0660\u0660", "250"),  # Arabic-Indic digits
        ("1000.0", "250"),
        ("1e3", "250"),
        ("-1000", "250"),
        ("", "250"),
        ("1000", "2_50"),
        ("1000", "--1"),
        ("1000", "true"),
    ],
)
def test_loose_numbers_are_refused_naming_line_and_column(amount: str, points: str) -> None:
    with pytest.raises(ValueError, match="line 2") as refused:
        parse_operator_records(HEADER + f"t1,charge,{amount},{points}\n")
    column = "amount" if points == "250" else "points"
    assert column in str(refused.value)


@given(amount=st.integers(0, 10**12 - 1), points=st.integers(-(10**12) + 1, 10**12 - 1))
def test_any_whole_number_round_trips(amount: int, points: int) -> None:
    records = parse_operator_records(HEADER + f"t,purchase,{amount},{points}\n")
    assert (records[0].amount, records[0].points) == (amount, points)
