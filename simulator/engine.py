"""Runs: regions across processes, replications in parallel, the platform on top, merged.

A run is ``replications x regions`` independent region tasks submitted to any
``concurrent.futures.Executor`` (local processes by default, a Dask cluster through
``distributed.Client.get_executor()``), then per replication the regions are added up and
the nationwide platform is simulated on their sum.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .platform_model import PlatformResult, simulate_platform
from .region import RegionResult, simulate_region
from .scenario import Platform, Scenario

__all__ = [
    "Replication",
    "SerialExecutor",
    "SimulationResult",
    "open_executor",
    "region_seed",
    "run",
    "with_platform",
]

Floats = npt.NDArray[np.float64]
Progress = Callable[[int, int], None]


@dataclass
class Replication:
    """One replication, nationwide: the regions added up, and the platform on their sum."""

    index: int
    regions: RegionResult  # the sum over regions (``region`` is "all")
    platform: PlatformResult
    #: Completed point applications per hour (after platform failures and their retries).
    applications: Floats


@dataclass
class SimulationResult:
    scenario: Scenario
    seed: int
    replications: list[Replication]
    #: Set when a HIL run replaced assumptions with measurements (see mynahil.simulator.hil).
    notes: dict[str, Any] = field(default_factory=dict)


class SerialExecutor(Executor):
    """Runs each task at once in this process: for tests, debugging and tiny runs."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future


@contextmanager
def open_executor(spec: str | None, workers: int = 0) -> Iterator[Executor]:
    """``None``/"process": local processes; "serial"; "dask://HOST:PORT": a Dask cluster."""
    workers = workers or os.cpu_count() or 1
    if spec in (None, "", "process"):
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield pool
    elif spec == "serial":
        yield SerialExecutor()
    elif spec.startswith("dask://"):
        from mynahil.extras import require

        require("distributed")
        from distributed import Client

        address = f"tcp://{spec.removeprefix('dask://')}"
        with Client(address) as client:  # type: ignore[no-untyped-call]
            yield client.get_executor()
    else:
        raise ValueError(f"unknown executor {spec!r}: use process, serial or dask://HOST:PORT")


def region_seed(seed: int, replication: int, region: int) -> int:
    """Independent, reproducible streams for each (replication, region)."""
    return int(np.random.SeedSequence([seed, replication, region]).generate_state(1)[0])


def _add(regions: list[RegionResult]) -> RegionResult:
    total = RegionResult.empty("all", regions[0].hours, regions[0].wait_hist.shape[2])
    for part in regions:
        for name in (
            "arrivals", "new_intents", "completed", "abandoned", "unreadable", "lockouts",
            "window_visits", "failed_reads", "wrong_pins", "lost", "queue", "served",
            "wait_sum", "wait_hist",
        ):  # fmt: skip
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.busy += part.busy / len(regions)
    return total


def applications_after_platform(
    completed: Floats, failed: Floats, return_probability: float
) -> Floats:
    """Applications per hour: those that went through, plus yesterday's failures retried."""
    retried = np.zeros_like(failed)
    retried[24:] = failed[:-24] * return_probability
    return np.asarray(completed - failed + retried)


def with_platform(replication: Replication, scenario: Scenario, platform: Platform) -> Replication:
    """The same holders against another platform (sweeps over platform fields, HIL)."""
    completed = replication.regions.completed.sum(axis=1)
    result = simulate_platform(platform, completed)
    applications = applications_after_platform(
        completed, result.failed_applications, scenario.behaviour.return_probability
    )
    return replace(replication, platform=result, applications=applications)


def run(
    scenario: Scenario,
    *,
    seed: int = 1,
    replications: int = 1,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate the scenario; ``executor`` defaults to running everything in this process."""
    executor = executor or SerialExecutor()
    regions = scenario.simulated_regions
    known = scenario.population.regions
    futures: dict[Future[RegionResult], int] = {}
    for rep in range(replications):
        for region in regions:
            task_seed = region_seed(seed, rep, known.index(region))
            futures[executor.submit(simulate_region, scenario, region, task_seed)] = rep
    parts: list[list[RegionResult]] = [[] for _ in range(replications)]
    for done, future in enumerate(as_completed(futures), start=1):
        parts[futures[future]].append(future.result())
        if progress:
            progress(done, len(futures))
    result = SimulationResult(scenario, seed, [])
    for rep, found in enumerate(parts):
        found.sort(key=lambda r: regions.index(r.region))  # addition order fixed: reproducible
        total = _add(found)
        empty = PlatformResult(*(np.zeros(0) for _ in range(7)))
        base = Replication(rep, total, empty, np.zeros(0))
        result.replications.append(with_platform(base, scenario, scenario.platform))
    return result


# -- confidence intervals --------------------------------------------------------------------

_T95: tuple[float, ...] = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
)
_T95 += (2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064)
_T95 += (2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_95(df: int) -> float:
    """Two-sided 95% quantile of Student's t (table to 30, Cornish-Fisher beyond)."""
    if df < 1:
        return math.nan
    if df <= len(_T95):
        return _T95[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def confidence_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and the t-based 95% interval (the mean twice when there is one value)."""
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, mean, mean
    half = t_quantile_95(len(data) - 1) * float(data.std(ddof=1)) / math.sqrt(len(data))
    return mean, mean - half, mean + half
