"""``benchmarks/bench_points.py``'s report targets are absolute rates: a run whose machine
changed speed while it ran (the raw RSA rate at its start and end) says so."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.support import benchmark_script


@pytest.fixture(scope="module")
def bench_points() -> Iterator[ModuleType]:
    with benchmark_script("bench_points") as script:
        yield script


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (47_481, 38_771, True),  # 2026-12-04: busy at the end; SQLite read 16,671/s
        (38_771, 47_481, True),  # the same the other way
        (49_304, 49_823, False),  # the idle run just after: 23,937/s
        (50_000, 45_500, False),  # 9%: within a quiet machine's spread
    ],
)
def test_a_run_whose_machine_changed_speed_says_so(
    bench_points: ModuleType, before: int, after: int, changed: bool
) -> None:
    assert bench_points.speed_changed(before, after) is changed
