"""The one percentile: numpy's inverted CDF checked against its definition, by brute force."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynahil.stats import percentile


def by_definition(values: list[float], q: int, weights: list[int]) -> float:
    """The smallest observed value with at least q % of the weight at or below it."""
    total = sum(weights)
    for candidate in sorted(v for v, w in zip(values, weights, strict=True) if w):
        at_or_below = sum(w for v, w in zip(values, weights, strict=True) if v <= candidate)
        if Fraction(at_or_below, total) >= Fraction(q, 100):
            return candidate
    raise AssertionError("unreachable: the largest value has all the weight at or below it")


observations = st.lists(
    st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.integers(0, 50)), min_size=1, max_size=30
).filter(lambda rows: any(w for _, w in rows))


@given(observations, st.integers(0, 100))
def test_weighted_percentile_is_the_definition(rows: list[tuple[float, int]], q: int) -> None:
    values, weights = [v for v, _ in rows], [w for _, w in rows]
    assert percentile(values, q, weights) == by_definition(values, q, weights)


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30), st.integers(0, 100)
)
def test_unweighted_is_every_value_counted_once(values: list[float], q: int) -> None:
    assert percentile(values, q) == by_definition(values, q, [1] * len(values))
    assert percentile(values, q) in values


def test_the_values_the_callers_rely_on() -> None:
    assert percentile([10, 500], 95, [95, 5]) == 10
    assert percentile([10, 500], 95, [94, 6]) == 500
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0


def test_no_observations_give_the_default_or_an_error() -> None:
    assert percentile([], 99, default=0.0) == 0.0
    assert percentile([5.0], 99, [0], default=None) is None
    with pytest.raises(ValueError, match="no observations"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)
