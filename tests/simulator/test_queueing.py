"""The station model against queueing theory and against a per-customer SimPy M/M/c."""

from __future__ import annotations

import math
import random
from collections.abc import Generator

import numpy as np
import pytest
import simpy

from mynahil.simulator.queueing import (
    StationState,
    bin_edges,
    erlang_c,
    histogram_percentiles,
    station_step,
    wait_histogram,
)


def erlang_c_by_definition(c: int, a: float) -> float:
    """Erlang C from its textbook sum (independent of the model's recursion)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (2, 1.5), (4, 3.2), (10, 9.0), (30, 25.0)])
def test_erlang_c_matches_the_textbook_sum(c: int, a: float) -> None:
    assert erlang_c(c, a) == pytest.approx(erlang_c_by_definition(c, a), rel=1e-9)


def test_erlang_c_at_and_beyond_saturation_waits_always() -> None:
    assert erlang_c(3, 3.0) == 1.0
    assert erlang_c(3, 0.0) == 0.0


def simpy_mmc_mean_wait(c: int, lam: float, mu: float, customers: int, seed: int) -> float:
    """A per-customer M/M/c in SimPy: the reference the batch model is held against."""
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=c)
    rng = random.Random(seed)
    waits: list[float] = []

    def customer() -> Generator[simpy.Event, object, None]:
        arrived = env.now
        with servers.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(rng.expovariate(mu))

    def source() -> Generator[simpy.Event, object, None]:
        for _ in range(customers):
            yield env.timeout(rng.expovariate(lam))
            env.process(customer())

    env.process(source())
    env.run()
    return float(np.mean(waits[customers // 10 :]))  # drop the warm-up


def test_mmc_station_matches_erlang_c_and_a_per_customer_simulation() -> None:
    """M/M/4 at 80% load: mean wait = C(c, a) / (c*mu - lambda) (Erlang C)."""
    c, mu, lam = 4, 1 / 6.0, 4 * 0.8 / 6.0  # 6-minute service, per minute
    theory = erlang_c_by_definition(c, lam / mu) / (c * mu - lam)
    state = StationState()
    served = wait_sum = 0.0
    for _ in range(200):  # 200 hours of constant arrivals, per 5-minute step
        for _ in range(12):
            step = station_step(state, lam * 5, servers=c, service_mean=6.0, length=5.0)
            served += step.served
            wait_sum += step.wait_sum
    model = wait_sum / served
    assert model == pytest.approx(theory, rel=0.02)
    simulated = np.mean([simpy_mmc_mean_wait(c, lam, mu, 20_000, seed) for seed in range(3)])
    assert model == pytest.approx(simulated, rel=0.15)


def test_overload_builds_a_backlog_that_drains_after() -> None:
    state = StationState()
    first = station_step(state, 30, servers=1, service_mean=1.0, length=10.0)
    assert first.served == pytest.approx(10)
    assert state.backlog == pytest.approx(20)
    assert first.atom_at > 0
    drain = station_step(state, 0, servers=1, service_mean=1.0, length=30.0)
    assert drain.served == pytest.approx(20)
    assert state.backlog == 0


def test_impatient_people_leave_and_closing_turns_the_rest_away() -> None:
    state = StationState()
    busy = station_step(state, 100, servers=1, service_mean=1.0, length=10.0, patience=30.0)
    assert busy.abandoned > 50
    waiting = state.backlog
    assert waiting > 0
    closed = station_step(state, 3, servers=1, service_mean=1.0, length=0.0)
    assert closed.turned_away == pytest.approx(waiting + 3)
    assert state.backlog == 0


def test_histogram_percentiles_of_an_exponential_tail() -> None:
    edges = bin_edges(1.0)
    state = StationState()
    step = station_step(state, 0.9 * 3600, servers=1, service_mean=1.0, length=3600.0)
    hist = wait_histogram(step, edges)[None, :]
    p = histogram_percentiles(hist, edges, (0.5, 0.95, 0.99))[0]
    # M/M/1 at rho = 0.9: P(W > t) = 0.9 exp(-0.1 t)  ->  p95 = ln(0.9/0.05)/0.1 = 28.9 s
    assert p[1] == pytest.approx(math.log(0.9 / 0.05) / 0.1, rel=0.15)
    assert p[0] < p[1] < p[2]
    assert np.isnan(histogram_percentiles(np.zeros((1, len(edges) - 1)), edges, (0.5,))[0, 0])
