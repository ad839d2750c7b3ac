"""Cohorts of holders: what happens to ``k`` people at once, drawn with numpy.

A cohort is the people of one channel in one hour of one region. Instead of following each
person, we draw how many of them end each way; the draws have the same distribution as
following them one by one with independent attributes. Every function takes one cohort per
channel (arrays), so an hour of a region is a handful of vectorised draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .scenario import PinModel

__all__ = ["CardReading", "PinOutcome", "enter_pins", "lockout_probability", "read_cards"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CardReading:
    read: Ints  # got the card read
    unreadable: Ints  # every try failed
    failed_reads: Ints  # failed tries in all


def read_cards(rng: np.random.Generator, people: Ints, failure: Floats, tries: Ints) -> CardReading:
    """Each try fails with ``failure``; a holder tries ``tries`` times at most."""
    never = failure**tries
    unreadable = rng.binomial(people, never)
    # Failed tries of those who got through: a geometric count truncated below ``tries``.
    k = np.arange(int(tries.max()))
    weights = np.where(k[None, :] < tries[:, None], k[None, :] * failure[:, None] ** k, 0.0)
    mean_failures = weights.sum(axis=1) * (1 - failure) / np.maximum(1 - never, 1e-12)
    failed = rng.poisson((people - unreadable) * mean_failures) + unreadable * tries
    return CardReading(people - unreadable, unreadable, failed)


def lockout_probability(wrong: float, pin: PinModel) -> float:
    """Chance that a holder with per-entry wrong-PIN probability ``wrong`` locks the PIN.

    Each of the ``entries_per_application`` PIN entries is retried until right; the PIN locks
    when ``lockout_after`` consecutive entries are wrong (a right one resets the counter).
    """
    per_entry = wrong**pin.lockout_after
    return float(1 - (1 - per_entry) ** pin.entries_per_application)


def wrong_entries_per_holder(wrong: float, pin: PinModel) -> float:
    """Mean wrong entries per holder: per PIN entry, P(at least k wrong) summed up to the lock."""
    per_entry = sum(wrong**k for k in range(1, pin.lockout_after + 1))
    return pin.entries_per_application * per_entry


@dataclass(frozen=True)
class PinOutcome:
    done: Ints
    locked: Ints
    wrong_entries: Ints


def enter_pins(rng: np.random.Generator, people: Ints, pin: PinModel) -> PinOutcome:
    """The PIN step for cohorts whose card was read: who gets through, who locks the PIN."""
    forgot = rng.binomial(people, pin.forgot_share)
    knew = people - forgot
    locked = rng.binomial(forgot, lockout_probability(pin.forgot_wrong_probability, pin))
    locked = locked + rng.binomial(knew, lockout_probability(pin.wrong_probability, pin))
    mean_wrong = forgot * wrong_entries_per_holder(pin.forgot_wrong_probability, pin)
    mean_wrong = mean_wrong + knew * wrong_entries_per_holder(pin.wrong_probability, pin)
    return PinOutcome(people - locked, locked, rng.poisson(mean_wrong))
