"""``benchmarks/bench_verify_in_flow.py`` times the certificate checks without the J-LIS status
question they ask (a SQL statement on SQLite), so that the checks in the flow and in a loop
compare the same work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import pytest

from tests.support import benchmark_script


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    with benchmark_script("bench_verify_in_flow") as script:
        yield script


class _Clock:
    """A nanosecond clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.mark.parametrize("asks", [0, 1, 3])
def test_each_call_is_timed_without_its_status_questions(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, asks: int
) -> None:
    clock = _Clock()
    monkeypatch.setattr(time, "perf_counter_ns", clock)

    def status(serial: int) -> str:
        clock.now += 20_000  # a SQL statement's time: not the checks'
        return "good"

    service = SimpleNamespace(jlis=SimpleNamespace(status=status))

    def checks(*args: object) -> str:
        clock.now += 5_000
        for _ in range(asks):
            service.jlis.status(1)
        clock.now += 1_000
        return "verified"

    service._verified_certificate = checks
    timed, spent = bench._checks_timed(service)
    assert timed("certificate") == "verified"
    assert timed("another") == "verified"
    assert spent == [6_000, 6_000]
    assert service.jlis.status(7) == "good"  # still answers, through the timing
