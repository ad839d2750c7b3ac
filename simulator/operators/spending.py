"""Holders' spending after the application, by cohort: expected transactions and points per day.

A holder who applied on day ``a`` starts spending ``start_delay_days`` later (or when the point
period opens, whichever is later) and stops at the end of the spend window or at the cap.
Two kinds of holder, per grant mode (``charge``: prepaid services, ``purchase``: per payment):

* **fillers** make one transaction of ``fill_amount_yen`` (a 20,000 yen charge fills the cap).
  Each day they do so with probability ``1 - exp(-fill_rate_per_day * f(day))``, ``f`` the
  day's factor (weekday, payday, events such as the opening surge or a deadline rush);
* **small spenders** make transactions as a Poisson process of rate ``rate_per_day * f(day)``
  with lognormal amounts, until what they spent reaches the cap's worth (``cap * 100 / rate``).

For small spenders the model uses the *operational time* ``L = rate * sum(f)`` since the start:
the number of transactions by then is Poisson(``L``), and a transaction counts (is reported,
earns points) while the holder is still under the cap. With ``g(k) = P(S_k < C)`` (``S_k`` the
sum of ``k`` amounts, ``C`` the cap's worth) and ``h(k) = E[min(X, C - S_k); S_k < C]``, the
expected counted transactions by ``L`` are ``A(L) = sum_k g(k) P(N_L > k)`` and the yen they
earn points on ``B(L) = sum_k h(k) P(N_L > k)`` (the integral of a Poisson process's intensity
times the chance of still being under the cap). ``g`` and ``h`` come from the amount
distribution convolved on a 5-yen grid. Each day then costs one matrix operation over
(start day x day) for all holders of a grant mode: no holder is ever followed one by one.

Approximations, stated: points are 25% of the amount without the per-transaction floor
(at most one point per transaction); a refunded amount does not make room under the cap for
new spending; operators stop reporting a holder's transactions once the cap is reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from ..operator_model import GRANT_MODES, OperatorModel, Spender, Spending

__all__ = [
    "CapCurve",
    "ModeSpending",
    "SpendingResult",
    "cap_curve",
    "simulate_spending",
    "spend_window",
]

Floats = npt.NDArray[np.float64]
GRID_YEN = 5.0


def _norm_cdf(x: Floats) -> Floats:
    from math import erf

    return np.asarray(np.vectorize(lambda v: 0.5 * (1 + erf(v / math.sqrt(2))))(x), np.float64)


def _lognormal_cdf(x: Floats, mu: float, sigma: float) -> Floats:
    positive = np.maximum(x, 1e-300)
    if sigma == 0:
        return np.asarray((x >= math.exp(mu)).astype(np.float64))
    return _norm_cdf((np.log(positive) - mu) / sigma)


def _expected_min(c: Floats, spender: Spender) -> Floats:
    """E[min(X, c)] for the lognormal amount X, for each c >= 0."""
    mu, sigma = math.log(spender.median_yen), spender.sigma
    if sigma == 0:
        return np.asarray(np.minimum(c, spender.median_yen), np.float64)
    below = spender.mean_yen * _norm_cdf((np.log(np.maximum(c, 1e-300)) - mu - sigma**2) / sigma)
    return np.asarray(below + c * (1 - _lognormal_cdf(c, mu, sigma)), np.float64)


@dataclass(frozen=True)
class CapCurve:
    """``A(L)`` and ``B(L)`` on a grid of operational time ``L`` (see the module docstring)."""

    grid: Floats
    transactions: Floats  # A
    yen: Floats  # B

    def at(self, operational: Floats) -> tuple[Floats, Floats]:
        a = np.interp(operational, self.grid, self.transactions)
        b = np.interp(operational, self.grid, self.yen)
        return np.asarray(a, np.float64), np.asarray(b, np.float64)


def cap_curve(spender: Spender, cap_spend_yen: float) -> CapCurve:
    """Expected counted transactions and counted yen of one small spender, against ``L``."""
    bins = max(1, math.ceil(cap_spend_yen / GRID_YEN))
    # Amounts rounded to the nearest grid point: sums of them then sit exactly on the grid.
    points = np.arange(bins, dtype=np.float64) * GRID_YEN
    upper = _lognormal_cdf(points + GRID_YEN / 2, math.log(spender.median_yen), spender.sigma)
    step = np.diff(np.concatenate([[0.0], upper]))
    min_room = _expected_min(cap_spend_yen - points, spender)
    below = np.zeros(bins)
    below[0] = 1.0  # S_0 = 0
    g: list[float] = []
    h: list[float] = []
    while True:
        g.append(float(below.sum()))
        h.append(float(below @ min_room))
        if g[-1] < 1e-10 or len(g) > 20_000:
            break
        spread = np.fft.irfft(np.fft.rfft(below, 2 * bins) * np.fft.rfft(step, 2 * bins), 2 * bins)
        below = np.maximum(spread[:bins], 0.0)
    ks = np.arange(len(g), dtype=np.float64)
    top = len(g) + 12 * math.sqrt(len(g)) + 20
    grid = np.linspace(0.0, top, 4001)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, len(g) + 1)))])[: len(g)]
    log_grid = np.log(np.maximum(grid, 1e-300))
    logs = -grid[:, None] + ks[None, :] * log_grid[:, None] - log_fact[None, :]
    logs[0, :] = -np.inf
    logs[0, 0] = 0.0
    pmf = np.exp(logs)
    above = 1.0 - np.cumsum(pmf, axis=1)  # P(N_L > k)
    above = np.clip(above, 0.0, 1.0)
    return CapCurve(grid, above @ np.asarray(g), above @ np.asarray(h))


def spend_window(model: OperatorModel) -> tuple[date, date]:
    """First and last day whose spending counts for the applicants the sign-up model counts."""
    rule = model.spend
    last = max([rule.ends, *(e.ends for e in rule.extensions)])
    return rule.starts, last


@dataclass
class ModeSpending:
    """Expected figures per day for the holders of one grant mode (all their services)."""

    applicants: Floats
    transactions: Floats  # counted (reported) charges/purchases, fills included
    fills: Floats
    yen: Floats  # amounts that earn points
    points: Floats  # granted (before refunds)
    refunds: Floats  # refund reports
    clawback: Floats  # points taken back by refunds


@dataclass
class SpendingResult:
    days: list[date]
    modes: dict[str, ModeSpending]
    rate_percent: int
    cap_yen: int

    def transactions(self) -> Floats:
        return np.asarray(sum(m.transactions for m in self.modes.values()), np.float64)

    def net_points(self) -> Floats:
        return np.asarray(sum(m.points - m.clawback for m in self.modes.values()), np.float64)


def day_factors(spending: Spending, days: list[date]) -> Floats:
    return np.array([spending.day_factor(d) for d in days], dtype=np.float64)


def _mode(
    spender: Spender,
    spending: Spending,
    starters: Floats,
    factors: Floats,
    live: Floats,
    cap_spend: float,
    rate: float,
) -> ModeSpending:
    """``starters[d]``: holders whose spending starts on day d; ``live[d]``: 1 inside the window."""
    days = len(starters)
    active = starters * (1 - spending.never_share)
    fillers = active * spender.fill_share
    small = active - fillers
    # Fillers: a pool that drains by the day's hazard.
    fills = np.zeros(days)
    pool = 0.0
    for d in range(days):
        pool += fillers[d]
        if live[d]:
            done = pool * (1 - math.exp(-spender.fill_rate_per_day * factors[d]))
            fills[d] = done
            pool -= done
    # Small spenders: operational time since each start day, through the cap curve.
    curve = cap_curve(spender, cap_spend)
    clock = np.concatenate([[0.0], np.cumsum(spender.rate_per_day * factors * live)])
    begin = np.nonzero(small > 0)[0]
    transactions = fills.copy()
    fill_yen = min(float(spender.fill_amount_yen), cap_spend)
    yen = fills * fill_yen
    if len(begin):
        since = clock[None, :] - clock[begin, None]  # (cohorts, days + 1) at the start of days
        since = np.maximum(since, 0.0)
        counted, spent = curve.at(since)
        weights = small[begin]
        transactions += weights @ np.diff(counted, axis=1)
        yen += weights @ np.diff(spent, axis=1)
    points = np.asarray(yen * rate / 100, np.float64)
    # Refunds: a share of the day's transactions, refunded after an exponential delay.
    lags = np.arange(days, dtype=np.float64)
    tau = spending.refund_after_days
    kernel = np.exp(-lags / tau) - np.exp(-(lags + 1) / tau)
    refunds = spending.refund_rate * np.convolve(transactions, kernel)[:days]
    clawback = spending.refund_rate * np.convolve(points, kernel)[:days]
    return ModeSpending(starters, transactions, fills, yen, points, refunds, clawback)


def simulate_spending(
    model: OperatorModel, days: list[date], applications: Floats
) -> SpendingResult:
    """Expected spending per day, given the applications per day (nationwide)."""
    spending = model.spending
    first, last = spend_window(model)
    rule = model.spend
    cap_spend = rule.cap_yen * 100 / rule.rate_percent
    factors = day_factors(spending, days)
    live = np.array([first <= d <= last for d in days], dtype=np.float64)
    index = {d: i for i, d in enumerate(days)}
    starts = np.zeros(len(days))
    for d, count in zip(days, applications, strict=True):
        begin = max(d + timedelta(days=spending.start_delay_days), first)
        if begin <= last and begin in index:
            starts[index[begin]] += count
    modes = {}
    for mode in GRANT_MODES:
        share = sum(k.share for k in model.kinds if k.grant == mode)
        if share <= 0:
            continue
        modes[mode] = _mode(
            spending.by_grant[mode], spending, starts * share, factors, live, cap_spend,
            rule.rate_percent,
        )  # fmt: skip
    return SpendingResult(days, modes, rule.rate_percent, rule.cap_yen)
