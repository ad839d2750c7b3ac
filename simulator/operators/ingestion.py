"""The platform's operator-facing load in SimPy: reports, verify calls, feed pulls, settlements.

The platform is one pool of ``workers`` that serves every operator request first come, first
served. Work is counted in worker-seconds: a request carrying ``n`` reports costs
``request_overhead_ms + n * per_report_ms`` (``per_report_ms`` from benchmarks/bench_points.py),
a verify call ``verify_ms``, a feed page ``feed_page_ms``, a settlement ``settlement_ms``.

SimPy is the clock (1 unit = 1 second). Processes: the **platform**, which advances an hour at
a time when the hour is light (one stationary M/G/c: Erlang C with the Allen-Cunneen
correction) and ``step_seconds`` at a time otherwise; one process per **outage** (a service's
link goes down, then up); one **settlement** process (monthly runs). Operators are vectors over
services, not processes: each step, a real-time service sends what happened during the step
(one report per request); a batch service sends what it holds at its ticks (every
``batch_minutes``, in requests of at most ``batch_size``); a service that is down holds
everything and sends it all at once when it comes back.

In a busy step the queue is a fluid backlog of work draining at ``workers`` per second; a
request waits for the work before it. A request whose wait passes its operator's timeout is
sent again after ``backoff_s`` (up to ``retries`` times; it is still served, the platform does
not know the client gave up): under overload retries add work and the backlog snowballs. The
platform decides each report once (idempotency keys): a retried report is answered from the
store, which costs work but is no new decision. Decision latency is counted per report, from
its first send to the answer that reached the operator (timeouts and back-offs included).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import numpy.typing as npt
import simpy

from ..operator_model import OperatorModel
from ..queueing import bin_edges, erlang_c

__all__ = ["IngestionLoad", "IngestionResult", "random_outages", "simulate_ingestion"]

Floats = npt.NDArray[np.float64]
#: Below this share of capacity (and with nothing waiting) an hour is one stationary step.
LIGHT_LOAD = 0.3
STATIONARY_LIMIT = 0.98


@dataclass
class IngestionLoad:
    """What reaches the platform from the operators, per service and hour (expected or drawn)."""

    start: date
    reports: Floats  # (services, hours): charges, purchases and refunds reported
    applications: Floats  # (services, hours): applications that need a verify call
    settlements: Floats  # (services, hours): settlement runs requested


@dataclass
class IngestionResult:
    reports: Floats  # (hours,) reports decided (first sends)
    requests: Floats  # (hours,) report requests, retries included
    retries: Floats  # (hours,) report requests sent again after a timeout
    errors: Floats  # (hours,) requests given up after the last retry (reports held again)
    verify_calls: Floats
    failed_verifies: Floats  # the service was down: the application fails
    feed_requests: Floats
    settlement_requests: Floats
    utilisation: Floats
    latency_hist: Floats  # (hours, bins) reports by decision latency, seconds
    backlog_s: Floats  # (hours,) worker-seconds queued at the end of the hour
    held: Floats  # (hours,) reports held at operators (unsent) at the end of the hour
    service_reports: Floats  # (services, hours)
    service_extra_s: Floats  # (services,) own service time of a report request (latency shift)

    @staticmethod
    def edges() -> Floats:
        return bin_edges(1.0)


def _tail_masses(edges: Floats, shift: float, rate: float) -> Floats:
    """Masses per bin of ``shift + Exp(rate)`` (total 1)."""
    x = np.maximum(edges - shift, 0.0)
    survival = np.exp(-rate * x)
    return np.asarray(survival[:-1] - survival[1:], np.float64)


def _atom(edges: Floats, at: float) -> int:
    index = int(np.searchsorted(edges, at, side="right")) - 1
    return min(max(index, 0), len(edges) - 2)


class _Fleet:
    """Every service's sending state, as vectors."""

    def __init__(self, model: OperatorModel, steps_per_hour: int, rng: np.random.Generator):
        services = model.services()
        self.names = [name for name, _, _ in services]
        kinds = [kind for _, kind, _ in services]
        self.kind_names = [k.name for k in model.kinds]
        self.kind_of = np.array([self.kind_names.index(k.name) for k in kinds])
        self.batch_size = np.array([k.batch_size for k in kinds], dtype=np.float64)
        self.catchup = np.array([k.catchup_batch for k in kinds], dtype=np.float64)
        self.realtime = np.array([k.reporting == "realtime" for k in kinds])
        step_s = 3600 / steps_per_hour
        self.tick_steps = np.array(
            [max(1, round(k.batch_minutes * 60 / step_s)) if k.reporting == "batch" else 1
             for k in kinds]
        )  # fmt: skip
        self.phase = np.array([int(rng.integers(0, t)) for t in self.tick_steps])
        self.feed_per_hour = np.array([60 / k.feed_minutes for k in kinds])
        self.pending = np.zeros(len(services))
        self.online = np.ones(len(services), dtype=bool)
        self.released = np.zeros(len(services), dtype=bool)  # came back up: send all at once
        self.settle_now = np.zeros(len(services))

    def index(self, name: str) -> int:
        return self.names.index(name)


