"""``benchmarks/bench_mykey.py``'s alternating chunks, on which issue 17's ratios rest: each
pair's two chunks are timed back to back, the order swapped every pair, and the figure is the
median of the pairs' ratios; a drifting machine's speed cancels out of it."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import benchmark_script


@pytest.fixture(scope="module")
def bench_mykey() -> Iterator[ModuleType]:
    with benchmark_script("bench_mykey") as script:
        yield script


class DriftingMachine:
    """Two ways of doing the same work, ``second`` ``ratio`` times as fast as ``first``, on
    a machine whose speed changes at every chunk by ``drift`` (a factor per call)."""

    def __init__(self, ratio: float, drift: list[float]) -> None:
        self.ratio = ratio
        self.drift = iter(drift)
        self.speed = 1.0
        self.calls: list[tuple[str, list[int]]] = []

    def _rate(self, name: str, share: list[int], base: float) -> float:
        self.speed *= next(self.drift, 1.0)
        self.calls.append((name, share))
        return base * self.speed

    def first(self, share: list[int]) -> float:
        return self._rate("first", share, 100.0)

    def second(self, share: list[int]) -> float:
        return self._rate("second", share, 100.0 * self.ratio)


@given(
    ratio=st.floats(0.1, 10),
    pairs=st.integers(2, 12),
    chunk=st.integers(1, 20),
    warm=st.integers(0, 20),
    rest=st.integers(0, 39),
)
def test_every_item_is_sent_once_in_swapped_pairs(
    bench_mykey: ModuleType, ratio: float, pairs: int, chunk: int, warm: int, rest: int
) -> None:
    machine = DriftingMachine(ratio, [])
    step = warm + chunk
    items = list(range(pairs * 2 * step + min(rest, 2 * step - 1)))
    result = bench_mykey.alternating(machine.first, machine.second, items, chunk, warm=warm)
    sent = [item for _, share in machine.calls for item in share]
    assert sent == items
    # Each side's turn: its warm-up (when there is one), then its timed chunk.
    turns = ["first", "second", "second", "first"] * (pairs // 2) + (
        ["first", "second"] if pairs % 2 else []
    )
    calls_a_turn = 2 if warm else 1
    names = [name for name, _ in machine.calls[: calls_a_turn * 2 * pairs]]
    assert names == [name for name in turns for _ in range(calls_a_turn)]
    sizes = [len(share) for _, share in machine.calls[: calls_a_turn * 2 * pairs]]
    assert sizes == ([warm, chunk] if warm else [chunk]) * 2 * pairs
    assert result["pairs"] == pairs
    assert (result["chunk"], result["warm_up"]) == (chunk, warm)
    # Every pair's ratio is the machine's two rates' (no drift), printed to three decimals.
    assert result["median"] == round(100.0 * ratio / 100.0, 3)


class ColdStartingMachine(DriftingMachine):
    """``second`` runs at ``cold`` of its speed on a call right after ``first``'s (or the
    first call of all), as PostgreSQL's clients and backends do when their turn starts from
    idle; ``first`` (in process on SQLite) has no such start."""

    def __init__(self, ratio: float, cold: float) -> None:
        super().__init__(ratio, [])
        self.cold = cold

    def second(self, share: list[int]) -> float:
        starting = not self.calls or self.calls[-1][0] != "second"
        return super().second(share) * (self.cold if starting else 1.0)


@given(ratio=st.floats(0.2, 5), cold=st.floats(0.5, 0.9), pairs=st.integers(2, 10))
def test_a_warm_up_keeps_a_cold_start_out_of_the_ratio(
    bench_mykey: ModuleType, ratio: float, cold: float, pairs: int
) -> None:
    """Without one the ratio reads the cold start (the fourteenth session's alternating
    PostgreSQL chunks: ~1,300/s after a SQLite chunk, ~1,500/s after their own)."""
    items = list(range(pairs * 2 * 20))
    cold_machine, machine = ColdStartingMachine(ratio, cold), ColdStartingMachine(ratio, cold)
    unwarmed = bench_mykey.alternating(cold_machine.first, cold_machine.second, items, 20)
    warmed = bench_mykey.alternating(machine.first, machine.second, items, 10, warm=10)
    assert warmed["median"] == round(ratio, 3)
    # The order swaps every pair, so only some of ``second``'s chunks follow ``first``'s: at
    # least half of the pairs read the cold start.
    assert unwarmed["median"] <= ratio * (1 + cold) / 2 + 0.001


@given(ratio=st.floats(0.2, 5), drift=st.lists(st.floats(0.97, 1.03), min_size=40, max_size=40))
def test_the_median_holds_while_the_machine_drifts_by_a_third(
    bench_mykey: ModuleType, ratio: float, drift: list[float]
) -> None:
    """Each pair sees at most two chunks' drift; a whole run each, 20 chunks apart, would
    see the product of all of it (up to ~1.8x here)."""
    machine = DriftingMachine(ratio, drift)
    result = bench_mykey.alternating(machine.first, machine.second, list(range(40)), 1)
    assert result["median"] == pytest.approx(ratio, rel=0.07)
    assert result["quartiles"][0] <= result["median"] <= result["quartiles"][1]


def test_too_few_items_for_two_pairs_is_an_error(bench_mykey: ModuleType) -> None:
    machine = DriftingMachine(1.0, [])
    with pytest.raises(SystemExit, match="fewer than two pairs"):
        bench_mykey.alternating(machine.first, machine.second, list(range(30)), 10)


def _run(server: float, postgres: float, client: float, machine: float) -> dict[str, float]:
    return {
        "server_cpu_ms": server,
        "postgres_cpu_ms": postgres,
        "postgres_background_cpu_ms": 0.0,
        "client_cpu_ms": client,
        "machine_cpu_ms": machine,
    }


def test_a_run_says_whether_the_machine_was_busy_elsewhere(bench_mykey: ModuleType) -> None:
    """The fifth session's idle runs (0.01 ms of other CPU per issuance) count as idle; the
    sixth session's (1.48 ms beside 4.84 ms of the run's own) do not. PostgreSQL's own
    processes (its WAL writer, …) work for the run: they are not someone else's."""
    idle = _run(1.33, 0.0, 0.25, 1.59)
    busy = _run(2.91, 1.55, 0.38, 6.32)
    assert bench_mykey.other_cpu_ms(idle) == pytest.approx(0.01)
    assert not bench_mykey.busy_elsewhere(idle)
    assert bench_mykey.other_cpu_ms(busy) == pytest.approx(1.48)
    assert bench_mykey.busy_elsewhere(busy)
    assert not bench_mykey.busy_elsewhere({**busy, "postgres_background_cpu_ms": 1.2})


