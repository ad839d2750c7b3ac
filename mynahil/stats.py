"""The one percentile every figure of the project uses (latencies, waits, load runs).

Convention: the ``q``-th percentile (``q`` in 0..100) is the smallest observed value such that
at least ``q`` % of the observations (by weight, when weights are given) are at or below it:
numpy's ``inverted_cdf`` method, Hyndman and Fan's definition 1. It is always a value that
was measured, never an interpolation between two, and a histogram ({value: count}) gives the
same answer as the list it summarises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, overload

import numpy as np

__all__ = ["percentile"]

_Default = TypeVar("_Default")
_NO_DEFAULT = object()


@overload
def percentile(
    values: Sequence[float], q: float, weights: Sequence[float] | None = None
) -> float: ...


@overload
def percentile(
    values: Sequence[float],
    q: float,
    weights: Sequence[float] | None = None,
    *,
    default: _Default,
) -> float | _Default: ...


def percentile(
    values: Sequence[float],
    q: float,
    weights: Sequence[float] | None = None,
    *,
    default: object = _NO_DEFAULT,
) -> object:
    """The ``q``-th percentile (0..100) of ``values``, each counted ``weights[i]`` times.

    With no observations (or only zero weights) it returns ``default`` when one is given, as
    :func:`max` does, and raises :class:`ValueError` otherwise.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: q must be between 0 and 100, got {q}")
    if weights is not None and len(weights) != len(values):
        raise ValueError("percentile: one weight per value")
    if not values or (weights is not None and not any(weights)):
        if default is _NO_DEFAULT:
            raise ValueError("percentile of no observations")
        return default
    return float(np.percentile(values, q, weights=weights, method="inverted_cdf"))
