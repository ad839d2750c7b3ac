"""The MyKey platform: one nationwide multi-server station fed by every region's holders.

Each holder who got through card and PIN sends ``requests_per_application`` requests during
the hour. A request that waits longer than the client's timeout (minus a median service) is
retried by the client, up to ``client_retries`` times, in the next step: under overload those
retries add load and the backlog snowballs. Timed-out requests are still served (the server
does not know the client gave up), which is what makes the snowball. A request that times
out on its last retry is an error; its application fails and is tried again the next day by
those who come back.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import simpy

from .queueing import StationState, StepResult, bin_edges, station_step, wait_histogram
from .scenario import Platform

__all__ = ["PlatformResult", "simulate_platform"]

Floats = npt.NDArray[np.float64]
#: Below this load an hour is computed as one stationary step instead of per step.
LIGHT_LOAD = 0.5


@dataclass
class PlatformResult:
    requests: Floats  # (hours,) including retries
    utilisation: Floats
    wait_hist: Floats  # (hours, bins), seconds
    wait_sum: Floats
    timeouts: Floats
    errors: Floats
    failed_applications: Floats

    @staticmethod
    def edges() -> Floats:
        return bin_edges(1.0)


def _timeouts(result: StepResult, patience_s: float) -> float:
    """Requests of the step whose wait exceeds what the client tolerates."""
    late = 0.0
    if result.atom_mass > 0 and result.atom_at > patience_s:
        late += result.atom_mass
    if result.tail_mass > 0:
        late += result.tail_mass * math.exp(-result.tail_rate * patience_s)
    return late


class PlatformModel:
    def __init__(self, platform: Platform, completed: Floats) -> None:
        self.platform = platform
        self.completed = completed
        hours = len(completed)
        self.edges = PlatformResult.edges()
        self.out = PlatformResult(
            requests=np.zeros(hours),
            utilisation=np.zeros(hours),
            wait_hist=np.zeros((hours, len(self.edges) - 1)),
            wait_sum=np.zeros(hours),
            timeouts=np.zeros(hours),
            errors=np.zeros(hours),
            failed_applications=np.zeros(hours),
        )
        self.env = simpy.Environment()
        self.state = StationState()
        self.carry = np.zeros(platform.client_retries + 1)  # retries waiting, by attempt

    def _step(self, arrivals: float, length: float) -> StepResult:
        p = self.platform
        return station_step(
            self.state,
            arrivals,
            servers=p.servers,
            service_mean=p.service_mean_s,
            length=length,
            scv=p.service_scv,
        )

    def hours(self) -> Generator[simpy.Event, object, None]:
        p, out = self.platform, self.out
        patience = max(0.0, p.timeout_s - p.service_median_ms / 1000)
        steps = 3600 // p.step_seconds
        for hour, people in enumerate(self.completed):
            fresh = people * p.requests_per_application
            load = (fresh + self.carry.sum()) * p.service_mean_s / (3600 * p.servers)
            first_attempts = fresh
            errors = 0.0
            timeouts = 0.0
            results: list[StepResult] = []
            if load < LIGHT_LOAD and self.state.backlog <= 0 and self.carry.sum() == 0:
                result = self._step(fresh, 3600.0)
                late = _timeouts(result, patience)
                share = late / fresh if fresh else 0.0
                timeouts += late
                errors += fresh * share ** (p.client_retries + 1)
                results.append(result)
                requests = fresh * (1 + sum(share**k for k in range(1, p.client_retries + 1)))
            else:
                requests = 0.0
                for _ in range(steps):
                    levels = self.carry.copy()
                    levels[0] += fresh / steps
                    total = levels.sum()
                    requests += total
                    result = self._step(total, float(p.step_seconds))
                    share = _timeouts(result, patience) / total if total else 0.0
                    overdue = levels * share
                    timeouts += float(overdue.sum())
                    errors += float(overdue[-1])
                    self.carry = np.zeros_like(self.carry)
                    self.carry[1:] = overdue[:-1]
                    results.append(result)
            out.requests[hour] = requests
            out.timeouts[hour] = timeouts
            out.errors[hour] = errors
            out.utilisation[hour] = sum(r.busy for r in results) / (3600 * p.servers)
            out.wait_sum[hour] = sum(r.wait_sum for r in results)
            out.wait_hist[hour] = sum(
                (wait_histogram(r, self.edges) for r in results), np.zeros(len(self.edges) - 1)
            )
            error_share = min(1.0, errors / first_attempts) if first_attempts else 0.0
            failed = people * (1 - (1 - error_share) ** p.requests_per_application)
            out.failed_applications[hour] = failed
            yield self.env.timeout(1)


def simulate_platform(platform: Platform, completed: Floats) -> PlatformResult:
    """The platform's hours, given the holders per hour who reached it nationwide."""
    model = PlatformModel(platform, completed)
    model.env.process(model.hours())
    model.env.run()
    return model.out