def test_the_two_worker_ceiling_counts_postgresqls_own_processes(bench_mykey: ModuleType) -> None:
    """The most two cores could do at a run's CPU per issuance: the seventh session's run 1
    (2.41 + 0.93 + 0.32 ms: 547/s); CPU that PostgreSQL's WAL writer and checkpointer spend
    for the run lowers it as the backends' does."""
    run = _run(2.41, 0.93, 0.32, 3.76)
    assert bench_mykey.cpu_ceiling_per_s(run, cores=2) == pytest.approx(2000 / 3.66)
    with_background = {**run, "postgres_background_cpu_ms": 0.34}
    assert bench_mykey.cpu_ceiling_per_s(with_background, cores=2) == pytest.approx(500)


def test_a_whole_run_follows_its_warm_up_at_once(
    bench_mykey: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every challenge is asked for before the warm-up starts, so nothing comes between the
    warm-up and the clock, and the rate is the timed run's alone."""
    events: list[str] = []

    def card_proofs(_: object, cards: list[int]) -> list[int]:
        events.append("proofs")
        return list(cards)

    monkeypatch.setattr(bench_mykey, "card_proofs", card_proofs)

    def in_process_rate(_: object, proofs: list[int], clients: int = 1) -> float:
        events.append(f"{len(proofs)} with {clients}")
        return float(len(proofs))

    monkeypatch.setattr(bench_mykey, "in_process_rate", in_process_rate)
    rate = bench_mykey.warmed_in_process_rate(object(), [1, 2, 3], [4, 5, 6, 7, 8], clients=4)
    assert events == ["proofs", "proofs", "3 with 4", "5 with 4"]
    assert rate == 5.0


def test_a_whole_run_warms_with_a_fifth_of_itself_and_every_client_some(
    bench_mykey: ModuleType,
) -> None:
    assert bench_mykey.whole_run_warm_up(1000, 4) == 200
    assert bench_mykey.whole_run_warm_up(100, 8) == 8 * bench_mykey.WARM_UP
