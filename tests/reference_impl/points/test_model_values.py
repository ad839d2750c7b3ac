"""The point system's values stay values: what a batch decided cannot be changed in place (a
retry is answered from the stored transaction, the ledger is append-only), equal values are
equal and hash alike, and a changed copy leaves the original as it was."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from msgspec.structs import replace

from mynahil.reference_impl.points import (
    Application,
    Decision,
    LedgerEntry,
    LedgerKind,
    Outcome,
    StoredTransaction,
    TransactionKind,
)
from mynahil.reference_impl.points.rules import GrantDecision

AT = datetime(2020, 9, 1, 3, 0, tzinfo=UTC)


def _stored() -> StoredTransaction:
    return StoredTransaction(
        "op", "k1", "digest", "t1", "pay", "acct", TransactionKind.CHARGE, 1000, AT, None, 7,
        "round1", Outcome.GRANTED, 250, 250, 0, 250, AT,
    )  # fmt: skip


VALUES = [
    _stored(),
    Decision("k1", "t1", Outcome.GRANTED, 250, 250),
    LedgerEntry(7, "spend", "round1", LedgerKind.GRANT, 250, "op", "pay", "acct", "t1", AT),
    Application(1, "round1", 7, "pay", "acct", "op", AT, date(2020, 6, 1), 1, 3),
    GrantDecision(250, capped=False),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_a_value_cannot_be_changed_in_place(value: object) -> None:
    field = next(iter(type(value).__struct_fields__))  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        setattr(value, field, None)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_equal_values_are_equal_and_hash_alike(value: object) -> None:
    twin = replace(value)  # type: ignore[type-var]
    assert twin == value
    assert twin is not value
    assert hash(twin) == hash(value)


def test_a_changed_copy_leaves_the_original() -> None:
    original = _stored()
    refunded = replace(original, net_points=0, refunded_amount=1000)
    assert (original.net_points, original.refunded_amount) == (250, 0)
    assert (refunded.net_points, refunded.refunded_amount) == (0, 1000)
    assert refunded != original
    assert refunded.decision(replayed=True) == Decision(
        "k1", "t1", Outcome.GRANTED, 250, 250, replayed=True
    )