class IngestionModel:
    def __init__(
        self,
        model: OperatorModel,
        load: IngestionLoad,
        seed: int,
        outages: list[tuple[str, datetime, float]],
    ) -> None:
        self.model = model
        self.ing = model.ingestion
        self.load = load
        self.hours = load.reports.shape[1]
        self.steps = 3600 // self.ing.step_seconds
        self.edges = IngestionResult.edges()
        rng = np.random.default_rng(seed)
        self.fleet = _Fleet(model, self.steps, rng)
        kinds = model.kinds
        self.timeout = np.array([k.timeout_s for k in kinds])
        self.catchup = np.array([k.catchup_batch for k in kinds], dtype=np.float64)
        self.backoff = np.array([k.backoff_s for k in kinds])
        self.retries = max(k.retries for k in kinds)
        self.kind_retries = np.array([k.retries for k in kinds])
        # Retried report requests waiting, by kind and attempt: requests, reports. The last
        # column holds what operators send again after their client gave up (already decided
        # by the platform: replays, never new decisions).
        self.carry_requests = np.zeros((len(kinds), self.retries + 2))
        self.carry_reports = np.zeros((len(kinds), self.retries + 2))
        self.backlog = 0.0  # worker-seconds
        self.carried = False  # retries are waiting in carry_requests
        self.env = simpy.Environment()
        self.change_times: list[float] = []
        for name, at, minutes in outages:
            starts = self._seconds(at)
            ends = starts + minutes * 60
            self.change_times += [starts, ends]
            self.env.process(self.outage(self.fleet.index(name), starts, ends))
        self.env.process(self.platform())
        h = self.hours
        bins = len(self.edges) - 1
        zeros = {name: np.zeros(h) for name in (
            "reports", "requests", "retries", "errors", "verify_calls", "failed_verifies",
            "feed_requests", "settlement_requests", "utilisation", "backlog_s", "held",
        )}  # fmt: skip
        self.out = IngestionResult(
            **zeros,
            latency_hist=np.zeros((h, bins)),
            service_reports=load.reports,
            service_extra_s=self._extra_s(),
        )

    def _extra_s(self) -> Floats:
        fleet = self.fleet
        size = np.where(fleet.realtime, 1.0, fleet.batch_size / 2)
        return np.asarray([self.ing.batch_seconds(float(n)) for n in size], np.float64)

    # -- SimPy processes --------------------------------------------------------------------

    def _seconds(self, moment: datetime) -> float:
        return (moment - datetime.combine(self.load.start, datetime.min.time())).total_seconds()

    def outage(self, service: int, starts: float, ends: float) -> Generator[simpy.Event]:
        yield self.env.timeout(max(0.0, starts))
        self.fleet.online[service] = False
        yield self.env.timeout(max(0.0, ends - max(0.0, starts)))
        self.fleet.online[service] = True
        self.fleet.released[service] = True

    def _events_in(self, hour: int) -> bool:
        """Does anything change state during this hour (an outage starting or ending)?"""
        lo, hi = hour * 3600.0, (hour + 1) * 3600.0
        return any(lo <= t < hi for t in self.change_times)

    def platform(self) -> Generator[simpy.Event]:
        ing, fleet, out = self.ing, self.fleet, self.out
        apps_total = self.load.applications.sum(axis=0)
        for hour in range(self.hours):
            reports = self.load.reports[:, hour]
            apps = self.load.applications[:, hour]
            settle = self.load.settlements[:, hour]
            feed_pages = fleet.feed_per_hour + apps / ing.feed_page_size
            other_work = (
                apps_total[hour] * ing.verify_ms / 1000
                + feed_pages.sum() * ing.feed_page_ms / 1000
                + settle.sum() * ing.settlement_ms / 1000
            )
            sizes = np.where(fleet.realtime, 1.0, fleet.batch_size)
            report_requests = np.where(reports > 0, np.ceil(reports / sizes), 0.0)
            work = report_requests.sum() * ing.request_overhead_ms / 1000
            work += reports.sum() * ing.per_report_ms / 1000 + other_work
            quiet = (
                ing.error_share == 0
                and self.backlog <= 1e-9
                and not self.carried
                and fleet.online.all()
                and not fleet.released.any()
                and not self._events_in(hour)
                and settle.sum() == 0
            )
            down = ~fleet.online
            out.failed_verifies[hour] = apps[down].sum()
            out.verify_calls[hour] = apps.sum()
            out.feed_requests[hour] = feed_pages[fleet.online].sum()
            out.settlement_requests[hour] = settle.sum()
            if quiet and work < LIGHT_LOAD * ing.workers * 3600:
                reports = reports + fleet.pending  # what batch services held goes out too
                fleet.pending[:] = 0.0
                self._light_hour(hour, reports, report_requests, work)
                yield self.env.timeout(3600)
                continue
            per_step_other = other_work / self.steps
            for step in range(self.steps):
                self._busy_step(hour, step, reports / self.steps, per_step_other)
                yield self.env.timeout(ing.step_seconds)
            out.held[hour] = fleet.pending.sum()
            out.backlog_s[hour] = self.backlog

    def _light_hour(self, hour: int, reports: Floats, requests: Floats, work: float) -> None:
        """One stationary M/G/c hour: no backlog, no retries worth counting."""
        ing, out = self.ing, self.out
        count = float(requests.sum())
        out.reports[hour] = reports.sum()
        out.requests[hour] = count
        out.utilisation[hour] = work / (ing.workers * 3600)
        if count <= 0:
            return
        wait_mass, rate = self._stationary(count + out.verify_calls[hour], work, 3600.0)
        shift = float(reports @ self.out.service_extra_s / max(reports.sum(), 1e-12))
        hist = out.latency_hist[hour]
        total = reports.sum()
        hist[_atom(self.edges, shift)] += total * (1 - wait_mass)
        if wait_mass > 0:
            hist += total * wait_mass * _tail_masses(self.edges, shift, rate)

    def _stationary(self, arrivals: float, work: float, length: float) -> tuple[float, float]:
        """Erlang C: the share who wait and the rate of their exponential wait (Allen-Cunneen
        with Poisson arrivals and deterministic-per-request service mixes treated as SCV 1)."""
        c = self.ing.workers
        offered = work / length
        if arrivals <= 0 or offered <= 0:
            return 0.0, math.inf
        mean_s = work / arrivals
        waits = erlang_c(c, offered)
        rate = (c - offered) / mean_s
        return waits, rate

    def _send(self, hour: int, step: int, fresh: Floats) -> tuple[Floats, Floats]:
        """What each service sends in this step: reports and requests, held ones included.

        Real-time services send one report per request, batch services at their ticks in
        requests of ``batch_size``; what a service held while down goes out at once when it
        is back, in requests of ``catchup_batch`` (as the sample operator's resender does)."""
        fleet = self.fleet
        fleet.pending += fresh
        tick = ((step + hour * self.steps - fleet.phase) % fleet.tick_steps) == 0
        send_now = fleet.online & (fleet.realtime | tick | fleet.released)
        sent = np.where(send_now, fleet.pending, 0.0)
        fleet.pending = np.where(send_now, 0.0, fleet.pending)
        usual = np.where(fleet.realtime, sent, np.ceil(sent / fleet.batch_size))
        catchup = fresh + np.ceil(np.maximum(sent - fresh, 0.0) / fleet.catchup)
        requests = np.where(sent > 0, np.where(fleet.released, catchup, usual), 0.0)
        fleet.released[:] = False
        return np.asarray(sent, np.float64), np.asarray(requests, np.float64)

    def _queue(self, hour: int, requests: float, work: float) -> tuple[float, float, float]:
        """Advance the workers by one step: (share who wait, tail rate, fluid wait)."""
        length = float(self.ing.step_seconds)
        c = self.ing.workers
        capacity = c * length
        if self.backlog <= 1e-9 and work < STATIONARY_LIMIT * capacity:
            waits, rate = self._stationary(requests + 1e-12, work, length)
            atom_at, busy = 0.0, work
            self.backlog = 0.0
        else:
            atom_at = (self.backlog + work / 2) / c
            waits, rate = 1.0, math.inf
            present = self.backlog + work
            busy = min(present, capacity)
            self.backlog = max(0.0, present - capacity)
        self.out.utilisation[hour] += busy / (capacity * self.steps)
        return waits, rate, atom_at

    def _busy_step(self, hour: int, step: int, fresh: Floats, other_work: float) -> None:
        ing, fleet, out = self.ing, self.fleet, self.out
        sent, requests = self._send(hour, step, fresh)
        kinds = len(self.timeout)
        levels_req = self.carry_requests.copy()
        levels_rep = self.carry_reports.copy()
        levels_req[:, 0] += np.bincount(fleet.kind_of, requests, minlength=kinds)
        levels_rep[:, 0] += np.bincount(fleet.kind_of, sent, minlength=kinds)
        total_req = float(levels_req.sum())
        work = total_req * ing.request_overhead_ms / 1000
        work += float(levels_rep.sum()) * ing.per_report_ms / 1000 + other_work
        out.reports[hour] += float(sent.sum())
        out.requests[hour] += total_req
        out.retries[hour] += float(levels_req[:, 1:].sum())
        waits, rate, atom_at = self._queue(hour, total_req, work)
        # Who times out: P(wait > timeout) per kind.
        if math.isinf(rate):
            late = (atom_at > self.timeout).astype(np.float64)
        else:
            late = waits * np.exp(-rate * self.timeout)
        total = float(sent.sum())
        extra = float(sent @ out.service_extra_s / total) if total > 0 else 0.0
        failing = ing.error_share
        if late.max() < 1e-12 and not self.carried and failing == 0:
            # Nobody times out and nothing was retried: one wait distribution for all.
            if total > 0:
                self._latency_fresh(hour, total, waits, rate, atom_at, extra)
            return
        # Answered: neither timed out nor refused with an error (5xx: sent again, like a
        # timeout); an error is independent of the wait.
        again = 1 - (1 - late) * (1 - failing)
        answered = levels_rep * ((1 - late) * (1 - failing))[:, None]
        self._latency(hour, answered, late, waits, rate, atom_at, extra)
        self._retry(hour, levels_req * again[:, None], levels_rep * again[:, None])

    def _latency_fresh(
        self, hour: int, total: float, waits: float, rate: float, atom_at: float, extra: float
    ) -> None:
        hist = self.out.latency_hist[hour]
        if math.isinf(rate):
            hist[_atom(self.edges, extra + atom_at)] += total
            return
        hist[_atom(self.edges, extra)] += total * (1 - waits)
        if waits > 0:
            hist += total * waits * _tail_masses(self.edges, extra, rate)

    def _latency(
        self,
        hour: int,
        answered: Floats,
        late: Floats,
        waits: float,
        rate: float,
        atom_at: float,
        extra: float,
    ) -> None:
        """Answered reports by latency: attempts so far x (timeout + backoff), plus the wait."""
        hist = self.out.latency_hist[hour]
        for k, a in zip(*np.nonzero(answered > 1e-12), strict=True):
            mass = answered[k, a]
            attempts = min(a, self.kind_retries[k] + 1)
            shift = attempts * (self.timeout[k] + self.backoff[k]) + extra
            if math.isinf(rate):
                hist[_atom(self.edges, shift + atom_at)] += mass
                continue
            stay = min(1.0, (1 - waits) / max(1 - late[k], 1e-12))
            hist[_atom(self.edges, shift)] += mass * stay
            if stay < 1:
                # Only waits below the timeout were answered: the tail is cut there.
                tail = _tail_masses(self.edges, shift, rate)
                tail = tail * (self.edges[1:] <= shift + self.timeout[k] + 1e-9)
                if tail.sum() > 0:
                    hist += mass * (1 - stay) * tail / tail.sum()

    def _retry(self, hour: int, overdue_req: Floats, overdue_rep: Floats) -> None:
        """Timed out: sent again after the back-off; after the last retry the operator gives
        up (an error) and sends the same reports again with its next batch, at once here."""
        self.carry_requests = np.zeros_like(self.carry_requests)
        self.carry_reports = np.zeros_like(self.carry_reports)
        self.carried = bool(overdue_req.sum() > 1e-12)
        for k in range(len(self.timeout)):
            last = self.kind_retries[k]
            self.carry_requests[k, 1 : last + 1] = overdue_req[k, :last]
            self.carry_reports[k, 1 : last + 1] = overdue_rep[k, :last]
            given_up = overdue_req[k, last:].sum()
            if given_up > 1e-9:
                held = overdue_rep[k, last:].sum()
                self.out.errors[hour] += given_up
                # Expected requests: whole batches once there is at least a report to send.
                batches = math.ceil(held / self.catchup[k]) if held >= 1 else held
                self.carry_requests[k, -1] += batches
                self.carry_reports[k, -1] += held


def simulate_ingestion(
    model: OperatorModel,
    load: IngestionLoad,
    seed: int = 1,
    outages: list[tuple[str, datetime, float]] | None = None,
) -> IngestionResult:
    """Run the SimPy model of the platform's operator-facing load over the load's hours.

    ``outages``: (service, start JST, minutes); the scenario's planned ones when None."""
    if outages is None:
        outages = [(o.service, o.starts, o.minutes) for o in model.outages]
    sim = IngestionModel(model, load, seed, outages)
    sim.env.run()
    return sim.out


def random_outages(
    model: OperatorModel, start: date, days: int, seed: int
) -> list[tuple[str, datetime, float]]:
    """Seeded random outages: Poisson per service (``outages_per_year``), exponential lengths."""
    rng = np.random.default_rng([model.seed, seed])
    found = []
    for name, kind, _ in model.services():
        count = rng.poisson(kind.outages_per_year * days / 365)
        for _ in range(count):
            at = datetime.combine(start, datetime.min.time()) + timedelta(
                seconds=float(rng.uniform(0, days * 86400))
            )
            found.append((name, at, float(rng.exponential(kind.outage_minutes))))
    return found
