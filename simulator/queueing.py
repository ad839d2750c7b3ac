"""Multi-server stations computed per time step, not per person.

A station is a number of identical spots, each with ``servers`` servers. Inside a step the
arrivals are spread evenly; the station is then in one of two regimes:

* **stationary** (no backlog, load below 1): the waiting time of an M/M/c queue at that
  load (Erlang C: a share ``C`` waits, exponentially with rate ``c*mu - lambda``), with the
  Allen-Cunneen correction ``(1 + scv) / 2`` for non-exponential service;
* **fluid** (a backlog, or load at or above 1): the queue is a deterministic backlog that
  grows by the excess and drains at full capacity; everyone in the step waits the backlog's
  drain time.

Patience is exponential, so the share who leave is a closed form in either regime. Waits go
into a fixed histogram (mergeable across regions and replications) and an exact sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "StationState",
    "StepResult",
    "erlang_c",
    "histogram_percentiles",
    "station_step",
    "wait_histogram",
]

Floats = npt.NDArray[np.float64]
#: Load above which the stationary formulas stop being meaningful and the fluid regime starts.
STATIONARY_LIMIT = 0.98


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (offered load in erlangs)."""
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    blocking = 1.0  # Erlang B by its stable recursion
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    rho = offered / servers
    return blocking / (1 - rho * (1 - blocking))


@dataclass
class StationState:
    """What carries over from one step to the next: people still waiting, per spot."""

    backlog: float = 0.0


@dataclass
class StepResult:
    """One step at one spot (multiply by the number of spots for the station)."""

    served: float = 0.0
    abandoned: float = 0.0
    turned_away: float = 0.0
    #: Exact sum of the waits of the step's arrivals who stayed.
    wait_sum: float = 0.0
    #: Mean number waiting during the step.
    queue: float = 0.0
    #: Wait distribution of the step's arrivals who stayed: an atom and an exponential tail.
    atom_at: float = 0.0
    atom_mass: float = 0.0
    tail_mass: float = 0.0
    tail_rate: float = 0.0
    busy: float = 0.0  # server-time used, in time units
    extra: dict[str, float] = field(default_factory=dict)


def station_step(
    state: StationState,
    arrivals: float,
    *,
    servers: int,
    service_mean: float,
    length: float,
    patience: float = math.inf,
    scv: float = 1.0,
) -> StepResult:
    """Advance one spot by one step of ``length`` time units with ``arrivals`` new people.

    ``length`` is the time the spot is open during the step (0: closed; whoever waits is sent
    away). Times share one unit (minutes for spots, seconds for the platform).
    """
    out = StepResult()
    backlog = state.backlog
    if length <= 0:
        out.turned_away = backlog + arrivals
        state.backlog = 0.0
        return out
    rate = servers / service_mean  # service completions per time unit at full load
    capacity = rate * length
    arrival_rate = arrivals / length
    load = arrival_rate * service_mean / servers
    if backlog <= 1e-9 and load < STATIONARY_LIMIT:
        waits = erlang_c(servers, arrival_rate * service_mean)
        tail_rate = (rate - arrival_rate) * 2 / (1 + scv)
        leave = waits / (1 + tail_rate * patience) if math.isfinite(patience) else 0.0
        stayed = arrivals * (1 - leave)
        out.served = stayed
        out.abandoned = arrivals - stayed
        # Waits of those who stayed: exponential patience thins the tail to rate + 1/patience.
        kept_rate = tail_rate + (1 / patience if math.isfinite(patience) else 0.0)
        stay_wait = waits * tail_rate / kept_rate if kept_rate > 0 else 0.0
        out.atom_mass = arrivals * (1 - waits)
        out.tail_mass = arrivals * stay_wait
        out.tail_rate = kept_rate
        out.wait_sum = arrivals * stay_wait / kept_rate if kept_rate > 0 else 0.0
        out.queue = arrival_rate * waits / tail_rate if tail_rate > 0 else 0.0
        out.busy = stayed * service_mean
        state.backlog = 0.0
        return out
    # Fluid: the backlog drains at full capacity; a step's arrival waits for those before it.
    wait = (backlog + arrivals / 2) / rate
    leave = 1 - math.exp(-wait / patience) if math.isfinite(patience) else 0.0
    left_waiting = backlog * (1 - math.exp(-length / patience)) if math.isfinite(patience) else 0.0
    joined = arrivals * (1 - leave)
    present = backlog - left_waiting + joined
    out.served = min(present, capacity)
    out.abandoned = arrivals - joined + left_waiting
    state.backlog = max(0.0, present - capacity)
    out.atom_at = wait
    out.atom_mass = joined
    out.wait_sum = joined * wait
    out.queue = (backlog + state.backlog) / 2
    out.busy = out.served * service_mean
    return out


#: Wait histogram edges in seconds: fine below a second (the platform), up to a day (windows).
WAIT_EDGES_S = (
    *(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1200, 1800),
    *(2700, 3600, 5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400, 1e12),
)


def bin_edges(unit_seconds: float) -> Floats:
    """Histogram edges for waits, in the station's time unit (0, then roughly log-spaced)."""
    seconds = np.array(WAIT_EDGES_S, dtype=np.float64)
    return seconds / unit_seconds


def wait_histogram(result: StepResult, edges: Floats, scale: float = 1.0) -> Floats:
    """The step's waits as masses per histogram bin (``scale``: number of spots)."""
    masses = np.zeros(len(edges) - 1)
    if result.atom_mass > 0:
        index = int(np.searchsorted(edges, result.atom_at, side="right")) - 1
        masses[min(max(index, 0), len(masses) - 1)] += result.atom_mass
    if result.tail_mass > 0:
        survival = np.exp(-result.tail_rate * edges)
        masses += result.tail_mass * (survival[:-1] - survival[1:])
    return masses * scale


def histogram_percentiles(hist: Floats, edges: Floats, quantiles: tuple[float, ...]) -> Floats:
    """Percentiles for each row of ``hist`` (rows x bins); linear inside a bin; NaN if empty.

    The first bin holds mostly "no wait at all", so a percentile inside it is reported as 0.
    """
    rows = hist.reshape(-1, hist.shape[-1])
    totals = rows.sum(axis=1)
    cumulative = np.cumsum(rows, axis=1)
    result = np.full((rows.shape[0], len(quantiles)), np.nan)
    upper = edges[1:].copy()
    upper[-1] = edges[-2] * 2  # the open last bin: report at most twice its lower edge
    for j, q in enumerate(quantiles):
        target = totals * q
        index = np.minimum((cumulative < target[:, None]).sum(axis=1), rows.shape[1] - 1)
        below = np.where(index > 0, cumulative[np.arange(len(rows)), index - 1], 0.0)
        inside = rows[np.arange(len(rows)), index]
        fraction = np.where(inside > 0, (target - below) / np.where(inside > 0, inside, 1), 0)
        value = edges[index] + fraction * (upper[index] - edges[index])
        value = np.where(index == 0, 0.0, value)
        result[:, j] = np.where(totals > 0, value, np.nan)
    return result.reshape((*hist.shape[:-1], len(quantiles)))
