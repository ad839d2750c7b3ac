"""``benchmarks/bench_simulator.py``'s speed-ups rest on timing the models' short runs (tens of
milliseconds, and about one): each is the median of several timings after an untimed first
run, so neither a first call's set-up nor one slow timing decides the figure."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import pytest

from tests.support import benchmark_script


@pytest.fixture(scope="module")
def bench_simulator() -> Iterator[ModuleType]:
    with benchmark_script("bench_simulator") as script:
        yield script


class Work:
    """Each call takes the next of ``costs`` seconds on a clock of its own."""

    def __init__(self, costs: list[float]) -> None:
        self.costs = iter(costs)
        self.now = 0.0
        self.calls = 0

    def perf_counter(self) -> float:
        return self.now

    def __call__(self) -> int:
        self.now += next(self.costs)
        self.calls += 1
        return self.calls


def test_the_first_run_and_one_slow_timing_do_not_decide(
    bench_simulator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = Work([0.500, 0.010, 0.012, 0.300, 0.011, 0.010])
    monkeypatch.setattr(bench_simulator, "time", SimpleNamespace(perf_counter=work.perf_counter))
    result, seconds = bench_simulator.median_seconds(work, repeats=5)
    assert seconds == pytest.approx(0.011)
    assert work.calls == 6
    assert result == 6  # the last run's result
